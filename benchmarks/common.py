"""Shared by the benchmarks: the machine, running this service, tables and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    return {
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine() -> dict:
    m = machine()
    print(
        f"machine: {m['cpu_cores']} cores ({m['processor']}), torch {m['torch']} with "
        f"{m['torch_threads']} threads, python {m['python']}"
    )
    return m


def run_service(
    mode: str,
    actors: int,
    seconds: float,
    *,
    num_envs: int | None = None,
    seed: int = 0,
    env: str = "CartPole-v1",
    target: float | None = None,
    metrics_every: float = 1.0,
    extra: tuple[str, ...] = (),
) -> dict:
    """`a3c train` as a user runs it; returns its summary and metrics records."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "a3c",
            "train",
            "--mode",
            mode,
            "--actors",
            str(actors),
            "--env",
            env,
            "--seed",
            str(seed),
            "--max-seconds",
            str(seconds),
            "--run-dir",
            str(run_dir),
            "--metrics-every",
            str(metrics_every),
            "--target-return",
            "1e9" if target is None else str(target),
            *extra,
        ]
        if num_envs is not None:  # else the service's default
            cmd += ["--num-envs", str(num_envs)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
        records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"summary": summary, "records": records}


def steady(records: list[dict], key: str, warmup: float) -> float | None:
    """Mean of `key` over the records after `warmup` seconds (None where never reported)."""
    values = [r[key] for r in records if r["wall_seconds"] > warmup and r.get(key) is not None]
    return statistics.fmean(values) if values else None


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """columns: (key, heading, format spec)."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([_fmt(row.get(k), f) for k, _, f in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for n, r in enumerate(cells):
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def _fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def write_json(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path
