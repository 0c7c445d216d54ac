"""Presets: matched by id, pattern and family; applied when the user names an env; every
flag and A3C_* variable overrides them; --preset picks one by name or turns them off."""

import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from a3c.cli import hp_options
from rlcore.hyperparams import Hyperparams
from rlcore.presets import PresetError, all_presets, by_name, for_env, resolve
from tests.helpers import ENV, free_port, run_a3c

RESULTS = Path(__file__).parent.parent / "benchmarks" / "results"


@pytest.mark.parametrize(
    ("env_id", "name"),
    [
        ("Pendulum-v1", "pendulum"),  # its own entry beats its family's
        ("CartPole-v1", "cartpole"),
        ("CartPole-v0", "classic-control"),
        ("MountainCar-v0", "classic-control"),  # a family member with no entry of its own
        ("LunarLander-v3", "box2d"),
        ("BipedalWalker-v3", "box2d"),
        ("HalfCheetah-v5", "halfcheetah"),  # tuned on alone; its own entry beats its family
        ("Walker2d-v5", "mujoco"),
        ("Ant-v5", "mujoco"),
        ("Hopper-v5", "mujoco"),  # a family member no tuning saw
        ("InvertedPendulum-v5", "inverted-pendulum"),  # its own entry beats its family
        ("ALE/Pong-v5", "atari"),
        ("ALE/Breakout-v5", "atari"),
        ("MinAtar/Breakout-v1", "minatar"),
        ("MinAtar/SpaceInvaders-v1", "minatar"),
    ],
)
def test_presets_match_by_id_pattern_and_family(env_id, name):
    assert for_env(env_id).name == name


def test_unknown_envs_have_no_preset_and_names_are_checked():
    assert for_env("NoSuchEnv-v9") is None
    assert resolve("none", "Pendulum-v1") is None
    assert resolve(None, "Pendulum-v1").name == "pendulum"
    assert resolve("atari", "Pendulum-v1").name == "atari"
    with pytest.raises(PresetError, match="unknown preset"):
        by_name("nope")


def test_every_preset_is_valid_hyperparameters_and_says_what_chose_it():
    known = {f.name for f in fields(Hyperparams)}
    for preset in all_presets():
        assert set(preset.settings) <= known, preset.name
        Hyperparams.from_dict(preset.settings).validate()
        if preset.settings:
            assert preset.chosen_by, f"{preset.name}: which run chose these values?"
    # every hyperparameter has its flag but V-trace's clips and the observation clip
    assert known - set(hp_options()) == {"rho_bar", "c_bar", "obs_clip"}


def test_a_preset_chosen_by_a_tuning_candidate_holds_exactly_that_candidates_flags():
    """The results file a preset cites must be of the settings it holds: a preset edited
    without a run behind it (or a candidate renamed) fails here."""
    from benchmarks.learning import flag_settings, preset_values
    from benchmarks.tune import CANDIDATES

    cited = 0
    for preset in all_presets():
        found = re.match(r"tune_(\S+)\.json, candidate (\S+?):", preset.chosen_by)
        if not found:
            continue
        task = next(t for t in CANDIDATES if t.replace("/", "-") == found[1])
        results = json.loads((RESULTS / f"tune_{found[1]}.json").read_text())
        flags = CANDIDATES[task][found[2]]
        assert results["candidates"][found[2]]["flags"] == flags, preset.name
        assert flag_settings(flags) == preset_values(preset.settings), preset.name
        cited += 1
    assert cited >= 5


def learner_config(tmp_path, name, *args, env=None):
    run_dir = tmp_path / name
    cmd = [sys.executable, "-m", "a3c", "learner", "--mode", "data", "--bind",
           f"tcp://127.0.0.1:{free_port()}", "--run-dir", str(run_dir), "--max-seconds", "0.3",
           "--no-tensorboard", *args]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**ENV, **(env or {})}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((run_dir / "config.json").read_text()), done.stderr


def test_a_preset_is_applied_and_flags_and_variables_override_it(tmp_path):
    preset = for_env("Pendulum-v1")
    name, value = next(iter(preset.settings.items()))
    assert value != getattr(Hyperparams(), name)  # else this test could not tell
    flag = "--" + name.replace("_", "-")

    config, log = learner_config(tmp_path, "plain", "--env", "Pendulum-v1")
    assert config["preset"]["name"] == "pendulum" and config["preset"]["overridden"] == []
    for key, v in preset.settings.items():
        assert config["hp"][key] == v, key
    assert "preset pendulum sets" in log  # the learner says what it applied

    mine = 0.5 if isinstance(value, float) else value + 1
    config, log = learner_config(tmp_path, "flag", "--env", "Pendulum-v1", flag, str(mine))
    assert config["hp"][name] == mine and config["preset"]["overridden"] == [name]
    assert "override" in log

    variable = {"A3C_" + name.upper(): str(mine)}
    config, _ = learner_config(tmp_path, "var", "--env", "Pendulum-v1", env=variable)
    assert config["hp"][name] == mine and config["preset"]["overridden"] == [name]

    config, _ = learner_config(tmp_path, "none", "--env", "Pendulum-v1", "--preset", "none")
    assert config["preset"] is None and config["hp"][name] == getattr(Hyperparams(), name)

    config, _ = learner_config(tmp_path, "named", "--env", "Pendulum-v1", "--preset", "atari")
    assert config["preset"]["name"] == "atari" and config["hp"]["reward_clip"] == 1.0


