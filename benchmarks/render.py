"""Render every figure README.md and docs/*.md quote from benchmarks/results, so that no
figure can drift from the file it comes from.

Each rendered passage sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->`;
NAME picks a renderer below, and every renderer reads one results file. Each table says
which file, commit and date it comes from, and marks results measured on settings other
than today's defaults (the file's `meta.defaults`; a file without `meta` is read as older,
of unknown provenance). The images the docs show are copied from benchmarks/results into
docs/img by the same run, so they cannot drift either.

    python -m benchmarks.render              # rewrite the passages and the images
    python -m benchmarks.render --check      # exit 1 naming each file that differs
                                             # (2: a page that cannot be rendered at all)
    python -m benchmarks.render --root DIR   # a checkout (or a copy) other than this one
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import click

from benchmarks.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
# A marker is a line of its own, so prose can quote one in backticks without opening it.
MARKER = re.compile(
    r"^(?P<open><!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)"
    r"^(?P<close><!-- /results:(?P=name) -->)$",
    re.S | re.M,
)
OPENING = re.compile(r"^<!-- results:([\w.-]+) -->$", re.M)
# The figures the docs show, as drawn by the benchmarks; copied, never edited.
IMAGES = (
    "learning_LunarLander-v3.png",
    "learning_HalfCheetah-v5.png",
    "learning_Walker2d-v5.png",
    "network.png",
    "scale.png",
    "spaces_memory.png",
)


class RenderError(Exception):
    pass


# ---------------------------------------------------------------- numbers and provenance


def steps(n: float | None) -> str:
    """Env steps as people quote them: 146k, 1.92M."""
    if n is None:
        return "–"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}k"
    return f"{n:.0f}"


def num(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _machines(data: dict) -> list[dict | str]:
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    if meta.get("machine"):
        return [meta["machine"]]
    if data.get("machine"):
        return [data["machine"]]
    # Older files record the machine per run (learning.json) or per candidate (tune_*.json).
    holders = list(data.get("candidates", {}).values())
    if isinstance(data.get("runs"), dict):
        for group in data["runs"].values():
            holders += list(group.values()) if isinstance(group, dict) else []
    found: list[dict | str] = []
    for holder in holders:
        m = holder.get("machine") if isinstance(holder, dict) else None
        if m and m not in found:
            found.append(m)
    return found


def _machine_text(m: dict | str) -> str:
    if isinstance(m, str):
        return m
    parts = [f"{m.get('cpu_cores', '?')} cores ({m.get('processor', 'processor unknown')})"]
    if m.get("gpu"):
        parts.append(str(m["gpu"]))
    if m.get("torch"):
        parts.append(f"torch {m['torch']}")
    return ", ".join(parts)


def _date(value) -> str:
    text = str(value)
    return text[:10] if re.match(r"\d{4}-\d\d-\d\dT", text) else text


def provenance(data: dict, name: str) -> str:
    """Where a table's figures come from, and whether they are today's defaults."""
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else None
    m = meta or {}
    commit = m.get("commit") or data.get("commit") or data.get("git_rev")
    date = m.get("date") or data.get("date")
    dirty = m.get("dirty", data.get("dirty", data.get("git_dirty")))
    where = f"Source: `benchmarks/results/{name}`"
    where += f", commit `{str(commit)[:7]}`" if commit else ", commit not recorded"
    if dirty:
        where += " (with uncommitted changes)"
    where += f", {_date(date)}" if date else ", date not recorded"
    machines = _machines(data)
    if machines:
        where += "; " + "; ".join(_machine_text(x) for x in machines)
    where += "."
    if meta is None:
        return where + (
            " **⚠ Older defaults:** the file records no provenance, so read these figures as "
            "measured on the defaults of an earlier version."
        )
    if m.get("defaults") == "current":
        return where + " Today's defaults."
    return where + (
        " **⚠ Older defaults:** measured on the defaults of an earlier version, so today's "
        "may give other figures (the file's `meta` records the command and settings)."
    )


def table(header: list[str] | str, rows: list[list[str]]) -> str:
    """A markdown table; a header given as one string separates its columns with |."""
    if isinstance(header, str):
        header = header.split("|")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- renderers


TRAINERS = (
    ("service gradient", "gradient mode"),
    ("service data", "data mode"),
    ("SB3 A2C (zoo)", "SB3 A2C, rl-zoo settings"),
)


def _learning_cell(row: dict | None, wall: bool = True) -> str:
    if row is None:
        return ""
    text = _reached(row["reached"], row["seeds"], row["steps_to_target"], row["best_return"])
    return text + (f" ({row['wall_to_target']:.1f} s)" if wall else "")


def _reached(reached: int, seeds: int, median_steps: float, best: float | None) -> str:
    """`reached/seeds, median steps`, and where the median run missed, how close it came."""
    text = f"{reached}/{seeds}, {steps(median_steps)}"
    if 2 * reached < seeds and best is not None:
        text += f", best {best:,.0f}"
    return text


def _target(x: float) -> str:
    return f"{x:,.0f}"


def learning(d: dict) -> str:
    """Every task with no flags but the env id, medians over seeds."""
    rows = []
    for env_id, task in TASKS.items():
        found = {t: d["summary"].get(f"{env_id}|{t}") for t, _ in TRAINERS}
        if not any(found.values()):
            continue
        rows.append(
            [
                f"{env_id} ({steps(task.budget)})",
                _target(task.target),
                *(_learning_cell(found[t]) for t, _ in TRAINERS),
            ]
        )
    high = [
        (env_id, d["summary"][f"{env_id}|service {mode}"], mode)
        for env_id, task in TASKS.items()
        if task.also_report is not None
        for mode in ("gradient", "data")
        if f"{env_id}|service {mode}" in d["summary"]
    ]
    notes = [
        f"{env_id} {mode} mode reached {_target(TASKS[env_id].also_report)} in "
        f"{r.get('reached_high', 0)} of {r['seeds']} runs"
        for env_id, r, mode in high
    ]
    text = table(["task (budget)", "target", *(h for _, h in TRAINERS)], rows)
    text += (
        "\n\nEach cell: seeds that reached the target, of those run; median env steps to the "
        "target, a miss counting the whole budget (median wall seconds); where most seeds "
        "missed, their median best mean return."
    )
    if notes:
        text += " " + "; ".join(notes) + "."
    return text + "\n\n" + provenance(d, "learning.json")


def headline(d: dict) -> str:
    """The README's short form of the learning table."""
    rows = []
    for env_id, task in TASKS.items():
        found = {t: d["summary"].get(f"{env_id}|{t}") for t, _ in TRAINERS}
        if any(found.values()):
            rows.append(
                [
                    env_id,
                    _target(task.target),
                    *(_learning_cell(found[t], wall=False) for t, _ in TRAINERS),
                ]
            )
    return (
        table(["task", "target", "gradient mode", "data mode", "SB3 A2C (rl-zoo)"], rows)
        + "\n\nSeeds that reached the target of those run, and the median env steps to it "
        "(a miss counts the whole budget); where most seeds missed, their median best mean "
        "return.\n\n" + provenance(d, "learning.json")
    )


