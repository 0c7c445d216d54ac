"""`a3c train`: a learner and N actor processes on this machine, over the same ZeroMQ path
as a multi-host run, all stopped when the learner is done.

Start-up is most of a short run, so the actors do not each import torch again: where the
platform forks (Linux), this process imports the actor's code once and forks the actors
before the learner builds anything (no sockets, no torch threads yet to inherit); each
waits on a pipe for the learner's address and joins as any actor does. Elsewhere the actors
are `a3c actor` processes, started once the learner has bound.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection

from learner.config import LearnerConfig

log = logging.getLogger(__name__)

ADDRESS_WAIT = 120.0
"""Seconds a forked actor waits for its learner to bind before it gives up."""


def train(config: LearnerConfig, actors: int, verbose: bool = False) -> dict:
    if sys.platform.startswith("linux"):
        return _train_forked(config, actors)
    return _train_spawned(config, actors, verbose)


def _train_forked(config: LearnerConfig, actors: int) -> dict:
    import actor.worker  # noqa: F401  torch and the actor's code, once, for every fork
    from learner.service import Learner

    ctx = mp.get_context("fork")
    procs, pipes = [], []
    for i in range(actors):
        theirs, ours = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_forked_actor, args=(theirs, os.getpid()), name=f"actor-{i}")
        p.start()
        theirs.close()
        procs.append(p)
        pipes.append(ours)
    endpoint = None  # what each actor is sent: None (no learner) makes it leave
    try:
        learner = Learner(config)
        endpoint = learner.endpoint
        _tell(pipes, endpoint)
        log.info("started %d actors for %s", actors, endpoint)
        return learner.run()
    finally:
        if endpoint is None:
            _tell(pipes, None)
        for pipe in pipes:
            pipe.close()
        _reap(procs)


def _tell(pipes: list[Connection], endpoint: str | None) -> None:
    """Every actor that still waits gets the address (one that died meanwhile is reaped
    later, with its exit code in the log)."""
    for pipe in pipes:
        with contextlib.suppress(OSError):
            pipe.send(endpoint)


def _forked_actor(pipe: Connection, parent: int) -> None:
    from actor.pool import die_with_parent
    from actor.worker import EXIT_UNREACHABLE, run_actor

    die_with_parent(parent)
    # Until the actor installs its own handlers, Ctrl-C is the parent's to act on: it
    # sends no address, and an actor still waiting leaves without a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if not pipe.poll(ADDRESS_WAIT):
            raise SystemExit(EXIT_UNREACHABLE)
        endpoint = pipe.recv()
    except (EOFError, OSError):
        endpoint = None
    finally:
        pipe.close()
    if endpoint is None:  # the learner did not start; it says why
        raise SystemExit(0)
    raise SystemExit(run_actor(endpoint))


def _train_spawned(config: LearnerConfig, actors: int, verbose: bool) -> dict:
    from learner.service import Learner

    learner = Learner(config)
    cmd = [sys.executable, "-m", "a3c", "actor", "--learner", learner.endpoint]
    if verbose:
        cmd.append("--verbose")
    procs = [subprocess.Popen(cmd) for _ in range(actors)]
    log.info("started %d actors for %s", actors, learner.endpoint)
    try:
        return learner.run()
    finally:
        _reap(procs)


def _reap(procs: list, timeout: float = 15.0) -> None:
    """Wait for each actor (a Popen or a forked Process) to leave; stop the ones that
    do not, and all of them at once on a second Ctrl-C."""
    try:
        for p in procs:
            if _wait(p, timeout):
                continue
            log.warning("actor %d did not stop; terminating it", p.pid)
            p.terminate()
            if not _wait(p, 5.0):
                p.kill()
                _wait(p, None)
    except KeyboardInterrupt:
        for p in procs:
            p.kill()
        for p in procs:
            _wait(p, None)
        raise


def _wait(p, timeout: float | None) -> bool:
    if isinstance(p, subprocess.Popen):
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    p.join(timeout)
    return p.exitcode is not None
