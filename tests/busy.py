"""Run a command with every core kept busy beside it: `python -m tests.busy pytest`.

One CPU-bound spinner process per core (os.cpu_count(), or --cores N) runs for as long as
the command does, so the suite sees a machine as loaded as a shared CI host can be.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys


def _spin() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("name a command, e.g. python -m tests.busy pytest")
    spinners = [mp.Process(target=_spin, daemon=True) for _ in range(args.cores)]
    for s in spinners:
        s.start()
    try:
        return subprocess.call(args.command)
    finally:
        for s in spinners:
            s.kill()


if __name__ == "__main__":
    sys.exit(main())