TTS_NAMES = {
    "service gradient": "**service, gradient**",
    "service data": "**service, data**",
    "SB3 PPO (zoo)": "SB3 PPO (rl-zoo)",
    "SB3 A2C (zoo)": "SB3 A2C (rl-zoo)",
    "seed gradient": "original design, gradient",
    "seed data": "original design, data",
}


def time_to_solve(d: dict) -> str:
    rows = [
        [
            f"{r['task']} → {_target(TASKS[r['task']].target)}"
            if r["task"] in TASKS
            else r["task"],
            TTS_NAMES.get(r["trainer"], r["trainer"]),
            r["solved"],
            f"{r['wall_median']:.1f} ({r['wall_min']:.1f}–{r['wall_max']:.1f})",
            f"{steps(r['steps_median'])} ({steps(r['steps_min'])}–{steps(r['steps_max'])})",
            f"{r.get('wall_vs_ref', r.get('wall_vs_sb3')):.2f}",
            f"{r['steps_vs_best_ref']:.2f}",
        ]
        for r in d["rows"]
    ]
    reference = (d.get("meta") or {}).get("settings", {}).get("reference", "SB3 A2C (zoo)")
    header = (
        "task|trainer|solved|wall s, median (min–max)|env steps, median (min–max)|"
        f"wall / {TTS_NAMES.get(reference, reference)}|env steps / best reference"
    )
    return table(header, rows) + "\n\n" + provenance(d, "time_to_solve.json")


