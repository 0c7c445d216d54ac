"""A finished run ends cleanly: an actor told to stop during its handshake exits 0 (or,
with --after-stop wait, asks again with back-off), never a retry storm."""

import signal
import time

import zmq

from protocol import Hello, Stop, decode, encode
from tests.helpers import free_port, kill_all, run_a3c, start_actors, start_learner, wait


class StoppedLearner:
    """A ROUTER that answers every hello with a stop, as a learner whose run is over does,
    and counts the hellos."""

    def __init__(self, address: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(address)
        self.hellos = 0

    def serve(self, seconds: float, until=lambda: False) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            if not self.sock.poll(50):
                continue
            identity, *frames = self.sock.recv_multipart()
            msg = decode(frames)
            if isinstance(msg, Hello):
                self.hellos += 1
                stop = Stop("0123456789abcdef", msg.actor_id, "target_reached")
                self.sock.send_multipart([identity, *encode(stop)])

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def test_an_actor_told_to_stop_during_its_handshake_exits_0(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    learner = StoppedLearner(address)
    actor = start_actors(address, log=tmp_path / "actor.log")
    try:
        # from the first hello on (an actor starts slowly on a busy machine), 3 s more
        learner.serve(120.0, until=lambda: learner.hellos >= 1)
        learner.serve(3.0)
        assert wait(actor, 30) == 0
    finally:
        kill_all(actor)
        learner.close()
    assert learner.hellos == 1
    log = (tmp_path / "actor.log").read_text()
    assert "no learner answering" not in log and "ended training" in log


def test_with_after_stop_wait_the_actor_asks_again_with_back_off(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    learner = StoppedLearner(address)
    actor = start_actors(address, "--after-stop", "wait", log=tmp_path / "actor.log")
    try:
        learner.serve(120.0, until=lambda: learner.hellos >= 1)  # however slow its start
        learner.serve(12.0)
        assert actor.poll() is None  # still waiting for a new run
        actor.send_signal(signal.SIGTERM)
        assert wait(actor, 30) == 0
    finally:
        kill_all(actor)
        learner.close()
    # back-off of 5 s, then 10 s: two or three hellos in 12 s, never a storm
    assert 1 <= learner.hellos <= 3, learner.hellos


def test_resuming_a_finished_run_stops_the_waiting_actor(tmp_path):
    """The reported case: a finished run resumed with an actor already waiting."""
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    first = run_a3c("learner", "--mode", "data", "--bind", address, "--run-dir", run_dir,
                    "--max-seconds", "0.5")  # fmt: skip
    assert first.returncode == 0, first.stderr
    actor = start_actors(address, log=tmp_path / "actor.log")
    time.sleep(1.0)  # the actor is up and knocking; the learner may come at any moment
    learner = start_learner("data", address, run_dir, "--resume", "--max-seconds", "0.5")
    try:
        assert wait(learner, 60) == 0
        assert wait(actor, 60) == 0
    finally:
        kill_all(learner, actor)
    attempts = (tmp_path / "actor.log").read_text().count("no learner answering")
    assert attempts < 10, attempts


def _children(pid: int) -> list[int]:
    from pathlib import Path

    kids = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in kids.read_text().split()] if kids.exists() else []


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_actors_do_not_outlive_a_killed_pool():
    """A pool killed outright leaves no actor behind to feed whichever learner answers next."""
    pool = start_actors(f"tcp://127.0.0.1:{free_port()}", "--workers", "2")
    try:
        deadline = time.monotonic() + 60
        while len(_children(pool.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [p for p in _children(pool.pid) if _alive(p)]
        assert len(workers) >= 2, "the pool started no actors"
        time.sleep(3)  # past their start-up, knocking at a learner that is not there
        pool.send_signal(signal.SIGKILL)
        pool.wait()
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "actors outlived their pool"
    finally:
        kill_all(pool)


def test_a_train_whose_learner_cannot_start_ends_at_once_with_its_actors(tmp_path):
    """`a3c train` forks its actors before the learner binds: a learner that cannot bind
    (the port is taken) must send them away, not leave them waiting for an address."""
    ctx = zmq.Context()
    taken = ctx.socket(zmq.ROUTER)
    port = free_port()
    taken.bind(f"tcp://127.0.0.1:{port}")
    try:
        done = run_a3c("train", "--mode", "data", "--actors", "3", "--bind",
                       f"tcp://127.0.0.1:{port}", "--run-dir", tmp_path / "run",
                       timeout=40)  # fmt: skip
    finally:
        taken.close(0)
        ctx.term()
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("Error:")
    assert "Traceback" not in done.stderr and "did not stop" not in done.stderr


def test_a_training_run_acknowledged_by_its_actors_ends_without_the_whole_grace(tmp_path):
    """Each actor answers the learner's stop; with every one answered the learner does not
    wait out --stop-grace (a setting with no flag: 1.5 s), and every actor exits 0."""
    done = run_a3c("train", "--mode", "gradient", "--actors", "2", "--max-env-steps",
                   "3000", "--target-return", "1e9", "--run-dir", tmp_path / "run",
                   "--verbose")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("learner ended training (max_env_steps); exiting") == 2
    assert "exit codes" not in done.stderr
    assert "every connected actor has left; the grace ends early" in done.stderr
