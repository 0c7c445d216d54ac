"""The seed article's A3C, ported to gymnasium's API and otherwise left as the article has
it: torch.multiprocessing workers sharing one model and a SharedAdam in shared memory.

- 256-unit shared-trunk actor-critic with a softmax policy head, SharedAdam lr 1e-4,
  20-step rollouts, gamma 0.99, entropy 0.01, gradient clip 40, one env per worker.
- gradient design: each worker computes the loss and gradients on a local copy, copies
  them into the shared model and steps the shared optimizer (the article's gradient_worker).
- data design: each worker sends its 20 transitions through a queue; a central trainer
  computes the same loss on the shared model and steps the optimizer.
- One fix, not a tune: the article's gradient worker zeroes the shared optimizer's
  gradients but never the local model's, so local gradients add up across rollouts and
  the policy collapses; the port zeroes the local gradients before each backward pass.
- As in the article, `done` ends the return (no bootstrap on truncation) and torch keeps
  its default thread count. Nothing here is tuned: it is the reference, not a competitor.

Measurement only adds counters (env steps, finished episodes) around the article's code.

    python -m benchmarks.seed_baseline --design gradient --workers 2 --seconds 60
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import time
from collections import deque
from pathlib import Path

import click
import gymnasium as gym
import torch
import torch.multiprocessing as mp
from torch import nn


class ActorCritic(nn.Module):
    def __init__(self, obs_size, act_size):
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(obs_size, 256), nn.ReLU())
        self.policy = nn.Sequential(nn.Linear(256, act_size), nn.Softmax(dim=-1))
        self.value = nn.Linear(256, 1)

    def forward(self, x):
        shared_out = self.shared(x)
        return self.policy(shared_out), self.value(shared_out)


class SharedAdam(torch.optim.Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr=lr, betas=betas, eps=eps)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = torch.zeros(())
                state["exp_avg"] = torch.zeros_like(p.data)
                state["exp_avg_sq"] = torch.zeros_like(p.data)
                state["step"].share_memory_()
                state["exp_avg"].share_memory_()
                state["exp_avg_sq"].share_memory_()


def a3c_loss(log_probs, values, rewards, entropies, R, gamma=0.99, entropy_beta=0.01):
    policy_loss = 0.0
    value_loss = 0.0
    entropy_loss = 0.0
    for i in reversed(range(len(rewards))):
        R = rewards[i] + gamma * R
        advantage = R - values[i].detach()
        policy_loss -= log_probs[i] * advantage
        value_loss += 0.5 * (R - values[i]) ** 2
        entropy_loss -= entropies[i]
    return policy_loss + value_loss + entropy_beta * entropy_loss


def _advance(env, next_state, done, episode_reward, returns_q):
    """The next state and running return: at an episode's end, its return is reported and
    the env reset (both workers, as the article's loops do)."""
    if not done:
        return next_state, episode_reward
    returns_q.put(episode_reward)
    state, _ = env.reset()
    return state, 0.0


def gradient_worker(i, env_id, seed, shared_model, optimizer, steps, stop, returns_q):
    env = gym.make(env_id)
    local_model = ActorCritic(env.observation_space.shape[0], env.action_space.n)
    state, _ = env.reset(seed=seed + i)
    torch.manual_seed(seed + i)
    episode_reward = 0.0
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # never outlive the benchmark
        local_model.load_state_dict(shared_model.state_dict())
        log_probs, values, rewards, entropies = [], [], [], []
        done = False
        for _ in range(20):
            probs, value = local_model(torch.FloatTensor(state).unsqueeze(0))
            dist = torch.distributions.Categorical(probs)
            action = dist.sample()
            next_state, reward, terminated, truncated, _ = env.step(action.item())
            done = terminated or truncated
            log_probs.append(dist.log_prob(action))
            values.append(value.squeeze())
            rewards.append(reward)
            entropies.append(dist.entropy())
            state, episode_reward = _advance(
                env, next_state, done, episode_reward + reward, returns_q
            )
            if done:
                break
        with steps.get_lock():
            steps.value += len(rewards)
        if done:
            R = torch.tensor(0.0)
        else:
            _, R = local_model(torch.FloatTensor(state).unsqueeze(0))
            R = R.squeeze().detach()
        total_loss = a3c_loss(log_probs, values, rewards, entropies, R)
        optimizer.zero_grad()
        local_model.zero_grad()  # the one fix: see the module docstring
        total_loss.backward()
        torch.nn.utils.clip_grad_norm_(local_model.parameters(), 40.0)
        for shared_param, local_param in zip(shared_model.parameters(), local_model.parameters()):
            if shared_param.grad is None:
                shared_param.grad = local_param.grad.clone()
            else:
                shared_param.grad.copy_(local_param.grad)
        optimizer.step()


def data_worker(i, env_id, seed, shared_model, data_queue, steps, stop, returns_q):
    env = gym.make(env_id)
    state, _ = env.reset(seed=seed + i)
    torch.manual_seed(seed + i)
    episode_reward = 0.0
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # never outlive the benchmark
        local_model = ActorCritic(env.observation_space.shape[0], env.action_space.n)
        local_model.load_state_dict(shared_model.state_dict())
        experiences = []
        for _ in range(20):
            with torch.no_grad():
                probs, _ = local_model(torch.FloatTensor(state).unsqueeze(0))
            action = torch.multinomial(probs, 1).item()
            next_state, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            experiences.append((state, action, reward, done, next_state))
            state, episode_reward = _advance(
                env, next_state, done, episode_reward + reward, returns_q
            )
        with steps.get_lock():
            steps.value += len(experiences)
        while not stop.is_set():
            try:
                data_queue.put(experiences, timeout=0.5)
                break
            except queue.Full:
                pass


def train_on(shared_model, optimizer, experiences):
    """The central trainer's update: the article's loss on the shared model."""
    states = torch.FloatTensor([e[0] for e in experiences])
    probs, values = shared_model(states)
    dist = torch.distributions.Categorical(probs)
    actions = torch.tensor([e[1] for e in experiences])
    log_probs, entropies = dist.log_prob(actions), dist.entropy()
    last = experiences[-1]
    if last[3]:
        R = torch.tensor(0.0)
    else:
        with torch.no_grad():
            R = shared_model(torch.FloatTensor(last[4]).unsqueeze(0))[1].squeeze()
    # A done inside the segment ends the return there, as `done` does in the article.
    loss = 0.0
    start = 0
    for j, e in enumerate(experiences):
        if e[3]:
            seg = slice(start, j + 1)
            loss = loss + a3c_loss(
                log_probs[seg],
                values[seg, 0],
                [x[2] for x in experiences[seg]],
                entropies[seg],
                torch.tensor(0.0),
            )
            start = j + 1
    if start < len(experiences):
        seg = slice(start, len(experiences))
        loss = loss + a3c_loss(
            log_probs[seg], values[seg, 0], [x[2] for x in experiences[seg]], entropies[seg], R
        )
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(shared_model.parameters(), 40.0)
    optimizer.step()


def run(
    design: str,
    workers: int,
    seconds: float,
    seed: int = 0,
    env_id: str = "CartPole-v1",
    target: float | None = 475.0,
) -> dict:
    """Train until mean_return_100 >= target or `seconds` pass. Returns figures and a curve."""
    ctx = mp.get_context("spawn")
    torch.manual_seed(seed)
    env = gym.make(env_id)
    shared_model = ActorCritic(env.observation_space.shape[0], env.action_space.n)
    env.close()
    shared_model.share_memory()
    optimizer = SharedAdam(shared_model.parameters(), lr=1e-4)
    steps, stop = ctx.Value("l", 0), ctx.Event()
    returns_q, data_q = ctx.Queue(), ctx.Queue(maxsize=64)
    procs = []
    for i in range(workers):
        if design == "gradient":
            args = (i, env_id, seed, shared_model, optimizer, steps, stop, returns_q)
            procs.append(ctx.Process(target=gradient_worker, args=args, daemon=True))
        else:
            args = (i, env_id, seed, shared_model, data_q, steps, stop, returns_q)
            procs.append(ctx.Process(target=data_worker, args=args, daemon=True))
    for p in procs:
        p.start()
    result = _monitor(design, shared_model, optimizer, data_q, returns_q, steps, seconds, target)
    stop.set()
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
    result.update(design=design, workers=workers, seed=seed, env=env_id)
    return result


def _monitor(design, shared_model, optimizer, data_q, returns_q, steps, seconds, target):
    recent: deque[float] = deque(maxlen=100)
    curve = []
    start = time.monotonic()
    next_point = start
    episodes = 0
    solved_at = None
    while time.monotonic() - start < seconds:
        if design == "data":
            with contextlib.suppress(queue.Empty):
                train_on(shared_model, optimizer, data_q.get(timeout=0.05))
        else:
            time.sleep(0.05)
        while True:
            try:
                recent.append(returns_q.get_nowait())
                episodes += 1
            except queue.Empty:
                break
        now = time.monotonic()
        mean = sum(recent) / len(recent) if recent else None
        if now >= next_point:
            curve.append((round(now - start, 2), steps.value, mean))
            next_point = now + 1.0
        if target is not None and len(recent) == 100 and mean >= target:
            solved_at = (now - start, steps.value)
            curve.append((round(now - start, 2), steps.value, mean))
            break
    wall = time.monotonic() - start
    return {
        "solved": solved_at is not None,
        "wall_seconds": round(solved_at[0] if solved_at else wall, 2),
        "env_steps": solved_at[1] if solved_at else steps.value,
        "env_steps_per_second": round(steps.value / wall, 1),
        "episodes": episodes,
        "mean_return_100": sum(recent) / len(recent) if recent else None,
        "curve": curve,
    }


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--design", type=click.Choice(["gradient", "data"]), default="gradient",
              show_default=True)  # fmt: skip
@click.option("--workers", default=2, show_default=True)
@click.option("--seconds", default=60.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--env", "env_id", default="CartPole-v1", show_default=True)
@click.option("--target", default=475.0, show_default=True)
@click.option("--json", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the result here (a results file, with its meta).")  # fmt: skip
def main(design: str, workers: int, seconds: float, seed: int, env_id: str, target: float,
         out: str | None) -> None:  # fmt: skip
    result = run(design, workers, seconds, seed, env_id, target)
    shown = {k: v for k, v in result.items() if k != "curve"}
    print(json.dumps(shown, indent=2))
    if out:
        from benchmarks.harness import results

        results.write(str(Path(out).absolute()), result)


if __name__ == "__main__":
    main()
