"""Beyond CartPole: learning on pixels, continuous control and a memory task, and the
frame rates of Atari, each in both modes, as a user runs them (`a3c train`, 2 actors).

    python -m benchmarks.spaces                     # everything, about 35 minutes on 2 cores
    python -m benchmarks.spaces --only memory       # one group: pixels, control, memory, atari

Groups:
  pixels   MinAtar Breakout-v1 from 10x10x4 uint8 frames (CNN), fixed wall-time budget
  control  Pendulum-v1 with a Gaussian policy until mean_return_100 >= -200 (or the cap)
  memory   CartPole-v1 with velocities masked out: --recurrent (LSTM) against the same
           feed-forward network, same env-step budget; mean return of the last 100 episodes
  atari    Pong and Breakout with the standard preprocessing: env steps/s and frames/s
           (4 frames per env step) after a warm-up; no learning claim

Every run passes `--preset none` unless `--presets` is given: the committed results were
made before presets, with the flags below alone.
Writes benchmarks/results/spaces.json and learning curves (spaces_*.png).
"""

from __future__ import annotations

import click

from benchmarks.harness import launch, machine, plots, results
from benchmarks.harness.records import best_return, steady
from benchmarks.harness.table import print_table

MODES = ("gradient", "data")
PIXELS = ("--num-envs", "8")
CONTROL = ("--gamma", "0.9", "--reward-scale", "0.1", "--entropy-coef", "0")
MEMORY = ("--wrappers", "mask-velocity", "--reward-scale", "0.1")
GROUPS = ("pixels", "control", "memory", "atari")


def train(mode: str, env: str, flags: tuple[str, ...], **limits) -> launch.Run:
    return launch.train(env, mode, metrics_every=2, flags=flags, **limits)


def _row(group: str, mode: str, label: str, run: launch.Run) -> dict:
    s = run.summary
    return {
        "group": group,
        "mode": mode,
        "policy": label,
        "final_return": s["mean_return_100"],
        "best_return": best_return(run.records),
        "env_steps": s["env_steps"],
        "wall_seconds": s["wall_seconds"],
        "stop_reason": s["stop_reason"],
        "env_steps_per_second": round(s["env_steps"] / max(s["wall_seconds"], 1e-9)),
        "curve": [(r["wall_seconds"], r["env_steps"], r["mean_return_100"]) for r in run.records],
    }


def pixels(seconds: float, preset: tuple[str, ...]) -> list[dict]:
    flags = (*preset, *PIXELS)
    return [_row("pixels", m, "cnn", train(m, "MinAtar/Breakout-v1", flags, seconds=seconds))
            for m in MODES]  # fmt: skip


def control(seconds: float, preset: tuple[str, ...]) -> list[dict]:
    flags = (*preset, *CONTROL)
    return [_row("control", m, "gaussian",
                 train(m, "Pendulum-v1", flags, seconds=seconds, target=-200))
            for m in MODES]  # fmt: skip


def memory(steps: int, preset: tuple[str, ...]) -> list[dict]:
    rows = []
    for m in MODES:
        for label, flag in (("lstm", ("--recurrent",)), ("feed-forward", ())):
            flags = (*preset, *MEMORY, *flag)
            run = train(m, "CartPole-v1", flags, seconds=600, env_steps=steps)
            rows.append(_row("memory", m, label, run))
    return rows


def atari(seconds: float, preset: tuple[str, ...], warmup: float = 15.0) -> list[dict]:
    rows = []
    for game in ("ALE/Pong-v5", "ALE/Breakout-v5"):
        for m in MODES:
            run = train(m, game, preset, seconds=seconds)
            rate = steady(run.records, "env_steps_per_second", warmup)
            rows.append({
                "group": "atari", "mode": m, "policy": game, "env_steps_per_second": rate,
                "frames_per_second": None if rate is None else 4 * rate,
                "updates_per_second": steady(run.records, "updates_per_second", warmup),
            })  # fmt: skip
    return rows


def plot(rows: list[dict], group: str) -> None:
    try:
        plt = plots.pyplot()
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
    plots.save(fig, results.path(f"spaces_{group}.png"), dpi=110)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--only", type=click.Choice(GROUPS), default=None,
              help="One group; the others' rows stay as recorded.")  # fmt: skip
@click.option("--pixel-seconds", default=300.0, show_default=True)
@click.option("--control-seconds", default=300.0, show_default=True)
@click.option("--memory-steps", default=400_000, show_default=True)
@click.option("--atari-seconds", default=45.0, show_default=True)
@launch.presets_option
def main(only: str | None, pixel_seconds: float, control_seconds: float, memory_steps: int,
         atari_seconds: float, presets: bool) -> None:  # fmt: skip
    machine.show()
    preset = launch.preset_flags(presets)
    groups = {
        "pixels": lambda: pixels(pixel_seconds, preset),
        "control": lambda: control(control_seconds, preset),
        "memory": lambda: memory(memory_steps, preset),
        "atari": lambda: atari(atari_seconds, preset),
    }
    previous = results.load("spaces.json", {"rows": []})["rows"]
    rows = []
    for name, run in groups.items():
        if only in (None, name):
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
    results.write("spaces.json", {"rows": rows})
    for group in ("pixels", "control", "memory"):
        plot(rows, group)


if __name__ == "__main__":
    main()