def time_to_solve_headline(d: dict) -> str:
    by = {(r["task"], r["trainer"]): r for r in d["rows"]}
    g, dm = by.get(("CartPole-v1", "service gradient")), by.get(("CartPole-v1", "service data"))
    refs = [by[k] for k in (("CartPole-v1", "SB3 PPO (zoo)"), ("CartPole-v1", "SB3 A2C (zoo)"))
            if k in by]  # fmt: skip
    if not (g and dm and refs):
        raise RenderError("time_to_solve.json has no CartPole-v1 rows for both modes and SB3")
    settings = (d.get("meta") or {}).get("settings") or {}
    actors = settings.get("actors") if isinstance(settings, dict) else None
    seeds = str(g["solved"]).split("/")[-1]
    against = " and ".join(
        f"{r['wall_median']:.1f} s and {steps(r['steps_median'])} for Stable-Baselines3 "
        f"{r['trainer'].split()[1]}" for r in refs
    )  # fmt: skip
    start = "" if "start_seconds" not in str(d.get("runs", "")) else ", start-up included"
    return (
        "Wall time to solve CartPole-v1 (mean return ≥ 475)"
        + (f" with {actors} actors" if actors else "")
        + f", median of {seeds} seeds{start}: {g['wall_median']:.1f} s and "
        f"{steps(g['steps_median'])} env steps in gradient mode, {dm['wall_median']:.1f} s and "
        f"{steps(dm['steps_median'])} in data mode, against {against} with rl-zoo's "
        "settings.\n\n" + provenance(d, "time_to_solve.json")
    )


def throughput(d: dict) -> str:
    repeated = d.get("runs", 1) > 1
    rows = [
        [
            *([str(r["run"])] if repeated else []),
            r["mode"],
            str(r["actors"]),
            str(r["envs_per_actor"]),
            num(r["env_steps_per_second"]),
            f"{r['x_seed_baseline']:.1f}",
            f"{r['pct_of_ceiling']:.0f}",
            num(r["updates_per_second"]),
            f"{r['weights_latency_ms']:.1f}",
            num(r["bytes_per_env_step"]),
            f"{r['staleness_mean']:.1f}",
        ]
        for r in d["rows"]
    ]
    header = ("run|" if repeated else "") + (
        "mode|actors|envs/actor|env steps/s|× original|% of ceiling|updates/s|latency ms|"
        "bytes/step|staleness"
    )
    ceiling = d.get("ceiling", {})
    base = d.get("seed_baseline", {})
    text = table(header, rows)
    if ceiling:
        text += (
            "\n\nThe ceiling: one process per core stepping the same envs with the same policy "
            "and batched inference, no learning and no sockets ("
            + ", ".join(
                f"{num(v)} env steps/s with {k} env{'s' if k != '1' else ''}"
                for k, v in ceiling.items()
            )
            + ")."
        )
    if base:
        text += (
            f" The original design ran at {num(min(base.values()))}–{num(max(base.values()))} "
            "env steps/s with as many workers."
        )
    return text + "\n\n" + provenance(d, "throughput.json")


def gpu_learner(d: dict) -> str:
    rows = []
    for r in d["rows"]:
        cuda = r["device"] != "cpu"
        rows.append(
            [
                r["env"],
                f"**{r['device']}**" if cuda else r["device"],
                num(r["env_steps_per_second"]),
                f"{r['x_cpu']:.2f}" if r.get("x_cpu") else "",
                f"{r['updates_per_second']:.1f}",
                f"{r['staleness_mean']:.1f}",
            ]
        )
    first = d["rows"][0] if d["rows"] else {}
    return (
        table(["task", "learner", "env steps/s", "× cpu", "updates/s", "staleness"], rows)
        + f"\n\n{first.get('actors', '?')} actors × {first.get('envs_per_actor', '?')} envs on "
        "the learner's host, data mode.\n\n" + provenance(d, "gpu_learner.json")
    )


LINK_ORDER = ("loopback", "dc", "cloud", "wan")
WIRE_ORDER = ("default", "bf16-lag4", "f32", "plain")
TASK_NAMES = {"cartpole": "CartPole", "minatar": "MinAtar Breakout", "pong": "Pong"}


def _network_rows(d: dict) -> list[dict]:
    order = {t: i for i, t in enumerate(TASK_NAMES)}
    return sorted(
        d["rows"],
        key=lambda r: (
            order.get(r["task"], 9),
            r["mode"] != "data",
            LINK_ORDER.index(r["link"]),
            WIRE_ORDER.index(r["variant"]),
        ),
    )


