"""`a3c train`: a learner and N actor processes on this machine, over the same ZeroMQ path
as a multi-host run, all stopped when the learner is done."""

from __future__ import annotations

import logging
import subprocess
import sys

from learner.config import LearnerConfig
from learner.service import Learner

log = logging.getLogger(__name__)


def train(config: LearnerConfig, actors: int, verbose: bool = False) -> dict:
    learner = Learner(config)
    cmd = [sys.executable, "-m", "a3c", "actor", "--learner", learner.endpoint]
    if verbose:
        cmd.append("--verbose")
    procs = [subprocess.Popen(cmd) for _ in range(actors)]
    log.info("started %d actors for %s", actors, learner.endpoint)
    try:
        summary = learner.run()
    finally:
        _reap(procs)
    return summary


def _reap(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("actor %d did not stop; terminating it", p.pid)
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
