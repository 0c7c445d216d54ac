"""Run the latest checkpoint of a run directory for a number of episodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from learner.rundir import RunDir, load_checkpoint
from rlcore.envs import env_spec, make_env
from rlcore.networks import build_network, sample_actions


class EvaluateError(RuntimeError):
    pass


def evaluate(run_dir: str, episodes: int, stochastic: bool, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the return over `episodes` episodes of the checkpointed policy."""
    rd = RunDir(run_dir)
    if not rd.checkpoint.exists() or not rd.config.exists():
        raise EvaluateError(f"{run_dir} holds no checkpoint.pt and config.json to evaluate")
    try:
        config = json.loads(Path(rd.config).read_text())
        state = load_checkpoint(rd.checkpoint)
        env = make_env(config["env_id"])
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise EvaluateError(f"cannot evaluate {run_dir}: {exc}") from None
    model = build_network(env_spec(env), tuple(config["hp"]["hidden"]))
    model.load_state_dict(state["model"])
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    returns = [_episode(env, model, generator, stochastic, seed + i) for i in range(episodes)]
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


@torch.inference_mode()
def _episode(env, model, generator, stochastic: bool, seed: int) -> float:
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        logits = model.logits(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))
        action, _ = sample_actions(logits, generator, greedy=not stochastic)
        obs, reward, terminated, truncated, _ = env.step(int(action[0]))
        total += float(reward)
        done = terminated or truncated
    return total
