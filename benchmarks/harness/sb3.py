"""The outside references: Stable-Baselines3 A2C and PPO with rl-baselines3-zoo's
settings, on the same task, stopped at the same mark or budget. Needs the `bench` extra.

`fresh_process` runs one in a new Python process and counts from the moment it was asked
for, so that its start-up (imports included) counts as this service's does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import deque

from benchmarks.harness.launch import ROOT

# rl-baselines3-zoo hyperparams/a2c.yml (LunarLander-v2's entry for v3; the MuJoCo defaults)
ZOO = {
    "CartPole-v1": {"n_envs": 8, "normalize": False, "kwargs": {"ent_coef": 0.0}},
    "Acrobot-v1": {"n_envs": 16, "normalize": True, "kwargs": {"ent_coef": 0.0}},
    "LunarLander-v3": {
        "n_envs": 8,
        "normalize": False,
        "kwargs": {"gamma": 0.995, "n_steps": 5, "ent_coef": 1e-5},
        "linear_lr": 8.3e-4,
    },
    "Pendulum-v1": {
        "n_envs": 8,
        "normalize": True,
        "kwargs": {
            "gamma": 0.9,
            "n_steps": 8,
            "gae_lambda": 0.9,
            "vf_coef": 0.4,
            "ent_coef": 0.0,
            "max_grad_norm": 0.5,
            "use_sde": True,
            "normalize_advantage": False,
            "policy_kwargs": {"log_std_init": -2, "ortho_init": False},
        },  # fmt: skip
        "linear_lr": 7e-4,
    },
    "InvertedPendulum-v5": {"n_envs": 1, "normalize": True, "kwargs": {}},
    "HalfCheetah-v5": {"n_envs": 1, "normalize": True, "kwargs": {}},
    "Walker2d-v5": {"n_envs": 1, "normalize": True, "kwargs": {}},
    "Ant-v5": {"n_envs": 1, "normalize": True, "kwargs": {}},
}

# rl-baselines3-zoo hyperparams/ppo.yml; its linear schedules run over its n_timesteps
ZOO_PPO = {
    "CartPole-v1": {
        "n_envs": 8,
        "normalize": False,
        "n_timesteps": 100_000,
        "kwargs": {
            "n_steps": 32,
            "batch_size": 256,
            "gae_lambda": 0.8,
            "gamma": 0.98,
            "n_epochs": 20,
            "ent_coef": 0.0,
        },
        "linear_lr": 1e-3,
        "linear_clip": 0.2,
    },  # fmt: skip
    "Acrobot-v1": {
        "n_envs": 16,
        "normalize": True,
        "n_timesteps": 1_000_000,
        "kwargs": {
            "n_steps": 256,
            "gae_lambda": 0.94,
            "gamma": 0.99,
            "n_epochs": 4,
            "ent_coef": 0.0,
        },
    },  # fmt: skip
}
ZOOS = {"a2c": ZOO, "ppo": ZOO_PPO}


def run(
    algo: str,
    env_id: str,
    seed: int,
    stop_at: float,
    *,
    budget: int = 10**9,
    max_seconds: float | None = None,
    min_episodes: int = 100,
    threads: int | None = None,
    t0: float | None = None,
) -> dict:
    """One SB3 run (`algo` a2c or ppo) until the mean return of the last 100 episodes
    reaches `stop_at`, or `budget` env steps (PPO: the zoo's n_timesteps unless given, the
    horizon of its schedules) or `max_seconds` pass. Its curve is (env steps, wall s, mean
    return) once a second, the mean None until `min_episodes` episodes have ended; the
    last point is where it stopped. Wall seconds count from `t0` (a Unix time) if given,
    else from when the model is built."""
    import torch
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    if threads is not None:
        torch.set_num_threads(threads)
    zoo = ZOOS[algo][env_id]
    env = make_vec_env(env_id, n_envs=zoo["n_envs"], seed=seed)
    if zoo["normalize"]:
        env = VecNormalize(env, gamma=zoo["kwargs"].get("gamma", 0.99))
    kwargs = dict(zoo["kwargs"])
    if "linear_lr" in zoo:
        kwargs["learning_rate"] = lambda left, lr=zoo["linear_lr"]: lr * left
    if "linear_clip" in zoo:
        kwargs["clip_range"] = lambda left, c=zoo["linear_clip"]: c * left
    if algo == "ppo" and budget == 10**9:
        budget = zoo["n_timesteps"]
    clock = (lambda: time.time() - t0) if t0 is not None else None

    class Watch(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns: deque[float] = deque(maxlen=100)
            self.start = time.monotonic()
            self.curve: list = []
            self.solved = False

        def now(self) -> float:
            return clock() if clock else time.monotonic() - self.start

        def point(self) -> tuple:
            enough = len(self.returns) >= min_episodes
            mean = sum(self.returns) / len(self.returns) if enough else None
            return self.num_timesteps, round(self.now(), 2), mean

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
            steps, now, mean = self.point()
            if not self.curve or now - self.curve[-1][1] >= 1.0:
                self.curve.append((steps, now, mean))
            full = sum(self.returns) / 100 if len(self.returns) == 100 else None
            self.solved = full is not None and full >= stop_at
            return not self.solved and not (max_seconds and now > max_seconds)

    algo_class = {"a2c": A2C, "ppo": PPO}[algo]
    model = algo_class("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **kwargs)
    watch = Watch()
    model.learn(total_timesteps=budget, callback=watch)
    watch.curve.append(watch.point())
    returns = [m for _, _, m in watch.curve if m is not None]
    return {
        "solved": watch.solved,
        "env_steps": model.num_timesteps,
        "wall_seconds": watch.curve[-1][1],
        "final_return": returns[-1] if returns else None,
        "best_return": max(returns, default=None),
        "curve": watch.curve,
    }


def fresh_process(algo: str, env_id: str, seed: int, stop_at: float, **kw) -> dict:
    """`run` in a new Python process, its clock started before that process: what a user
    who types the command waits, imports and all."""
    args = json.dumps({"algo": algo, "env_id": env_id, "seed": seed, "stop_at": stop_at, **kw})
    code = "import json, sys; from benchmarks.harness import sb3; sb3._main(sys.argv[1])"
    t0 = time.time()
    done = subprocess.run([sys.executable, "-c", code, args, repr(t0)], capture_output=True,
                          text=True, check=False, cwd=ROOT)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"SB3 {algo} on {env_id} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _main(args: str) -> None:
    kw = json.loads(args)
    print(json.dumps(run(**kw, t0=float(sys.argv[2]))))
