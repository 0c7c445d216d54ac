"""Resume refuses a checkpoint whose weights or statistics mean something else under this
run's settings, naming the setting and the flag that matches the checkpoint."""

from dataclasses import replace

import pytest

from learner.checkpoint import MEANING, ResumeError, checkpoint_state, restore
from learner.config import LearnerConfig
from learner.normstats import NormStats
from learner.stats import RunStats
from learner.updater import Updater
from rlcore.envs import probe_env
from rlcore.hyperparams import Hyperparams

SPEC = probe_env("CartPole-v1")


def parts(hp: Hyperparams):
    cfg = LearnerConfig(mode="data", env_id="CartPole-v1", run_dir="unused", hp=hp)
    return cfg, Updater(SPEC, hp, seed=0), NormStats(hp, SPEC.obs_shape[0])


def saved_with(hp: Hyperparams) -> dict:
    cfg, updater, norm = parts(hp)
    return checkpoint_state(updater, RunStats(), cfg, norm)


CASES = [
    # (trained with, resumed with, what the one line must say)
    ({"normalize_reward": True}, {}, ["normalize_reward on", "--normalize-reward"]),
    ({}, {"normalize_reward": True}, ["normalize_reward off", "--no-normalize-reward"]),
    ({"normalize_obs": True}, {}, ["normalize_obs on", "--normalize-obs"]),
    ({"gamma": 0.9}, {}, ["gamma 0.9", "--gamma 0.9"]),
    ({"reward_scale": 0.1}, {}, ["reward_scale 0.1", "--reward-scale 0.1"]),
    ({}, {"reward_clip": 5.0}, ["reward_clip 0.0", "--reward-clip 0.0"]),
    ({"recurrent": True, "lstm_size": 32}, {"recurrent": True}, ["--lstm-size 32"]),
]


@pytest.mark.parametrize(("trained", "resumed", "needles"), CASES)
def test_a_settings_mismatch_is_a_one_line_resume_error(trained, resumed, needles):
    state = saved_with(Hyperparams(**trained))
    with pytest.raises(ResumeError) as info:
        restore(state, *_targets(Hyperparams(**resumed)))
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def _targets(hp: Hyperparams):
    cfg, updater, norm = parts(hp)
    return updater, cfg, norm


def test_every_meaningful_setting_is_stored():
    state = saved_with(Hyperparams())
    assert set(MEANING) <= set(state)


def test_matching_settings_resume_and_older_checkpoints_are_checked_on_what_they_hold():
    hp = Hyperparams(normalize_reward=True, gamma=0.95, reward_clip=1.0)
    state = saved_with(hp)
    assert restore(state, *_targets(hp)).env_steps == 0
    older = {k: v for k, v in state.items() if k not in MEANING}
    other = replace(hp, gamma=0.99, reward_clip=0.0)  # the statistics' shapes still fit
    restore(older, *_targets(other))


def test_the_lstm_size_of_a_feed_forward_network_means_nothing():
    state = saved_with(Hyperparams(lstm_size=32))
    restore(state, *_targets(Hyperparams(lstm_size=64)))