def test_an_unknown_preset_is_a_one_line_error(tmp_path):
    done = run_a3c("learner", "--mode", "data", "--preset", "nope", "--run-dir", tmp_path / "r")
    assert done.returncode != 0 and "unknown preset" in done.stderr
    assert "Traceback" not in done.stderr
    assert os.path.exists(tmp_path) and not (tmp_path / "r" / "checkpoint.pt").exists()


def test_the_batch_learning_rate_cap_is_a_flag_a_preset_can_hold(tmp_path):
    config, _ = learner_config(tmp_path, "bls", "--env", "CartPole-v1", "--batch-lr-scale", "1")
    assert config["hp"]["batch_lr_scale"] == 1.0
    done = run_a3c("learner", "--batch-lr-scale", "0.5", "--run-dir", tmp_path / "r")
    assert done.returncode != 0 and "--batch-lr-scale" in done.stderr


def test_the_bounded_mean_is_a_flag_a_preset_can_hold(tmp_path):
    config, _ = learner_config(tmp_path, "bm", "--env", "Pendulum-v1", "--bounded-mean")
    assert config["hp"]["bounded_mean"] is True
    config, _ = learner_config(tmp_path, "default", "--env", "Pendulum-v1")
    assert config["hp"]["bounded_mean"] is False


def test_a_preset_file_entry_is_applied_by_env_and_by_name_and_flags_override_it(tmp_path):
    """What benchmarks/tune.py --write-preset produces, used as a user would."""
    own = tmp_path / "my-presets.json"
    own.write_text(json.dumps({"presets": [
        {"name": "my-pendulum", "ids": ["Pendulum-v1"], "chosen_by": "my tuning run",
         "settings": {"gamma": 0.95, "rollout_len": 7, "normalize_obs": True}},
    ]}))  # fmt: skip
    config, log = learner_config(tmp_path, "file", "--env", "Pendulum-v1", "--preset-file", own)
    assert config["preset"]["name"] == "my-pendulum"  # before the shipped pendulum entry
    assert config["preset"]["file"] == str(own)
    assert config["hp"]["gamma"] == 0.95 and config["hp"]["rollout_len"] == 7
    assert config["hp"]["entropy_coef"] == Hyperparams().entropy_coef  # shipped one not mixed in
    assert "preset my-pendulum sets" in log

    config, _ = learner_config(tmp_path, "flag", "--env", "Pendulum-v1", "--preset-file", own,
                               "--rollout-len", "9")  # fmt: skip
    assert config["hp"]["rollout_len"] == 9 and config["preset"]["overridden"] == ["rollout_len"]
    assert config["hp"]["gamma"] == 0.95

    variable = {"A3C_PRESET_FILE": str(own), "A3C_GAMMA": "0.9"}
    config, _ = learner_config(tmp_path, "var", "--env", "CartPole-v1", "--preset",
                               "my-pendulum", env=variable)  # fmt: skip
    assert config["preset"]["name"] == "my-pendulum" and config["hp"]["gamma"] == 0.9
    assert config["preset"]["overridden"] == ["gamma"] and config["hp"]["rollout_len"] == 7

    config, _ = learner_config(tmp_path, "other", "--env", "Acrobot-v1", "--preset-file", own)
    assert config["preset"]["name"] == "acrobot"  # no entry of its own: the shipped one


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read"),
        ("{not json", "not a presets file"),
        ('{"presets": [{"name": "x", "settings": {"nope": 1}}]}', "unknown settings"),
        ('{"presets": [{"name": "x", "settings": {"gamma": "high"}}]}', "not a presets file"),
        ('{"nothing": []}', "not a presets file"),
    ],
)
def test_a_bad_preset_file_is_a_one_line_error(tmp_path, content, says):
    own = tmp_path / "p.json"
    if content is not None:
        own.write_text(content)
    done = run_a3c("learner", "--mode", "data", "--preset-file", own, "--run-dir", tmp_path / "r")
    assert done.returncode == 2 and says in done.stderr and "--preset-file" in done.stderr
    assert "Traceback" not in done.stderr
