"""`--workers N`: N independent actor processes from one command."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """A pool killed outright (SIGKILL, OOM) must not leave its actors running on, feeding
    whichever learner answers next: Linux sends them SIGTERM, and they leave cleanly."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before we asked
        raise SystemExit(0)


def _child(
    learner: str,
    seed: int | None,
    setup_logs: Callable[[], None] | None,
    keys_dir: str | None,
    after_stop: str,
    parent: int,
    learner_timeout: float | None = None,
) -> None:
    from actor.worker import run_actor

    die_with_parent(parent)
    if setup_logs is not None:
        setup_logs()
    raise SystemExit(run_actor(learner, seed, keys_dir, after_stop, learner_timeout))


def run_pool(
    learner: str,
    workers: int,
    seed: int | None,
    setup_logs: Callable[[], None] | None = None,
    keys_dir: str | None = None,
    after_stop: str = "exit",
    learner_timeout: float | None = None,
) -> int:
    ctx = mp.get_context("spawn")
    procs = []
    for i in range(workers):
        child_seed = None if seed is None else seed + i
        p = ctx.Process(
            target=_child,
            args=(
                learner,
                child_seed,
                setup_logs,
                keys_dir,
                after_stop,
                os.getpid(),
                learner_timeout,
            ),
            name=f"actor-{i}",
        )
        p.start()
        procs.append(p)

    def forward(signum, _frame):
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: each actor leaves cleanly

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
    codes = [p.exitcode for p in procs]
    if any(codes):
        log.error("actor exit codes: %s", codes)
    return max((abs(c) for c in codes if c is not None), default=0)
