"""Normalization in a live run: statistics merged by the learner reach every reply, survive
a checkpoint and a resume, reach `a3c evaluate`; malformed moments are dropped by reason.
Reward clipping changes the loss, never the reported returns."""

import numpy as np
import torch

from protocol import NORM_STATS, Weights, decode
from rlcore.hyperparams import Hyperparams
from rlcore.losses import loss_rewards
from tests.helpers import (
    INTERRUPTED,
    free_port,
    kill_all,
    metrics,
    run_a3c,
    start_actors,
    start_learner,
    stop,
    summary,
    wait,
    wait_for,
    wait_for_contributors,
    wait_for_env_steps,
)
from tests.hostile import HostileClient

NORM = ("--normalize-obs", "--normalize-reward", "--target-return", "1e9", "--metrics-every",
        "0.5", "--preset", "none")  # fmt: skip


def test_statistics_survive_checkpoint_and_resume_and_reach_evaluate(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner("data", address, run_dir, "--env", "Acrobot-v1", *NORM)
    actors = start_actors(address, "--workers", "2")
    try:
        wait_for_contributors(address, 2)
        wait_for_env_steps(run_dir, 8000)
        assert stop(learner) == INTERRUPTED and wait(actors, 30) == 0
    finally:
        kill_all(learner, actors)
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    obs = saved["norm"]["obs"].numpy()
    dim = (obs.size - 1) // 2
    assert obs[0] == summary(run_dir)["env_steps"]  # every observation of the run counted
    assert saved["norm"]["ret"][0] == obs[0]
    assert np.allclose(saved["model"]["obs_mean"].numpy(), obs[1 : 1 + dim], atol=1e-6)

    resumed = start_learner("data", address, run_dir, "--env", "Acrobot-v1", "--resume", *NORM)
    client = HostileClient(address)
    try:
        welcome = client.handshake("observer")
        assert stop(resumed) == INTERRUPTED
    finally:
        client.close()
        kill_all(resumed)
    assert np.allclose(welcome.extras[NORM_STATS[0]], obs[1 : 1 + dim], atol=1e-6)
    assert np.allclose(welcome.extras[NORM_STATS[1]], obs[1 + dim :] / obs[0], rtol=1e-5)

    from a3c.evaluate import load_policy

    _, model = load_policy(str(run_dir))
    assert model.normalize_obs and np.allclose(model.obs_mean.numpy(), obs[1 : 1 + dim])
    done = run_a3c("evaluate", run_dir, "--episodes", "2")
    assert done.returncode == 0, done.stderr


def test_malformed_moments_are_dropped_and_counted(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner("gradient", address, run_dir, *NORM)
    client = HostileClient(address)
    try:
        client.handshake()
        sent = client.bad_moments()

        def counted():
            return (metrics(run_dir) or [{}])[-1].get("dropped", {}).get("bad_moments") == sent

        wait_for(counted, 60, "the bad moments to be counted")
        # each dropped work message is still answered, so a real actor's credit returns
        replies = [decode(client.sock.recv_multipart()) for _ in range(sent)]
        assert all(isinstance(r, Weights) for r in replies)
        assert stop(learner) == INTERRUPTED
    finally:
        client.close()
        kill_all(learner)
    result = summary(run_dir)
    assert result["updates"] == 0 and result["env_steps"] == 0  # nothing of them was taken
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert saved["norm"]["obs"][0] == 0 and saved["norm"]["ret"][0] == 0


def test_reward_clipping_touches_the_loss_only(tmp_path):
    hp = Hyperparams(reward_scale=2.0, reward_clip=1.0)
    rewards = torch.tensor([[-3.0, -0.25], [0.25, 3.0]])
    expected = torch.tensor([[-1.0, -0.5], [0.5, 1.0]])
    assert torch.equal(loss_rewards(rewards, hp), expected)
    assert torch.equal(loss_rewards(rewards, Hyperparams(reward_scale=2.0)), rewards * 2)
    # CartPole pays 1 per step: clipped to 0.25 in the loss, returns still count whole steps
    run_dir = tmp_path / "run"
    done = run_a3c("train", "--mode", "gradient", "--reward-clip", "0.25", "--run-dir", run_dir,
                   "--max-env-steps", "8000", "--target-return", "1e9")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary(run_dir)["mean_return_100"] >= 9  # no CartPole episode is shorter