def network_links(d: dict) -> str:
    parts = [
        f"`{name}` {link['mbit']:.0f} Mbit/s and {link['rtt_ms']:.2f} ms "
        f"(asked for {link['target']})"
        for name, link in d["links"].items()
    ]
    return "Measured through the relay before the runs: " + "; ".join(parts) + "."


def network(d: dict) -> str:
    rows = [
        [
            TASK_NAMES.get(r["task"], r["task"]),
            r["mode"],
            r["link"],
            r["variant"],
            num(r["steady_env_steps_per_second"]),
            f"{r['vs_loopback']:.0%}",
            num(r["bytes_in_per_env_step"]),
            num(r["bytes_out_per_env_step"]),
            f"{r['weights_latency_ms']:.1f}",
            f"{r['staleness_mean']:.1f}",
            "" if r.get("seconds_to_solve") is None else f"{r['seconds_to_solve']:.1f}",
        ]
        for r in _network_rows(d)
    ]
    header = (
        "task|mode|link|wire|env steps/s|vs loopback|bytes/step in|bytes/step out|"
        "latency ms|staleness|s to 475"
    )
    return table(header, rows) + "\n\n" + provenance(d, "network.json")


def network_choice(d: dict) -> str:
    """Per link and mode, the share of loopback each wire kept, over the tasks run there."""
    rows = []
    for link in LINK_ORDER[1:]:
        here = [r for r in d["rows"] if r["link"] == link]
        if not here:
            continue
        cells = []
        for mode in ("gradient", "data"):
            parts = []
            for variant in WIRE_ORDER:
                got = sorted(
                    r["vs_loopback"] for r in here if r["mode"] == mode and r["variant"] == variant
                )
                if got:
                    span = f"{got[0]:.0%}" if got[0] == got[-1] else f"{got[0]:.0%}–{got[-1]:.0%}"
                    parts.append(f"{variant} {span}")
            cells.append(", ".join(parts))
        tasks = ", ".join(sorted({TASK_NAMES.get(r["task"], r["task"]) for r in here}))
        rows.append([f"`{link}` ({tasks})", *cells])
    return (
        table(
            [
                "link (tasks run)",
                "gradient mode: env steps/s vs loopback",
                "data mode: env steps/s vs loopback",
            ],
            rows,
        )
        + "\n\n"
        + provenance(d, "network.json")
    )


def compression(d: dict) -> str:
    rows = []
    for task, entry in d["tasks"].items():
        for form, f in entry["forms"].items():
            rows.append(
                [
                    task,
                    form,
                    num(f["bytes_per_env_step"], 1),
                    f"{f['ratio_vs_plain']:.1f}",
                    num(f["compress_mb_s"]),
                    num(f["decompress_mb_s"]),
                ]
            )
    return (
        table(
            [
                "task",
                "form + codec",
                "bytes/env step",
                "× smaller than plain",
                "compress MB/s",
                "decompress MB/s",
            ],
            rows,
        )
        + f"\n\n{d.get('rollouts', '?')} rollouts of {d.get('rollout_len', '?')} steps per "
        "task.\n\n" + provenance(d, "compression.json")
    )


def wire_dtype(d: dict) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in d["runs"]:
        if r.get("error") is None:
            groups.setdefault((r["task"], r["mode"], r["dtype"]), []).append(r)
    rows = []
    for (task, mode, dtype), runs in groups.items():
        reached = [r["env_steps"] for r in runs if r["reached"]]
        best = [r["best_mean_return"] for r in runs]
        target = _target(TASKS[task].target) if task in TASKS else "?"
        rows.append(
            [
                f"{task} → {target} ({steps(runs[0]['budget'])})",
                mode,
                dtype,
                f"{len(reached)}/{len(runs)}",
                steps(statistics.median(reached)) if reached else "–",
                f"{statistics.median(best):.1f} ({min(best):.1f} to {max(best):.1f})",
            ]
        )
    header = (
        "task (budget)|mode|weights on the wire|reached|median env steps of those|"
        "best mean return, median (range)"
    )
    return table(header, rows) + "\n\n" + provenance(d, "wire_dtype.json")


SPACES = {
    "pixels": "MinAtar Breakout-v1 (CNN on uint8 frames), 300 s",
    "control": "Pendulum-v1 (Gaussian) to -200",
    "memory": "CartPole-v1, velocities masked, 400k env steps",
}


