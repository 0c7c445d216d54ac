"""The outside reference: Stable-Baselines3 A2C with rl-baselines3-zoo's settings, on the
same task, stopped at the same mark or budget. Needs the `bench` extra."""

from __future__ import annotations

import time
from collections import deque

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
}


def a2c(
    env_id: str,
    seed: int,
    stop_at: float,
    *,
    budget: int = 10**9,
    max_seconds: float | None = None,
    min_episodes: int = 100,
    threads: int | None = None,
) -> dict:
    """One SB3 A2C run until the mean return of the last 100 episodes reaches `stop_at`,
    or `budget` env steps or `max_seconds` pass. Its curve is (env steps, wall s, mean
    return) once a second, the mean None until `min_episodes` episodes have ended; the
    last point is where it stopped."""
    import torch
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    if threads is not None:
        torch.set_num_threads(threads)
    zoo = ZOO[env_id]
    env = make_vec_env(env_id, n_envs=zoo["n_envs"], seed=seed)
    if zoo["normalize"]:
        env = VecNormalize(env, gamma=zoo["kwargs"].get("gamma", 0.99))
    kwargs = dict(zoo["kwargs"])
    if "linear_lr" in zoo:
        kwargs["learning_rate"] = lambda left, lr=zoo["linear_lr"]: lr * left

    class Watch(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns: deque[float] = deque(maxlen=100)
            self.start = time.monotonic()
            self.curve: list = []
            self.solved = False

        def point(self) -> tuple:
            enough = len(self.returns) >= min_episodes
            mean = sum(self.returns) / len(self.returns) if enough else None
            return self.num_timesteps, round(time.monotonic() - self.start, 2), mean

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

    model = A2C("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **kwargs)
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
