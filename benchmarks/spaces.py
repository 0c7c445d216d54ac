"""Beyond CartPole: learning on pixels, continuous control and a memory task, and the
frame rates of Atari, each in both modes, as a user runs them (`a3c train`, 2 actors).

    python benchmarks/spaces.py                     # everything, about 35 minutes on 2 cores
    python benchmarks/spaces.py --only memory       # one group: pixels, control, memory, atari

Groups:
  pixels   MinAtar Breakout-v1 from 10x10x4 uint8 frames (CNN), fixed wall-time budget
  control  Pendulum-v1 with a Gaussian policy until mean_return_100 >= -200 (or the cap)
  memory   CartPole-v1 with velocities masked out: --recurrent (LSTM) against the same
           feed-forward network, same env-step budget; mean return of the last 100 episodes
  atari    Pong and Breakout with the standard preprocessing: env steps/s and frames/s
           (4 frames per env step) after a warm-up; no learning claim

Writes benchmarks/results/spaces.json and learning curves (spaces_*.png).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, print_machine, print_table, steady, write_json

MODES = ("gradient", "data")
PIXELS = ("--env", "MinAtar/Breakout-v1", "--num-envs", "8")
CONTROL = (
    "--env", "Pendulum-v1", "--gamma", "0.9", "--reward-scale", "0.1",
    "--entropy-coef", "0",
)  # fmt: skip
MEMORY = (
    "--env", "CartPole-v1", "--wrappers", "mask-velocity", "--reward-scale", "0.1",
    "--target-return", "1e9",
)  # fmt: skip


def train(mode: str, seconds: float, extra: tuple[str, ...], keep: Path | None = None) -> dict:
    """One `a3c train` run with 2 actors; its summary, metrics and (optionally) kept files."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [
            sys.executable, "-m", "a3c", "train", "--mode", mode, "--actors", "2",
            "--max-seconds", str(seconds), "--run-dir", str(run_dir), "--metrics-every", "2",
            "--no-tensorboard", *extra,
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 180)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
        records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(run_dir, keep)
    return {"summary": summary, "records": records}


def _row(group: str, mode: str, label: str, run: dict) -> dict:
    s, records = run["summary"], run["records"]
    best = max((r["mean_return_100"] for r in records if r["mean_return_100"] is not None),
               default=None)  # fmt: skip
    return {
        "group": group,
        "mode": mode,
        "policy": label,
        "final_return": s["mean_return_100"],
        "best_return": best,
        "env_steps": s["env_steps"],
        "wall_seconds": s["wall_seconds"],
        "stop_reason": s["stop_reason"],
        "env_steps_per_second": round(s["env_steps"] / max(s["wall_seconds"], 1e-9)),
        "curve": [(r["wall_seconds"], r["env_steps"], r["mean_return_100"]) for r in records],
    }


def pixels(seconds: float) -> list[dict]:
    return [_row("pixels", m, "cnn", train(m, seconds, PIXELS)) for m in MODES]


def control(seconds: float) -> list[dict]:
    extra = (*CONTROL, "--target-return", "-200")
    return [_row("control", m, "gaussian", train(m, seconds, extra)) for m in MODES]


def memory(steps: int) -> list[dict]:
    rows = []
    for m in MODES:
        for label, flag in (("lstm", ("--recurrent",)), ("feed-forward", ())):
            extra = (*MEMORY, *flag, "--max-env-steps", str(steps))
            rows.append(_row("memory", m, label, train(m, 600, extra)))
    return rows


def atari(seconds: float, warmup: float = 15.0) -> list[dict]:
    rows = []
    for game in ("ALE/Pong-v5", "ALE/Breakout-v5"):
        for m in MODES:
            run = train(m, seconds, ("--env", game, "--target-return", "1e9"))
            rate = steady(run["records"], "env_steps_per_second", warmup)
            rows.append({
                "group": "atari", "mode": m, "policy": game, "env_steps_per_second": rate,
                "frames_per_second": None if rate is None else 4 * rate,
                "updates_per_second": steady(run["records"], "updates_per_second", warmup),
            })  # fmt: skip
    return rows


def plot(rows: list[dict], group: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if r["group"] == group and r.get("curve"):
            pts = [(steps, ret) for _, steps, ret in r["curve"] if ret is not None]
            ax.plot(*zip(*pts), label=f"{r['mode']}, {r['policy']}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean return (last 100 episodes)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title({"pixels": "MinAtar Breakout-v1", "control": "Pendulum-v1",
                  "memory": "CartPole-v1, velocities masked"}[group])  # fmt: skip
    fig.tight_layout()
    path = RESULTS / f"spaces_{group}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["pixels", "control", "memory", "atari"])
    parser.add_argument("--pixel-seconds", type=float, default=300)
    parser.add_argument("--control-seconds", type=float, default=300)
    parser.add_argument("--memory-steps", type=int, default=400_000)
    parser.add_argument("--atari-seconds", type=float, default=45)
    args = parser.parse_args()
    machine = print_machine()
    groups = {
        "pixels": lambda: pixels(args.pixel_seconds),
        "control": lambda: control(args.control_seconds),
        "memory": lambda: memory(args.memory_steps),
        "atari": lambda: atari(args.atari_seconds),
    }
    path = RESULTS / "spaces.json"
    previous = json.loads(path.read_text())["rows"] if path.exists() else []
    rows = []
    for name, run in groups.items():
        if args.only in (None, name):
            print(f"-- {name}", flush=True)
            rows += run()
        else:
            rows += [r for r in previous if r["group"] == name]
    print_table(rows, [
        ("group", "group", ""), ("mode", "mode", ""), ("policy", "policy", ""),
        ("final_return", "final return", ".1f"), ("best_return", "best return", ".1f"),
        ("env_steps", "env steps", ","), ("wall_seconds", "wall s", ".0f"),
        ("env_steps_per_second", "env steps/s", ",.0f"),
        ("frames_per_second", "frames/s", ",.0f"),
    ])  # fmt: skip
    write_json("spaces.json", {"machine": machine, "rows": rows})
    for group in ("pixels", "control", "memory"):
        plot(rows, group)


if __name__ == "__main__":
    main()
