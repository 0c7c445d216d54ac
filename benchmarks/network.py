"""Throughput and bytes over emulated links, each against loopback measured in the same run.

The learner and 2 actor processes run in separate network namespaces joined by a shaped veth
pair plus a delaying relay (tests/support/netlink.py says how each profile is emulated, and
every run first measures what the link really gives). For each task and mode: env steps/s,
bytes per env step each way, update-to-actor latency, staleness; CartPole runs until it
solves (time to 475). Wire variants (`plain`: the wire without compression, frame-once or
link-sized credit; `bf16`: 16-bit weights and gradients) run on loopback beside the
defaults. Needs root and iproute2; says so and exits otherwise.

    sudo .venv/bin/python -m benchmarks.network
    sudo .venv/bin/python -m benchmarks.network --tasks cartpole --profiles wan --seconds 20
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from benchmarks.harness import launch, machine, plots, results
from benchmarks.harness.records import steady
from benchmarks.harness.table import print_table
from tests.support.netlink import PROFILES, Link, missing_requirements

TASKS = {
    "cartpole": ("CartPole-v1", ("--target-return", "475")),
    "minatar": ("MinAtar/Breakout-v1", ("--target-return", "1e9")),
    "pong": ("ALE/Pong-v5", ("--target-return", "1e9")),
}
VARIANTS = {
    "default": (),
    # The wire before its efficiency options: what the figures are set against.
    "plain": (
        "--wire-compress",
        "none",
        "--no-frame-once",
        "--max-credit",
        "2",
        "--wire-dtype",
        "float32",
        "--weights-lag",
        "0",
    ),  # fmt: skip
    "f32": ("--wire-dtype", "float32"),
    "bf16": ("--wire-dtype", "bfloat16"),
    "lag4": ("--weights-lag", "4"),
    "bf16-lag4": ("--wire-dtype", "bfloat16", "--weights-lag", "4"),
}
WARMUP = 5.0


def run(task: str, mode: str, link: Link | None, seconds: float, variant: str) -> dict:
    """One learner and `a3c actor --workers 2`, over `link` (None: loopback)."""
    env_id, task_flags = TASKS[task]
    with launch.run_dir() as run_dir:
        bind = link.learner_bind if link else "tcp://127.0.0.1:5555"
        learner_cmd = [*launch.A3C, *launch.learner_args(
            mode, bind, run_dir, "--env", env_id,
            "--insecure",  # a private namespace pair, nothing else on the link
            "--max-seconds", str(seconds), "--seed", "1", *task_flags, *VARIANTS[variant],
        )]  # fmt: skip
        actor_cmd = [*launch.A3C, "actor", "--workers", "2", "--learner",
                     link.actor_address if link else bind]  # fmt: skip
        if link:
            learner_cmd, actor_cmd = link.in_learner_ns(*learner_cmd), link.in_actor_ns(*actor_cmd)
        learner = subprocess.Popen(learner_cmd, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, cwd=launch.ROOT)  # fmt: skip
        actors = subprocess.Popen(actor_cmd, stderr=subprocess.DEVNULL, cwd=launch.ROOT)
        try:
            _, err = learner.communicate(timeout=seconds + 120)
            # Actors whose stop was lost behind a backlog wait for a learner that is gone.
            actors.terminate()
            actors.wait(timeout=30)
        finally:
            for p in (learner, actors):
                p.kill()
        if learner.returncode != 0:
            raise RuntimeError(f"learner failed:\n{err[-3000:]}")
        done = launch.read(run_dir, [])
    return _row(task, mode, variant, done.summary, done.records)


def _steady_rate(records: list[dict], warmup: float) -> float | None:
    """Env steps/s from `warmup` seconds after the first env step to the last record."""
    started = [r for r in records if r["env_steps"] > 0]
    if not started:
        return None
    first = [r for r in started if r["wall_seconds"] >= started[0]["wall_seconds"] + warmup]
    a, b = (first or started)[0], records[-1]
    if b["wall_seconds"] <= a["wall_seconds"]:
        return None
    return (b["env_steps"] - a["env_steps"]) / (b["wall_seconds"] - a["wall_seconds"])


def _row(task: str, mode: str, variant: str, summary: dict, records: list[dict]) -> dict:
    # CartPole solves in seconds on a fast link: its rate is taken from the first step on.
    warmup = 0.0 if task == "cartpole" else WARMUP

    def mean(key: str) -> float | None:
        value = steady(records, key, warmup)
        return None if value is None else round(value, 1)

    rate = _steady_rate(records, warmup)

    return {
        "task": task,
        "mode": mode,
        "variant": variant,
        "env_steps_per_second": round(summary["env_steps"] / summary["wall_seconds"], 1),
        "steady_env_steps_per_second": None if rate is None else round(rate, 1),
        "bytes_in_per_env_step": mean("bytes_in_per_env_step"),
        "bytes_out_per_env_step": mean("bytes_out_per_env_step"),
        "weights_latency_ms": mean("weights_latency_ms_mean"),
        "staleness_mean": mean("staleness_mean"),
        "solved": summary["solved"],
        "seconds_to_solve": summary["wall_seconds"] if summary["solved"] else None,
        "env_steps": summary["env_steps"],
        "dropped": summary["dropped"],
    }


def relative(rows: list[dict]) -> None:
    """Each row's steady env steps/s as a fraction of loopback's, same task, mode, variant."""
    base = {(r["task"], r["mode"], r["variant"]): r for r in rows if r["link"] == "loopback"}
    for r in rows:
        ref = base.get((r["task"], r["mode"], r["variant"]))
        ours, theirs = r["steady_env_steps_per_second"], ref and ref["steady_env_steps_per_second"]
        r["vs_loopback"] = round(ours / theirs, 3) if ours and theirs else None


def plot(rows: list[dict], path: Path) -> None:
    plt = plots.pyplot()
    groups = sorted({(r["task"], r["mode"]) for r in rows if r["link"] != "loopback"})
    series = sorted({(r["link"], r["variant"]) for r in rows if r["link"] != "loopback"})
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(series))
    for i, (name, variant) in enumerate(series):
        values = []
        for task, mode in groups:
            match = [r for r in rows if (r["task"], r["mode"], r["link"], r["variant"])
                     == (task, mode, name, variant)]  # fmt: skip
            values.append(100 * (match[0]["vs_loopback"] or 0) if match else 0)
        x = [g + i * width for g in range(len(groups))]
        ax.bar(x, values, width, label=f"{name}, {variant}")
    ax.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))])
    ax.set_xticklabels([f"{t}\n{m}" for t, m in groups])
    ax.set_ylabel("env steps/s, % of loopback")
    ax.axhline(100, color="grey", lw=0.5)
    ax.legend(title="link, wire", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    plots.save(fig, path, dpi=100)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--tasks", default="cartpole,minatar,pong", show_default=True)
@click.option("--modes", default="gradient,data", show_default=True)
@click.option("--profiles", default="dc,cloud,wan", show_default=True)
@click.option("--variants", default="plain,bf16", show_default=True,
              help="Wire variants run on loopback beside the defaults ('' for none).")  # fmt: skip
@click.option("--seconds", default=40.0, show_default=True, help="Per run (CartPole: a cap).")
@click.option("--variant-profiles", default="", help="Profiles that also run the variants.")
@click.option("--skip-default", is_flag=True, help="Only the variants (defaults measured before).")
@click.option("--output", default="network.json", show_default=True)
def main(
    tasks: str,
    modes: str,
    profiles: str,
    variants: str,
    variant_profiles: str,
    skip_default: bool,
    seconds: float,
    output: str,
):
    why = missing_requirements()
    if why:
        click.echo(f"benchmarks/network.py {why}; nothing measured.", err=True)
        sys.exit(2)
    machine.show()
    tasks_, modes_ = tasks.split(","), modes.split(",")
    links = [PROFILES[p] for p in profiles.split(",") if p]
    # Rows of earlier invocations stay; a row measured again replaces its old one.
    out = results.load(output, {"links": {}, "rows": []})
    for stale in ("machine", "date"):  # the meta object says these now
        out.pop(stale, None)
    out["seconds"] = seconds
    rows, checks = out["rows"], out["links"]
    cartpole_cap = max(seconds, 120.0)

    def measure(link_name: str, link: Link | None, variant: str) -> None:
        for task in tasks_:
            for mode in modes_:
                cap = cartpole_cap if task == "cartpole" else seconds
                row = {"link": link_name, **run(task, mode, link, cap, variant)}
                key = ("link", "task", "mode", "variant")
                rows[:] = [r for r in rows if [r[k] for k in key] != [row[k] for k in key]]
                rows.append(row)
                relative(rows)
                results.write(output, out)  # saved as each run ends
                print(f"  {link_name:<9}{task:<9}{mode:<9}{variant:<8}"
                      f"{row['steady_env_steps_per_second']} steps/s, in "
                      f"{row['bytes_in_per_env_step']} out {row['bytes_out_per_env_step']} "
                      f"B/step, solved in {row['seconds_to_solve']}", flush=True)  # fmt: skip

    extra = [v for v in variants.split(",") if v]
    first = () if skip_default else ("default",)
    for variant in (*first, *extra):
        measure("loopback", None, variant)
    for profile in links:
        with Link(profile) as link:
            checks[profile.name] = {**link.check(), "target": profile.describe}
            print(f"link {profile.name}: {profile.describe}; measured {checks[profile.name]}")
            for variant in (*first, *(extra if profile.name in variant_profiles else ())):
                measure(profile.name, link, variant)
    relative(rows)
    print_table(rows, [("link", "link", ""), ("task", "task", ""), ("mode", "mode", ""),
                       ("variant", "wire", ""), ("steady_env_steps_per_second", "steps/s", ",.0f"),
                       ("vs_loopback", "vs loopback", ".0%"),
                       ("bytes_in_per_env_step", "B/step in", ",.0f"),
                       ("bytes_out_per_env_step", "B/step out", ",.0f"),
                       ("weights_latency_ms", "latency ms", ".1f"),
                       ("staleness_mean", "staleness", ".1f"),
                       ("seconds_to_solve", "s to 475", ".1f")])  # fmt: skip
    results.write(output, out)
    plot(rows, results.path(Path(output).with_suffix(".png").name))


if __name__ == "__main__":
    main()
