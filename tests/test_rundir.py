"""The run directory's guarantees: one learner owns it, renames are durable, and a
checkpoint that cannot be written never ends a run."""

import errno
import json
import logging
import os
import signal
import stat

import pytest

from learner import rundir
from learner.config import LearnerConfig
from learner.rundir import RunDir, RunDirLocked, atomic_write
from tests.helpers import free_port


def test_a_locked_run_directory_refuses_a_second_owner_and_names_the_holder(tmp_path):
    first, second = RunDir(tmp_path / "run"), RunDir(tmp_path / "run")
    first.create()
    first.lock()
    with pytest.raises(RunDirLocked, match=f"{first.root}.*pid {os.getpid()}"):
        second.lock()  # flock: two opens conflict even within one process
    first.unlock()
    second.lock()
    second.unlock()


def _spy_on_fsync(monkeypatch, fail_on_directory=None):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        calls.append("fsync dir" if is_dir else "fsync file")
        if is_dir and fail_on_directory is not None:
            raise fail_on_directory
        real_fsync(fd)

    def replace(src, dst):
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(rundir.os, "fsync", fsync)
    monkeypatch.setattr(rundir.os, "replace", replace)
    return calls


def test_the_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    calls = _spy_on_fsync(monkeypatch)
    atomic_write(tmp_path / "x.json", lambda f: f.write(b"{}"))
    assert calls == ["fsync file", "replace", "fsync dir"]
    assert (tmp_path / "x.json").read_bytes() == b"{}"


def test_a_platform_that_refuses_a_directory_fsync_still_writes(tmp_path, monkeypatch):
    calls = _spy_on_fsync(monkeypatch, OSError(errno.EINVAL, "Invalid argument"))
    atomic_write(tmp_path / "x.json", lambda f: f.write(b"1"))
    assert calls[-1] == "fsync dir" and (tmp_path / "x.json").read_bytes() == b"1"

    real_open = os.open

    def no_directories(path, flags, *args):  # as Windows answers
        if os.path.isdir(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(rundir.os, "open", no_directories)
    atomic_write(tmp_path / "x.json", lambda f: f.write(b"2"))
    assert (tmp_path / "x.json").read_bytes() == b"2"


@pytest.fixture
def in_process_learner(tmp_path):
    """A Learner in this process with no actors: it runs ~1.5 s, checkpointing every 0.3 s.
    Restores the signal handlers its run() installs."""
    from learner.service import Learner

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    config = LearnerConfig(
        mode="gradient",
        env_id="CartPole-v1",
        run_dir=str(tmp_path / "run"),
        bind=f"tcp://127.0.0.1:{free_port()}",
        target_return=1e9,
        max_seconds=1.5,
        checkpoint_every=0.3,
        metrics_every=0.3,
        tensorboard=False,
        stop_grace=0.05,
    )
    made = []
    yield lambda: made.append(Learner(config)) or made[-1]
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    for learner in made:  # a run that raised left its sockets open: term() would hang
        if not learner.bound.ctx.closed:
            learner.bound.ctx.destroy(linger=0)


def _failing_saves(monkeypatch, fail) -> list[bool]:
    """Make RunDir.save_checkpoint raise ENOSPC on the calls `fail(n)` picks; returns one
    entry per call, True where it wrote."""
    calls: list[bool] = []
    real = RunDir.save_checkpoint

    def save(self, state):
        if fail(len(calls)):
            calls.append(False)
            raise OSError(errno.ENOSPC, "No space left on device")
        calls.append(True)
        real(self, state)

    monkeypatch.setattr(RunDir, "save_checkpoint", save)
    return calls


def test_a_failed_checkpoint_write_is_logged_counted_and_retried(
    in_process_learner, monkeypatch, caplog
):
    calls = _failing_saves(monkeypatch, lambda n: n == 0)
    learner = in_process_learner()
    with caplog.at_level(logging.ERROR, logger="learner.checkpoint"):
        result = learner.run()
    assert calls[0] is False and calls.count(True) >= 2  # a later interval, then the final
    assert result["stop_reason"] == "max_seconds"
    assert result["checkpoint_failures"] == 1 and result["final_checkpoint_saved"] is True
    assert learner.rundir.checkpoint.exists()
    (line,) = [r.getMessage() for r in caplog.records if "checkpoint" in r.getMessage()]
    assert "No space left on device" in line and "\n" not in line
    records = [json.loads(x) for x in learner.rundir.metrics.read_text().splitlines()]
    assert records[-1]["checkpoint_failures"] == 1
    assert json.loads(learner.rundir.summary.read_text())["checkpoint_failures"] == 1


def test_a_failed_final_checkpoint_still_finishes_the_run(in_process_learner, monkeypatch):
    calls = _failing_saves(monkeypatch, lambda n: True)
    learner = in_process_learner()
    result = learner.run()
    assert result["checkpoint_failures"] == len(calls) >= 2
    assert result["final_checkpoint_saved"] is False
    assert not learner.rundir.checkpoint.exists()
    assert json.loads(learner.rundir.summary.read_text())["final_checkpoint_saved"] is False
