"""Where the CPU goes per env step: py-spy samples of the learner and one actor of
`a3c train --actors 2 --env CartPole-v1` (the defaults), in each mode.

Each process is sampled (py-spy, non-blocking, 200 Hz, busy samples only) for `--seconds`
after a warm-up. Every sample is put in one bucket by the innermost frame a rule knows
(env stepping, policy forward, zmq, codec, loss, backward, optimizer, ...), and a bucket's
cost is given as its share of the process's samples and as microseconds of CPU per env
step of the whole run. Needs py-spy (the `bench` extra) and permission to attach (root,
or kernel.yama.ptrace_scope 0):

    python -m benchmarks.profile                 # both modes, writes profile.txt
    python -m benchmarks.profile --modes data --seconds 6

Writes benchmarks/results/profile.txt: a header with the commit and date, then one section
per mode and process, largest bucket first.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from benchmarks.harness import launch, machine, results

RATE = 200
# (bucket, pattern on one frame "function (file:line)"); the innermost frame that matches
# any rule names the sample's bucket, so the more specific rules come first.
RULES: list[tuple[str, str]] = [
    ("validation", r"learner/validation\.py"),
    ("codec", r"protocol/(codec|wire|compression|schema)\.py|zstandard|msgpack"),
    ("zmq send/recv", r"zmq/sugar/socket\.py|send_multipart|recv_multipart|zmq/backend"),
    ("waiting (poll)", r"\bpoll\b"),
    ("optimizer", r"torch/optim/|^step \(.*rlcore/flat\.py"),
    ("backward", r"torch/autograd|_tensor\.py.*backward|\bbackward\b"),
    ("clip grad norm", r"clip_grad|_get_total_norm"),
    ("weights to/from vector", r"parameters_to_vector|vector_to_parameters|rlcore/flat\.py"),
    ("returns (V-trace, GAE)", r"rlcore/returns\.py"),
    ("loss forward", r"rlcore/losses\.py"),
    ("sampling", r"rlcore/distributions\.py"),
    ("policy forward", r"rlcore/networks\.py|torch/nn/modules"),
    ("env stepping", r"gymnasium/|rlcore/envs\.py|rlcore/wrappers\.py"),
    ("normalization", r"normstats\.py|rlcore/normalize\.py"),
    ("rollout buffer", r"rlcore/rollout\.py|actor/collector\.py"),
    ("learner bookkeeping", r"learner/"),
    ("actor bookkeeping", r"actor/"),
    ("import and start-up", r"<module>|importlib"),
]


def bucket(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, pattern in RULES:
            if re.search(pattern, frame):
                return name
    return "other"


def read_raw(path: Path) -> collections.Counter:
    """py-spy's raw (collapsed) output: `frame;frame;...;leaf count` per line."""
    counts: collections.Counter = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            # the first frame is the thread (e.g. "process 123:..."), not code
            counts[bucket(stack.split(";"))] += int(n)
    return counts


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        found += [int(k) for k in kids]
    return found


def py_spy() -> str | None:
    """py-spy on PATH, or beside this Python (a virtual environment not activated)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    cmd = [py_spy(), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
           str(RATE), "--nonblocking", "--format", "raw", "--output", str(out)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def profile_mode(mode: str, warmup: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run"
        args = ["train", "--mode", mode, "--env", "CartPole-v1", "--actors", "2",
                "--run-dir", str(path), "--metrics-every", "1", "--no-tensorboard",
                "--target-return", "1e9", "--max-seconds", str(warmup + seconds + 3)]  # fmt: skip
        launch.remember(args, path)
        train = subprocess.Popen([*launch.A3C, *args], cwd=launch.ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(warmup)
        actor = children(train.pid)[0]
        outs = {"learner": Path(tmp) / "learner.txt", "actor": Path(tmp) / "actor.txt"}
        spies = [record(train.pid, seconds, outs["learner"]), record(actor, seconds, outs["actor"])]
        for spy in spies:
            _, err = spy.communicate()
            if spy.returncode != 0:
                raise click.ClickException(f"py-spy failed: {err.strip()[-500:]}")
        train.wait()
        run = launch.read(path, args)
        counts = {proc: read_raw(out) for proc, out in outs.items()}
    # env steps of the whole run (both actors) while the samples were taken
    window = [r for r in run.records if warmup - 1 <= r["wall_seconds"] <= warmup + seconds]
    steps = window[-1]["env_steps"] - window[0]["env_steps"] if len(window) > 1 else 0
    span = window[-1]["wall_seconds"] - window[0]["wall_seconds"] if len(window) > 1 else 1
    return {"mode": mode, "env_steps_per_second": steps / span, "counts": counts}


def report(found: list[dict], seconds: float) -> str:
    lines = []
    for f in found:
        rate = f["env_steps_per_second"]
        lines.append(f"## {f['mode']} mode: {rate:,.0f} env steps/s while sampled")
        for proc, counts in f["counts"].items():
            total = sum(counts.values()) or 1
            # CPU seconds in the window over the env steps of the window
            per_step = 1e6 / RATE / (rate * seconds) if rate else 0.0
            lines.append(f"== {proc}: {total} samples, {total * per_step:.1f} us CPU per env step")
            for name, n in counts.most_common():
                lines.append(f"{100 * n / total:5.1f}%  {name}  ({n * per_step:.2f} us/step)")
        lines.append("")
    return "\n".join(lines)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--modes", default="gradient,data", show_default=True)
@click.option("--warmup", default=4.0, show_default=True, help="Seconds before sampling.")
@click.option("--seconds", default=8.0, show_default=True, help="Seconds sampled.")
def main(modes: str, warmup: float, seconds: float) -> None:
    if py_spy() is None:
        raise click.ClickException("py-spy is not installed: pip install -c constraints.txt "
                                   "-e '.[bench]'")  # fmt: skip
    machine.show()
    found = [profile_mode(m, warmup, seconds) for m in modes.split(",")]
    meta = results.provenance({"rate_hz": RATE, "sampler": "py-spy --nonblocking"})
    text = (
        f"# py-spy profile of `a3c train --actors 2 --env CartPole-v1` (defaults)\n"
        f"# meta: {json.dumps(meta)}\n\n" + report(found, seconds)
    )
    print(text)
    results.path("profile.txt").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
