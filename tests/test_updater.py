"""The learner's step size: a schedule sets it, data mode scales it by the square root of
the number of rollouts learned together (bounded) or learns them one update each, gradient
mode applies it as set."""

import math

import numpy as np
import pytest

from learner.updater import Updater
from rlcore.envs import EnvSpec
from rlcore.hyperparams import Hyperparams
from tests.test_envs import make_rollout

SPEC = EnvSpec(obs_shape=(1,), num_actions=2)


def used_lr(updater: Updater) -> float:
    return updater.optimizer.lr


@pytest.mark.parametrize(("k", "factor"), [(1, 1.0), (2, math.sqrt(2)), (4, 2.0), (64, 4.0)])
def test_data_mode_scales_the_step_by_sqrt_of_the_rollouts_learned_together(k, factor):
    updater = Updater(SPEC, Hyperparams(lr=1e-3, rollout_len=2), seed=0)
    updater.learn([make_rollout(2, [], 1.0) for _ in range(k)])
    assert used_lr(updater) == pytest.approx(1e-3 * factor)
    assert updater.version == 1


@pytest.mark.parametrize(("k", "factor"), [(1, 1.0), (2, 2.0), (3, 3.0), (8, 4.0)])
def test_the_linear_rule_moves_as_far_as_k_updates_up_to_the_cap(k, factor):
    hp = Hyperparams(lr=1e-3, rollout_len=2, batch_lr_power=1.0)
    updater = Updater(SPEC, hp, seed=0)
    updater.learn([make_rollout(2, [], 1.0) for _ in range(k)])
    assert used_lr(updater) == pytest.approx(1e-3 * factor)


def test_no_scaling_when_turned_off_and_gradients_use_the_scheduled_lr():
    updater = Updater(SPEC, Hyperparams(lr=1e-3, rollout_len=2, batch_lr_scale=1.0), seed=0)
    updater.learn([make_rollout(2, [], 1.0) for _ in range(4)])
    assert used_lr(updater) == pytest.approx(1e-3)
    updater.set_lr(2.5e-4)  # e.g. --lr-decay three quarters of the way through the budget
    updater.apply_gradient(np.zeros(updater.num_params, np.float32))
    assert used_lr(updater) == pytest.approx(2.5e-4)


def test_lr_decay_reaches_near_zero_at_the_end_of_the_budget(tmp_path):
    import torch

    from tests.helpers import run_a3c

    run_dir = tmp_path / "run"
    done = run_a3c("train", "--mode", "gradient", "--lr-decay", "--max-env-steps", "8000",
                   "--target-return", "1e9", "--run-dir", run_dir)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    last_lr = state["optimizer"]["param_groups"][0]["lr"]
    assert 0 <= last_lr < 0.05 * 1e-3  # the last updates came within 5% of the budget's end


def test_split_batches_make_one_update_per_rollout_in_data_mode(tmp_path):
    from tests.helpers import run_a3c, summary

    run_dir = tmp_path / "run"
    done = run_a3c("train", "--mode", "data", "--actors", "2", "--split-batches",
                   "--rollout-len", "5", "--num-envs", "2", "--max-env-steps", "6000",
                   "--target-return", "1e9", "--run-dir", run_dir)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = summary(run_dir)
    learned = result["env_steps"] - 10 * result["dropped"].get("stale", 0)  # 10 per rollout
    assert result["env_steps"] >= 6000 and result["updates"] * 10 == learned
    assert result["weights_version"] == result["updates"]


@pytest.mark.parametrize(
    ("n", "split_max", "sizes"),
    [(1, 4, [1]), (3, 4, [1, 1, 1]), (4, 4, [1, 1, 1, 1]), (8, 4, [2, 2, 2, 2]),
     (10, 4, [2, 3, 2, 3]), (64, 4, [16, 16, 16, 16]), (5, 1, [5])],
)  # fmt: skip
def test_split_batches_are_bounded_and_keep_arrival_order(n, split_max, sizes):
    from learner.intake import split

    hp = Hyperparams(split_batches=True, split_max=split_max)
    groups = split(list(range(n)), [0] * n, hp)
    assert [len(b) for b, _ in groups] == sizes
    assert [x for b, _ in groups for x in b] == list(range(n))
    # each update after the first makes the rollouts after it one version older
    assert [ages[0] for _, ages in groups] == list(range(len(sizes)))


def test_without_split_batches_a_round_is_one_update():
    from learner.intake import split

    assert split([1, 2, 3], [0, 1, 2], Hyperparams()) == [([1, 2, 3], [0, 1, 2])]
