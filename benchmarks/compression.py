"""Which lossless codec for uint8 frames on the wire: zstandard or lz4, measured on real
rollouts of ALE/Pong-v5 (84x84 stacks of 4) and MinAtar/Breakout-v1 (10x10, 4 channels),
plain and frame-once (rlcore.framestack). Prints bytes per env step, compression ratio and
MB/s to compress and decompress; writes benchmarks/results/compression.json.

    python -m benchmarks.compression
"""

from __future__ import annotations

import time

import click
import numpy as np

from benchmarks.harness import machine, results
from protocol.compression import CODECS, compress, decompress
from rlcore import framestack

TASKS = {"ALE/Pong-v5": 4, "MinAtar/Breakout-v1": 8}


def rollouts(env_id: str, num_envs: int, steps: int, count: int, seed: int) -> list[dict]:
    """`count` rollouts of uniformly random play (what a fresh policy does)."""
    from rlcore.envs import EnvConfig, VectorEnv  # gymnasium: not needed for --help
    from rlcore.rollout import RolloutBuffer

    envs = VectorEnv(EnvConfig(env_id), num_envs, seed)
    envs.reset()
    rng = np.random.default_rng(seed)
    buf = RolloutBuffer(steps, num_envs, envs.spec)
    out = []
    for _ in range(count):
        for t in range(steps):
            buf.obs[t] = envs.obs
            buf.actions[t] = rng.integers(envs.spec.num_actions, size=num_envs)
            envs.step(buf.actions[t])
        buf.bootstrap_obs[:] = envs.obs
        out.append({"obs": buf.obs.copy(), "bootstrap_obs": buf.bootstrap_obs.copy()})
    envs.close()
    return out


def views(rollout: dict) -> dict[str, list[np.ndarray]]:
    """The uint8 arrays each wire form sends for one rollout."""
    packed = framestack.pack(rollout["obs"], rollout["bootstrap_obs"])
    return {
        "plain": [rollout["obs"], rollout["bootstrap_obs"]],
        "frame-once": [packed["stack0"], packed["frames"], packed["restack_obs"]],
    }


def measure(arrays: list[np.ndarray], codec: str, steps: int) -> dict:
    raw = sum(a.nbytes for a in arrays)
    t0 = time.perf_counter()
    blobs = [compress(a, codec) for a in arrays]
    t1 = time.perf_counter()
    for a, blob in zip(arrays, blobs):
        if blob is None:
            continue
        assert bytes(decompress(blob, codec, a.nbytes)) == a.tobytes()
    t2 = time.perf_counter()
    sent = sum(a.nbytes if b is None else len(b) for a, b in zip(arrays, blobs))
    return {"raw": raw, "sent": sent, "c_s": t1 - t0, "d_s": t2 - t1, "steps": steps}


def run_task(env_id: str, num_envs: int, steps: int, count: int) -> dict:
    data = rollouts(env_id, num_envs, steps, count, seed=1)
    forms = {}
    for form in ("plain", "frame-once"):
        for codec in ("none", *CODECS):
            total = {"raw": 0, "sent": 0, "c_s": 0.0, "d_s": 0.0, "steps": 0}
            for r in data:
                m = measure(views(r)[form], codec, steps * num_envs)
                for k in total:
                    total[k] += m[k]
            forms[f"{form}+{codec}"] = {
                "bytes_per_env_step": round(total["sent"] / total["steps"], 1),
                "ratio_vs_plain": None,
                "compress_mb_s": round(total["raw"] / max(total["c_s"], 1e-9) / 1e6, 1),
                "decompress_mb_s": round(total["raw"] / max(total["d_s"], 1e-9) / 1e6, 1),
            }
    base = forms["plain+none"]["bytes_per_env_step"]
    for r in forms.values():
        r["ratio_vs_plain"] = round(base / r["bytes_per_env_step"], 2)
    return forms


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--steps", default=20, show_default=True, help="Rollout length.")
@click.option("--rollouts", default=25, show_default=True, help="Rollouts per task.")
def main(steps: int, rollouts: int) -> None:
    machine.show()
    out = {"rollout_len": steps, "rollouts": rollouts, "tasks": {}}
    for env_id, num_envs in TASKS.items():
        res = run_task(env_id, num_envs, steps, rollouts)
        out["tasks"][env_id] = {"num_envs": num_envs, "forms": res}
        print(f"\n{env_id} ({num_envs} envs x {steps} steps, {rollouts} rollouts)")
        print(f"{'form':<22}{'bytes/step':>12}{'x smaller':>11}{'comp MB/s':>11}{'dec MB/s':>10}")
        for name, r in res.items():
            speeds = (
                ("-", "-")
                if name.endswith("+none")
                else (f"{r['compress_mb_s']:,.0f}", f"{r['decompress_mb_s']:,.0f}")
            )
            print(
                f"{name:<22}{r['bytes_per_env_step']:>12,.0f}{r['ratio_vs_plain']:>11.2f}"
                f"{speeds[0]:>11}{speeds[1]:>10}"
            )
    print()
    results.write("compression.json", out, num_envs=TASKS)


if __name__ == "__main__":
    main()
