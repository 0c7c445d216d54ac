"""An actor never waits in silence: overdue replies and rejoin requests bring a fresh hello,
a refusal or another protocol version ends it with one line, and a joined actor whose
learner is gone for good exits within its --learner-timeout. Each test puts a real actor
process in front of a fake learner: a ROUTER socket in the test process."""

from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from actor.credit import CreditPacer
from protocol import (
    PROTOCOL_VERSION,
    Gradient,
    Heartbeat,
    Hello,
    Message,
    Rejoin,
    Welcome,
    decode,
    encode,
)
from protocol.wire import PLAIN
from rlcore.envs import EnvConfig, probe_env
from rlcore.hyperparams import Hyperparams
from rlcore.networks import build_network, get_flat_params
from tests.helpers import free_port, kill_all, start_actors, wait, wait_for

RUN_ID = "feedfacefeedface"
START = 60.0
"""Seconds an actor process may take to start and say hello on a loaded machine."""


def welcome_parts(heartbeat_interval: float, heartbeat_timeout: float):
    """Settings as the learner's welcome has them, and weights of the right size."""
    env = EnvConfig("CartPole-v1")
    spec = probe_env(env)
    hp = Hyperparams(num_envs=1, rollout_len=5)
    settings = {
        "mode": "gradient",
        "env": env.to_dict(),
        "env_spec": spec.to_dict(),
        "hyperparams": hp.to_dict(),
        "seed": 0,
        "max_outstanding": 1,
        "max_credit": 1,
        "wire": {**PLAIN.to_dict(), "frame_once": False},
        "heartbeat_interval": heartbeat_interval,
        "heartbeat_timeout": heartbeat_timeout,
        "max_message_bytes": 1 << 20,
        "work_steps": hp.rollout_len * hp.num_envs,
    }
    return settings, get_flat_params(build_network(spec, hp))


class FakeLearner:
    """A ROUTER that records what it gets, with when and from which identity, and answers
    as each test's handler says."""

    def __init__(self, address: str, heartbeat_interval=0.3, heartbeat_timeout=1.5):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(address)
        self.settings, self.weights = welcome_parts(heartbeat_interval, heartbeat_timeout)
        self.got: list[tuple[float, bytes, Message]] = []

    def of(self, kind: type) -> list[tuple[float, bytes, Message]]:
        return [g for g in self.got if isinstance(g[2], kind)]

    def send(self, identity: bytes, frames: list) -> None:
        self.sock.send_multipart([identity, *frames])

    def welcome(self, identity: bytes) -> None:
        self.send(identity, encode(Welcome(RUN_ID, 0, 0, time.time(), self.settings, self.weights)))

    def serve(self, handler, until, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.kinds()}")
            if not self.sock.poll(50):
                continue
            identity, *frames = self.sock.recv_multipart()
            msg = decode(frames)
            self.got.append((time.monotonic(), identity, msg))
            handler(identity, msg)

    def kinds(self) -> list[str]:
        return [m.TYPE for _, _, m in self.got]

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def lines_with(log, text: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if text in line]


@pytest.fixture
def address():
    return f"tcp://127.0.0.1:{free_port()}"


def test_work_left_unanswered_while_heartbeats_are_brings_a_fresh_hello(tmp_path, address):
    learner = FakeLearner(address, heartbeat_interval=0.3, heartbeat_timeout=1.5)
    log = tmp_path / "actor.log"
    actor = start_actors(address, log=log)

    def handler(identity, msg):
        if isinstance(msg, Hello) and len(learner.of(Hello)) == 1:
            learner.welcome(identity)
        elif isinstance(msg, Heartbeat):  # answered, as a learner does; the work never is
            learner.send(identity, encode(Heartbeat(RUN_ID, msg.actor_id)))

    try:
        learner.serve(handler, lambda: len(learner.of(Hello)) >= 2, START, "a second hello")
    finally:
        kill_all(actor)
        learner.close()
    (_, first, _), (again, second, _) = learner.of(Hello)
    sent_work = learner.of(Gradient)[0][0]
    assert learner.of(Heartbeat), "the actor should have kept the link alive meanwhile"
    assert 1.5 <= again - sent_work < 6.0, again - sent_work
    assert second != first, "a fresh hello comes on a fresh socket"
    warned = lines_with(log, "no reply from the learner")
    assert len(warned) == 1 and "deadline 1.5s" in warned[0], warned


def test_a_rejoin_for_this_run_or_none_brings_a_fresh_hello(tmp_path, address):
    # A long deadline: only the rejoin requests can bring the hellos here.
    learner = FakeLearner(address, heartbeat_interval=0.3, heartbeat_timeout=60)
    log = tmp_path / "actor.log"
    actor = start_actors(address, log=log)
    sent: dict[str, float] = {}

    def handler(identity, msg):
        if isinstance(msg, Hello):
            learner.welcome(identity)
        elif isinstance(msg, Gradient) and len(learner.of(Hello)) == 1 and not sent:
            # About another run: late news, not for this actor's run.
            learner.send(identity, encode(Rejoin("0000000000000000", "earlier run")))
            sent["other"] = time.monotonic()
        elif isinstance(msg, Heartbeat) and "other" in sent and "empty" not in sent:
            if time.monotonic() - sent["other"] > 2.0:
                learner.send(identity, encode(Rejoin("", "unknown actor")))
                sent["empty"] = time.monotonic()
        elif isinstance(msg, Gradient) and len(learner.of(Hello)) == 2 and "own" not in sent:
            learner.send(identity, encode(Rejoin(RUN_ID, "unknown actor")))
            sent["own"] = time.monotonic()

    try:
        learner.serve(handler, lambda: len(learner.of(Hello)) >= 3, START, "three hellos")
    finally:
        kill_all(actor)
        learner.close()
    hellos = [t for t, _, _ in learner.of(Hello)]
    assert hellos[1] > sent["empty"] and hellos[1] - sent["empty"] < 5.0
    assert hellos[2] > sent["own"] and hellos[2] - sent["own"] < 5.0
    assert len(lines_with(log, "asked this actor to join again")) == 2