def spaces(d: dict) -> str:
    rows = []
    for r in d["rows"]:
        if r["group"] not in SPACES:
            continue
        rows.append(
            [
                SPACES[r["group"]],
                r["policy"],
                r["mode"],
                f"{r['final_return']:.1f}",
                f"{r['best_return']:.1f}",
                steps(r["env_steps"]),
                f"{r['wall_seconds']:.0f}",
                r["stop_reason"],
            ]
        )
    header = "task|network|mode|mean return at the end|best|env steps|wall s|stopped by"
    return table(header, rows) + "\n\n" + provenance(d, "spaces.json")


def atari(d: dict) -> str:
    games: dict[str, dict[str, dict]] = {}
    for r in d["rows"]:
        if r["group"] == "atari":
            games.setdefault(r["policy"], {})[r["mode"]] = r
    rows = [
        [
            f"`{game}`",
            *(
                num(modes.get(m, {}).get(k))
                for m in ("gradient", "data")
                for k in ("env_steps_per_second", "frames_per_second")
            ),
        ]
        for game, modes in games.items()
    ]
    header = "game|gradient: env steps/s|gradient: frames/s|data: env steps/s|data: frames/s"
    return table(header, rows) + "\n\n" + provenance(d, "spaces.json")


def soak(d: dict) -> str:
    lives = d["rss_per_life"]
    growth = max(life["rss_max_mib"] - life["rss_at_20s_mib"] for life in lives)
    lost = d["lost_env_steps_per_resume"]
    drops = d["dropped_all_lives"]
    top = sorted(drops.items(), key=lambda kv: -kv[1])[:5]
    return (
        f"Over {d['seconds']:.0f} s the learner was killed {d['learner_kills']} times and "
        f"resumed each time, {d['actor_kills']} actors were killed and replaced, and the "
        f"authorized peer sent {d['fuzz_messages_sent']:,} fuzzed messages. The learner died "
        f"only by the kills and ended with exit {d['final_learner_exit_code']} (SIGTERM mid-"
        f"run); a resume lost at most {max(max(lost), 0):,} env steps against its last "
        f"metrics record; RSS grew at most {growth:.1f} MiB within a life "
        f"({min(life['rss_max_mib'] for life in lives):.0f}-"
        f"{max(life['rss_max_mib'] for life in lives):.0f} MiB); every actor left when the run "
        f"ended. {sum(drops.values()):,} messages were refused by {len(drops)} reasons (most: "
        + ", ".join(f"`{k}` {v:,}" for k, v in top)
        + f"), none as `internal_error`; {d['env_steps']:,} env steps in all.\n\n"
        + provenance(d, "soak.json")
    )


def load(d: dict) -> str:
    return (
        f"{d['actors']} actors for {d['seconds']} s: the learner held "
        f"{d['connections_held_max']} connections, accepted "
        f"{d['messages_accepted_per_second']:,.0f} messages/s ({d['updates']:,} updates), and "
        f"dropped and counted {d['bad_messages_dropped']:,} junk messages (of "
        f"{d['bad_messages_sent']:,} sent; the rest never got a turn). Its memory went from "
        f"{d['rss_start_mib']:.0f} MiB to {d['rss_end_mib']:.0f} MiB ({d['rss_middle_mib']:.0f} "
        f"MiB at the midpoint); every actor was served, {d['replies_min']:,} to "
        f"{d['replies_max']:,} replies each (mean {d['replies_mean']:,.0f}).\n\n"
        + provenance(d, "load.json")
    )


def scale(d: dict) -> str:
    """Light actors straight to the learner and through relays, in one run; then, if run,
    the same with the learner across an emulated link."""
    text = _scale_part(d)
    link = d.get("across_link")
    if link is not None:
        shown = f"{link['link']['mbit']:g} Mbit/s and {link['link']['rtt_ms']:.0f} ms round trip"
        text += (
            f"\n\nThe learner across an emulated {link['link']['profile']} link (measured "
            f"{shown}), relays beside their actors:\n\n" + _scale_part(link)
        )
    return text + "\n\n" + provenance(d, "scale.json")


