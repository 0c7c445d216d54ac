"""The welcome's settings: built by the learner as two typed halves (what the run trains on,
how the link is used), read back by the actor, and refused with a TypeError or ValueError
naming the setting when a map from the network is not well formed."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from learner.config import LearnerConfig
from learner.startup import welcome_settings
from protocol import Welcome, decode, encode
from protocol.link import LinkSettings
from protocol.wire import WireFormat
from rlcore.envs import EnvConfig, EnvSpec
from rlcore.hyperparams import Hyperparams
from rlcore.run_settings import RunSettings

SPEC = EnvSpec((3,), action_dim=1, action_low=(-2.0,), action_high=(2.0,))
RUN = RunSettings(
    "data",
    EnvConfig("Pendulum-v1", {"g": 9.81}, ("mask-velocity",)),
    SPEC,
    Hyperparams(hidden=(32, 16), recurrent=True, lr=3e-4),
    7,
)
LINK = LinkSettings(WireFormat("zstd", "bfloat16"), True, 2, 16, 0.5, 4.0, 1 << 20, 80)
WIRE_SHAPE = {
    "mode",
    "env",
    "env_spec",
    "hyperparams",
    "seed",
    "max_outstanding",
    "max_credit",
    "wire",
    "heartbeat_interval",
    "heartbeat_timeout",
    "max_message_bytes",
    "work_steps",
}


def _welcome_map() -> dict:
    return {**RUN.to_dict(), **LINK.to_dict()}


def test_both_halves_round_trip_through_a_welcome_on_the_wire():
    settings = _welcome_map()
    welcome = Welcome("r" * 16, 0, 0, 0.0, settings, np.zeros(4, np.float32))
    back = decode(encode(welcome)).settings
    assert RunSettings.from_dict(back) == RUN
    assert LinkSettings.from_dict(back) == LINK


def test_the_halves_write_disjoint_keys_of_the_shape_actors_of_this_version_read():
    run, link = RUN.to_dict(), LINK.to_dict()
    assert not set(run) & set(link)
    assert set(run) | set(link) == WIRE_SHAPE
    assert link["wire"] == {"compress": "zstd", "floats": "bfloat16", "frame_once": True}


def test_the_learner_builds_its_welcome_from_its_config():
    cfg = LearnerConfig(mode="gradient", env_id="CartPole-v1", run_dir="unused", seed=3)
    spec = EnvSpec((4,), num_actions=2)
    settings = welcome_settings(cfg, spec, WireFormat("lz4", "float16"), 1 << 20)
    run, link = RunSettings.from_dict(settings), LinkSettings.from_dict(settings)
    assert (run.mode, run.env, run.spec, run.hp, run.seed) == ("gradient", cfg.env, spec, cfg.hp, 3)
    assert link.wire == WireFormat("lz4", "float16") and link.frame_once == cfg.frame_once
    assert (link.max_outstanding, link.max_credit) == (cfg.max_outstanding, cfg.max_credit)
    assert link.heartbeat_timeout == cfg.heartbeat_timeout
    assert link.max_message_bytes == 1 << 20
    assert link.work_steps == cfg.hp.rollout_len * cfg.hp.num_envs


def test_whole_numbers_are_taken_where_seconds_are_expected():
    settings = _welcome_map()
    settings["heartbeat_interval"] = 1
    settings["hyperparams"]["lr"] = 1
    assert LinkSettings.from_dict(settings).heartbeat_interval == 1.0
    assert RunSettings.from_dict(settings).hp.lr == 1


def _set(path: str, value):
    def mutate(d: dict) -> None:
        *parents, last = path.split(".")
        for key in parents:
            d = d[key]
        d[last] = value

    return mutate


def _drop(path: str):
    def mutate(d: dict) -> None:
        *parents, last = path.split(".")
        for key in parents:
            d = d[key]
        del d[last]

    return mutate


MALFORMED = [
    ("mode", _drop("mode"), ValueError),
    ("mode", _set("mode", 1), TypeError),
    ("mode", _set("mode", "sideways"), ValueError),
    ("seed", _set("seed", "7"), TypeError),
    ("seed", _set("seed", True), TypeError),
    ("seed", _set("seed", 7.5), TypeError),
    ("env", _set("env", ["Pendulum-v1"]), TypeError),
    ("env_id", _drop("env.env_id"), ValueError),
    ("env.env_id", _set("env.env_id", 3), TypeError),
    ("env.wrappers", _set("env.wrappers", "atari"), TypeError),
    ("env_spec.obs_shape", _set("env_spec.obs_shape", "3"), TypeError),
    ("env_spec.obs_shape", _set("env_spec.obs_shape", [3.5]), TypeError),
    ("env_spec.action_low", _set("env_spec.action_low", ["-2"]), TypeError),
    ("hyperparams", _set("hyperparams", None), TypeError),
    ("hyperparams.lr", _set("hyperparams.lr", "fast"), TypeError),
    ("hyperparams.hidden", _set("hyperparams.hidden", [64, "wide"]), TypeError),
    ("hyperparams.recurrent", _set("hyperparams.recurrent", 1), TypeError),
    ("hyperparams", _set("hyperparams.warp", 9), ValueError),
    ("hyperparams", _set("hyperparams.num_envs", 0), ValueError),
    ("wire", _drop("wire"), ValueError),
    ("compress", _set("wire.compress", 5), TypeError),
    ("compress", _set("wire.compress", "gzip"), ValueError),
    ("frame_once", _set("wire.frame_once", 1), TypeError),
    ("max_outstanding", _set("max_outstanding", 0), ValueError),
    ("max_credit", _set("max_credit", 1), ValueError),
    ("max_credit", _set("max_credit", "16"), TypeError),
    ("heartbeat_interval", _set("heartbeat_interval", 0.0), ValueError),
    ("heartbeat_timeout", _set("heartbeat_timeout", float("nan")), ValueError),
    ("heartbeat_timeout", _drop("heartbeat_timeout"), ValueError),
    ("max_message_bytes", _drop("max_message_bytes"), ValueError),
    ("max_message_bytes", _set("max_message_bytes", 0), ValueError),
    ("work_steps", _set("work_steps", -5), ValueError),
]


@pytest.mark.parametrize(("named", "mutate", "error"), MALFORMED)
def test_a_malformed_welcome_is_refused_naming_the_setting(named, mutate, error):
    settings = copy.deepcopy(_welcome_map())
    mutate(settings)
    with pytest.raises(error, match=named.split(".")[-1]):
        RunSettings.from_dict(settings)
        LinkSettings.from_dict(settings)


@pytest.mark.parametrize("settings", [None, [], "settings", 5])
def test_settings_that_are_not_a_map_are_refused(settings):
    for cls in (RunSettings, LinkSettings):
        with pytest.raises(TypeError, match="map"):
            cls.from_dict(settings)
