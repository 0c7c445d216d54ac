"""Run the latest checkpoint of a run directory for a number of episodes, optionally
recording them to a video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from a3c.errors import EvaluateError
from learner.rundir import RunDir, load_checkpoint
from rlcore.envs import EnvConfig, UnsupportedEnvError, env_spec, make_env
from rlcore.hyperparams import Hyperparams
from rlcore.networks import ActorCritic, build_network


def load_policy(run_dir: str, **make_kwargs):
    """The run's env (built as the learner built it) and its checkpointed network."""
    rd = RunDir(run_dir)
    if not rd.checkpoint.exists() or not rd.config.exists():
        raise EvaluateError(f"{run_dir} holds no checkpoint.pt and config.json to evaluate")
    try:
        config = json.loads(Path(rd.config).read_text())
        state = load_checkpoint(rd.checkpoint)
        env_config = EnvConfig(
            config["env_id"], config.get("env_kwargs", {}), tuple(config.get("wrappers", ()))
        )
        env = make_env(env_config, **make_kwargs)
        hp = Hyperparams.from_dict(config["hp"])
    except (OSError, ValueError, KeyError, RuntimeError, UnsupportedEnvError) as exc:
        raise EvaluateError(f"cannot evaluate {run_dir}: {exc}") from None
    model = build_network(env_spec(env), hp)
    model.load_state_dict(state["model"])
    model.eval()
    return env, model


def evaluate(run_dir: str, episodes: int, stochastic: bool, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the return over `episodes` episodes of the checkpointed policy."""
    env, model = load_policy(run_dir)
    generator = torch.Generator().manual_seed(seed)
    returns = [run_episode(env, model, generator, stochastic, seed + i)[0] for i in range(episodes)]
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


@torch.inference_mode()
def run_episode(
    env, model: ActorCritic, generator, stochastic: bool, seed: int, frames: list | None = None
) -> tuple[float, int]:
    """Return and length of one episode; rendered frames are appended to `frames`."""
    obs, _ = env.reset(seed=seed)
    state = model.initial_state(1)
    total, length, done = 0.0, 0, False
    spec = env_spec(env)
    while not done:
        if frames is not None:
            frames.append(env.render())
        params, _, state = model.step(torch.as_tensor(obs).unsqueeze(0), None, state)
        action, _ = model.dist.sample(params, generator, greedy=not stochastic)
        act = action[0].numpy()
        if spec.discrete:
            act = int(act)
        else:
            act = np.clip(act, spec.action_low, spec.action_high).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(act)
        total += float(reward)
        length += 1
        done = terminated or truncated
    return total, length