def _scale_part(d: dict) -> str:
    rows = [
        [
            r["case"],
            f"{r['env_steps_per_second']:,.0f}",
            f"{r['learner_cpu_s_per_1k_steps']:.4f}",
            f"{r['learner_messages_per_second']:,.0f}",
            f"{r['learner_messages_per_1k_steps']:.1f}",
            f"{r['learner_bytes_sent_per_version']:,}",
            num(r["latency_ms_median"], 1),
            num(r["staleness_mean"], 1),
        ]
        for r in d["rows"]
    ]
    header = (
        "case|env steps/s|learner CPU s per 1k steps|learner messages/s|learner messages per "
        "1k steps|learner bytes sent per weights version|update to actor, ms (median)|staleness"
    )
    q = d["relayed_over_direct"]
    return table(header, rows) + (
        f"\n\n{d['rows'][0]['actors']} light actors in each case, {d['rows'][0]['seconds']:.0f} s "
        f"measured. Through relays, over direct: bytes per weights version "
        f"{q['learner_bytes_sent_per_version']:.3f}x, messages per 1k env steps "
        f"{q['learner_messages_per_1k_steps']:.3f}x, env steps/s "
        f"{q['env_steps_per_second']:.2f}x, learner CPU per env step "
        f"{q['learner_cpu_s_per_1k_steps']:.2f}x."
    )


def relay_learning(d: dict, name: str = "relay_learning.json") -> str:
    """A task to its target straight to the learner and through relays, per mode."""
    rows = [
        [r["mode"], r["case"], r["solved"], steps(r["env_steps_median"]),
         f"{steps(r['env_steps_min'])}–{steps(r['env_steps_max'])}", f"{r['wall_median']:.1f}"]
        for r in d["summary"]
    ]  # fmt: skip
    header = "mode|case|solved|env steps to the target, median|range|wall s, median"
    return table(header, rows) + "\n\n" + provenance(d, name)


def startup(d: dict) -> str:
    rows = [
        [r["what"], r["mode"] or "", f"{r['median_s']:.2f}", f"{r['min_s']:.2f}–{r['max_s']:.2f}"]
        for r in d["rows"]
    ]
    header = "from|mode|seconds, median|range"
    return (
        table(header, rows)
        + f"\n\nMedian of {d['repeats']} starts each, every one a fresh process; "
        "`python -c 'import torch'` is timed from start to exit.\n\n"
        + provenance(d, "startup.json")
    )


def split(d: dict) -> str:
    rows = [
        [r["case"], str(r["actors"]), num(r["env_steps_per_second"]),
         num(r["updates_per_second"]),
         "" if r["rollouts_per_update"] is None else f"{r['rollouts_per_update']:.1f}",
         "" if r["staleness_mean"] is None else f"{r['staleness_mean']:.1f}"]
        for r in d["rows"]
    ]  # fmt: skip
    header = "data mode, CartPole-v1|actors|env steps/s|updates/s|rollouts per update|staleness"
    return table(header, rows) + "\n\n" + provenance(d, "split.json")


def probe(d: dict) -> str:
    s, t = d["status"], d["import_torch"]
    return (
        f"`a3c status` against a live learner: {s['wall_seconds_median']:.2f} s and "
        f"{s['peak_rss_mib_median']:.0f} MiB (median of {s['probes']}), against "
        f"{t['wall_seconds_median']:.2f} s and {t['peak_rss_mib_median']:.0f} MiB for "
        "`import torch` alone.\n\n" + provenance(d, "probe.json")
    )


def tune(d: dict, name: str, chosen: str | None) -> str:
    """A task's candidates, best first: the top of the ranking and the preset's choice."""
    ranking = d.get("ranking") or list(d["candidates"])
    by_seconds, budget = d.get("rank_by") == "seconds", d["task"]["budget"]
    shown = ranking[:5] + [c for c in [chosen] if c and c not in ranking[:5]]
    rows = []
    for cand in shown:
        c = d["candidates"][cand]
        cells = []
        for mode in ("gradient", "data"):
            runs = c["runs"].get(mode, [])
            if not runs:
                cells.append("")
                continue
            solved = sum(bool(r.get("solved")) for r in runs)
            cell = f"{solved}/{len(runs)}, {steps(c['score'][mode][0])}"
            if by_seconds:
                cost = [r["env_steps"] if r.get("solved") else budget for r in runs]
                middle = steps(statistics.median(cost))
                cell = f"{solved}/{len(runs)}, {c['score'][mode][0]:.1f} s, {middle}"
            cells.append(cell)
        label = f"**{cand}** (the preset)" if cand == chosen else cand
        rows.append([label, f"`{c['flags']}`" if c["flags"] else "(none)", *cells])
    task = d["task"]
    text = table(["candidate", "flags (presets off)", "gradient mode", "data mode"], rows)
    what = (
        "median wall seconds to it (the learner's clock), then median env steps to it, a miss "
        "counting the whole budget"
        if by_seconds
        else "median env steps to it, a miss counting the whole budget"
    )
    text += (
        f"\n\nTarget {_target(task['target'])} within {steps(task['budget'])} env steps. Each "
        f"cell: seeds that reached it, of those run; {what}. {len(shown)} of {len(ranking)} "
        "candidates, best first."
    )
    return text + "\n\n" + provenance(d, name)


