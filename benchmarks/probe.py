"""What one Kubernetes probe costs: `a3c status` against a live learner, by wall time and
peak RSS per probe process, next to a process that only imports torch, and the same status
query with the imports the CLI's error handling used to make (learner.service and
a3c.evaluate, so torch). Prints the medians and their ratios; writes
benchmarks/results/probe.json.

    python -m benchmarks.probe
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

# Neither imports torch: this process's RSS is a floor for every probe it measures.
from benchmarks.harness import launch, machine, results

ROOT = launch.ROOT
OLD_IMPORTS = (
    "import sys, learner.service, a3c.evaluate; from a3c.cli import main; "
    "main(['status', sys.argv[1], '--timeout', '3'])"
)


def _a3c() -> list[str]:
    """The console script the probe runs, as the pod runs it; `python -m a3c` without one."""
    script = Path(sys.executable).parent / "a3c"
    if script.exists():
        return [str(script)]
    found = shutil.which("a3c")
    return [found] if found else [sys.executable, "-m", "a3c"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and exit code of one process. wait4 gives this
    child's own rusage, where getrusage(RUSAGE_CHILDREN) is the maximum over all of them.
    Linux carries the RSS high-water mark across exec, so a child's figure is at least this
    process's RSS when it spawned it: this process stays light (no torch) until measured."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode  # Linux reports KiB


def series(cmd: list[str], probes: int) -> dict:
    runs = [measure(cmd) for _ in range(probes)]
    if any(code != 0 for *_, code in runs):
        raise RuntimeError(f"{' '.join(cmd)} failed: exit codes {[c for *_, c in runs]}")
    return {
        "command": " ".join(Path(c).name if c == cmd[0] else c for c in cmd),
        "probes": probes,
        "wall_seconds_median": round(statistics.median(w for w, _, _ in runs), 3),
        "wall_seconds_min": round(min(w for w, _, _ in runs), 3),
        "peak_rss_mib_median": round(statistics.median(r for _, r, _ in runs), 1),
    }


def wait_until_serving(address: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            [*_a3c(), "status", address, "--timeout", "1"], capture_output=True, cwd=ROOT
        )
        if done.returncode == 0:
            return
    raise RuntimeError(f"no learner answering at {address}")


def run(probes: int) -> dict:
    address = f"tcp://127.0.0.1:{_free_port()}"
    with launch.run_dir() as run_dir:
        args = launch.learner_args("gradient", address, run_dir, "--env", "CartPole-v1")
        learner = subprocess.Popen([*_a3c(), *args], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip
        try:
            wait_until_serving(address)
            status = series([*_a3c(), "status", address, "--timeout", "3"], probes)
            torch_only = series([sys.executable, "-c", "import torch"], probes)
            before = series([sys.executable, "-c", OLD_IMPORTS, address], probes)
        finally:
            learner.terminate()
            learner.wait(timeout=60)
    return {
        "spawner_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "status": status,
        "import_torch": torch_only,
        "status_with_old_imports": before,
        "wall_ratio_status_to_torch": round(
            status["wall_seconds_median"] / torch_only["wall_seconds_median"], 3
        ),
        "rss_ratio_status_to_torch": round(
            status["peak_rss_mib_median"] / torch_only["peak_rss_mib_median"], 3
        ),
    }


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--probes", default=10, show_default=True, help="Processes of each kind.")
def main(probes: int) -> None:
    result = run(probes)
    machine.show()  # torch comes in here, after the measurements (see measure)
    for name in ("status", "import_torch", "status_with_old_imports"):
        r = result[name]
        print(
            f"  {name:24s} median {r['wall_seconds_median']:.3f} s, "
            f"peak RSS {r['peak_rss_mib_median']:.1f} MiB ({r['probes']} runs)"
        )
    print(
        f"  a3c status / import torch: wall {result['wall_ratio_status_to_torch']:.2f}x, "
        f"RSS {result['rss_ratio_status_to_torch']:.2f}x "
        f"(this process's RSS, a floor for each: {result['spawner_rss_mib']:.1f} MiB)"
    )
    results.write("probe.json", result)


if __name__ == "__main__":
    main()