def test_a_refusal_ends_the_actor_with_one_line_naming_both_versions(tmp_path, address):
    learner = FakeLearner(address)
    log = tmp_path / "actor.log"
    actor = start_actors(address, log=log)
    # As a learner of a later protocol sends it: its own version in the header as well.
    fields = {"reason": "protocol 4 is too old", "version": 99}
    refused = msgpack.packb({"v": 99, "t": "refused", "f": fields, "a": []})

    def handler(identity, msg):
        if isinstance(msg, Hello):
            learner.send(identity, [refused])

    try:
        learner.serve(handler, lambda: bool(learner.of(Hello)), START, "a hello")
        answered = time.monotonic()
        assert wait(actor, 30) == 3
        assert time.monotonic() - answered < 10
    finally:
        kill_all(actor)
        learner.close()
    assert len(learner.of(Hello)) == 1, "a refused actor does not ask again"
    named = lines_with(log, "99")
    assert len(named) == 1, log.read_text()
    assert f"this actor protocol {PROTOCOL_VERSION}" in named[0]
    assert "upgrade this actor" in named[0]


def test_a_welcome_with_malformed_settings_ends_the_actor_naming_the_setting(tmp_path, address):
    learner = FakeLearner(address)
    learner.settings["hyperparams"]["lr"] = "fast"
    log = tmp_path / "actor.log"
    actor = start_actors(address, log=log)

    def handler(identity, msg):
        if isinstance(msg, Hello):
            learner.welcome(identity)

    try:
        learner.serve(handler, lambda: bool(learner.of(Hello)), START, "a hello")
        assert wait(actor, 30) == 2
    finally:
        kill_all(actor)
        learner.close()
    assert not learner.of(Gradient), "nothing is computed on settings it cannot read"
    (line,) = lines_with(log, "cannot act on the learner's settings")
    assert "TypeError" in line and "hyperparams.lr" in line, line


def test_a_learner_of_an_older_protocol_ends_the_actor_with_one_line(tmp_path, address):
    learner = FakeLearner(address)
    log = tmp_path / "actor.log"
    actor = start_actors(address, log=log)
    fields = {"run_id": RUN_ID, "actor_id": "x", "reason": "?"}
    older = msgpack.packb({"v": PROTOCOL_VERSION - 1, "t": "stop", "f": fields, "a": []})

    def handler(identity, msg):
        if isinstance(msg, Hello):
            learner.send(identity, [older])

    try:
        learner.serve(handler, lambda: bool(learner.of(Hello)), START, "a hello")
        assert wait(actor, 30) == 3
    finally:
        kill_all(actor)
        learner.close()
    named = lines_with(log, "upgrade the learner")
    assert len(named) == 1, log.read_text()
    assert f"protocol {PROTOCOL_VERSION - 1}" in named[0]
    assert f"protocol {PROTOCOL_VERSION}:" in named[0]


def test_a_joined_actor_whose_learner_is_gone_exits_4_but_waits_for_a_first(tmp_path, address):
    log = tmp_path / "actor.log"
    actor = start_actors(address, "--learner-timeout", "2", log=log)
    learner = None
    try:
        # Knocking past its timeout with no learner ever seen: it keeps waiting.
        wait_for(lambda: lines_with(log, "(attempt 2)"), START, "two unanswered hellos")
        assert actor.poll() is None
        learner = FakeLearner(address, heartbeat_interval=0.3, heartbeat_timeout=1.5)

        def handler(identity, msg):
            if isinstance(msg, Hello):
                learner.welcome(identity)

        learner.serve(handler, lambda: bool(learner.of(Gradient)), 30, "the actor's work")
        learner.close()
        learner = None
        gone = time.monotonic()
        assert wait(actor, 30) == 4
        # the reply deadline (1.5 s), then the learner timeout (2 s), with room for a slow box
        assert time.monotonic() - gone < 2 + 1.5 + 5
    finally:
        kill_all(actor)
        if learner is not None:
            learner.close()
    said = lines_with(log, "no learner answered")
    assert len(said) == 1 and "--learner-timeout" in said[0], log.read_text()


def test_the_learner_timeout_defaults_to_300s_and_to_forever_for_actors_that_wait(
    monkeypatch,
):
    import actor.worker as worker

    seen = []

    class Recorder:
        def __init__(self, learner, seed, keys, after_stop, learner_timeout):
            seen.append((after_stop, learner_timeout))

        def run(self):
            return 0

    monkeypatch.setattr(worker, "Actor", Recorder)
    worker.run_actor("tcp://127.0.0.1:1")
    worker.run_actor("tcp://127.0.0.1:1", after_stop="wait")
    worker.run_actor("tcp://127.0.0.1:1", after_stop="wait", learner_timeout=5)
    assert seen == [("exit", 300.0), ("wait", 0.0), ("wait", 5)]


def test_the_reply_deadline_is_four_slowest_recent_round_trips_or_the_floor():
    pacer = CreditPacer(1, 1)
    assert pacer.reply_deadline(10.0) == 10.0 and pacer.oldest_wait() == 0.0
    pacer.on_send()
    time.sleep(0.05)
    assert pacer.oldest_wait() >= 0.05
    pacer.on_reply(held=0.04)  # the learner's hold counts: the actor waited all of it
    assert pacer.reply_deadline(0.01) >= 0.2
    assert pacer.reply_deadline(10.0) == 10.0