def tune_family(d: dict, name: str, chosen: str | None) -> str:
    """A family's candidates, ranked by their worst task, each task's outcome per mode."""
    tasks = d["tasks"]
    rows = []
    for cand in d["ranking"]:
        c = d["candidates"][cand]
        cells = []
        for task in tasks:
            modes = c.get("cells", {}).get(task["env_id"], {})
            parts = []
            for mode in ("gradient", "data"):
                m = modes.get(mode)
                if m:
                    cell = _reached(m["reached"], m["seeds"], m["median_steps"], m["median_best"])
                    parts.append(f"{mode[0]} {cell}")
            cells.append("; ".join(parts))
        label = f"**{cand}** (the preset)" if cand == chosen else cand
        rows.append([label, f"`{c['flags']}`", *cells, f"{c['worst']:.2f}"])
    header = ["candidate", "flags (presets off)", *(t["env_id"] for t in tasks), "worst"]
    targets = ", ".join(f"{t['env_id']} {_target(t['target'])} within {steps(t['budget'])}"
                        for t in tasks)  # fmt: skip
    text = table(header, rows) + (
        f"\n\nTargets: {targets} env steps. Each cell, per mode (g: gradient, d: data): seeds "
        "that reached the target, of those run; median env steps to it, a miss counting the "
        "whole budget; where most missed, their median best return. Worst: the worst task's "
        "shortfall, the worse mode's median env steps over the budget (above 1: missed, by "
        "the fraction of the target it fell short). Best first."
    )
    return text + "\n\n" + provenance(d, name)


def profile(text: str) -> str:
    """py-spy's shares per mode and process, from the text benchmarks/profile.py wrote."""
    meta_line = re.search(r"^# meta: (.+)$", text, re.M)
    if not meta_line:
        raise RenderError("profile.txt has no '# meta:' line (python -m benchmarks.profile)")
    rows, mode, rate = [], "", ""
    for line in text.splitlines():
        head = re.match(r"## (\w+) mode: ([\d,]+) env steps/s", line)
        proc = re.match(r"== (\w+): \d+ samples, ([\d.]+) us CPU per env step", line)
        share = re.match(r"\s*([\d.]+%)\s+(.+?)\s+\(([\d.]+) us/step\)", line)
        if head:
            mode, rate = head.groups()
        elif proc:
            rows.append([mode, rate, proc.group(1), f"{proc.group(2)} µs", []])
        elif share and rows:
            rows[-1][-1].append(f"{share.group(2)} {share.group(1)}")
    if not rows:
        raise RenderError("profile.txt has no '== process' sections")
    body = [[*r[:4], ", ".join(r[4][:5])] for r in rows]
    header = "mode|env steps/s (sampled)|process|CPU per env step|largest shares"
    return (
        table(header, body)
        + "\n\n"
        + provenance({"meta": json.loads(meta_line.group(1))}, "profile.txt")
    )


# ---------------------------------------------------------------- the registry


Renderer = Callable[[Path], str]


def _json(path: str, fn: Callable[[dict], str]) -> tuple[str, Renderer]:
    return path, lambda results: fn(json.loads((results / path).read_text()))


MINATAR_RELAYED = "relay_learning_MinAtar-Breakout-v1.json"
RENDERERS: dict[str, tuple[str, Renderer]] = {
    "scale": _json("scale.json", scale),
    "relay-learning": _json("relay_learning.json", relay_learning),
    "relay-learning-minatar": _json(MINATAR_RELAYED, lambda d: relay_learning(d, MINATAR_RELAYED)),
    "headline": _json("learning.json", headline),
    "learning": _json("learning.json", learning),
    "time-to-solve": _json("time_to_solve.json", time_to_solve),
    "time-to-solve-headline": _json("time_to_solve.json", time_to_solve_headline),
    "throughput": _json("throughput.json", throughput),
    "gpu-learner": _json("gpu_learner.json", gpu_learner),
    "network-links": _json("network.json", network_links),
    "network": _json("network.json", network),
    "network-choice": _json("network.json", network_choice),
    "compression": _json("compression.json", compression),
    "wire-dtype": _json("wire_dtype.json", wire_dtype),
    "spaces": _json("spaces.json", spaces),
    "atari": _json("spaces.json", atari),
    "soak": _json("soak.json", soak),
    "load": _json("load.json", load),
    "probe": _json("probe.json", probe),
    "startup": _json("startup.json", startup),
    "split": _json("split.json", split),
    "profile": ("profile.txt", lambda results: profile((results / "profile.txt").read_text())),
}


def _chosen_candidates(root: Path) -> dict[str, str]:
    """Which tune candidate each preset cites, by results file name."""
    path = root / "rlcore" / "presets.json"
    if not path.exists():
        return {}
    out = {}
    for preset in json.loads(path.read_text()).get("presets", []):
        m = re.match(r"(tune_\S+\.json), candidate ([^\s:,]+)", preset.get("chosen_by", ""))
        if m:
            out[m.group(1)] = m.group(2)
    return out


def renderer(name: str, root: Path) -> tuple[str, Renderer]:
    if name in RENDERERS:
        return RENDERERS[name]
    if name.startswith("tune-"):
        path = f"tune_{name.removeprefix('tune-')}.json"
        chosen = _chosen_candidates(root).get(path)

        def one(results: Path) -> str:
            d = json.loads((results / path).read_text())
            return (tune_family if "tasks" in d else tune)(d, path, chosen)

        return path, one
    raise RenderError(f"no renderer named {name!r}")


def render_text(text: str, root: Path, where: str = "") -> str:
    results = root / "benchmarks" / "results"
    opened = OPENING.findall(text)
    closed = [m.group("name") for m in MARKER.finditer(text)]
    if sorted(opened) != sorted(closed):
        loose = sorted(set(opened) - set(closed)) or opened
        raise RenderError(f"{where}: marker results:{loose[0]} has no closing marker")

    def one(m: re.Match) -> str:
        name = m.group("name")
        try:
            path, fn = renderer(name, root)
        except RenderError as exc:
            raise RenderError(f"{where}: {exc}") from None
        if not (results / path).exists():
            raise RenderError(f"{where}: results:{name} needs benchmarks/results/{path}")
        return m.group("open") + fn(results).rstrip("\n") + "\n" + m.group("close")

    return MARKER.sub(one, text)


def pages(root: Path) -> list[Path]:
    found = [root / "README.md"] + sorted((root / "docs").rglob("*.md"))
    return [p for p in found if p.exists()]


def stale(root: Path, write: bool) -> list[str]:
    """Paths (relative to root) whose text or image differs from what the results say."""
    differ = []
    for page in pages(root):
        text = page.read_text()
        rendered = render_text(text, root, str(page.relative_to(root)))
        if rendered != text:
            differ.append(str(page.relative_to(root)))
            if write:
                page.write_text(rendered)
    if (root / "docs").is_dir():
        for image in IMAGES:
            source = root / "benchmarks" / "results" / image
            copy = root / "docs" / "img" / image
            if not copy.exists() or copy.read_bytes() != source.read_bytes():
                differ.append(str(copy.relative_to(root)))
                if write:
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    copy.write_bytes(source.read_bytes())
    return differ


@click.command(help=" ".join(__doc__.split("\n\n")[0].split()))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if any file differs.")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=ROOT,
    show_default="this checkout",
    help="Repository root holding README.md, docs/ and benchmarks/results/.",
)
def main(check: bool, root: Path) -> None:
    try:
        differ = stale(root.resolve(), write=not check)
    except (RenderError, KeyError, ValueError) as exc:
        # 2, not 1: a page that cannot be rendered is broken, not merely stale.
        click.echo(f"cannot render: {exc}", err=True)
        sys.exit(2)
    if check and differ:
        click.echo("figures differ from benchmarks/results (run python -m benchmarks.render):")
        for path in differ:
            click.echo(f"  {path}")
        sys.exit(1)
    for path in differ:
        click.echo(f"rewrote {path}")


if __name__ == "__main__":
    main()
