"""What a single peer can and cannot do to a learner: each case once ended or misled it.
The learner is driven in-process (tests.inproc) or over real sockets where keys matter."""

from __future__ import annotations

import math
import time

import msgpack
import numpy as np
import pytest
import zmq

import learner.intake as intake
import learner.service as service
from learner.config import LearnerConfig
from learner.service import Learner
from protocol import (
    PROTOCOL_VERSION,
    Episodes,
    Gradient,
    Heartbeat,
    Hello,
    Refused,
    Rejoin,
    Stop,
    Weights,
    Welcome,
    decode,
    encode,
)
from protocol.security import keygen, load_client_keys
from protocol.sockets import connect_dealer
from tests.frames import frame, header
from tests.inproc import InProcessLearner


@pytest.fixture
def data_learner(tmp_path):
    harness = InProcessLearner(tmp_path / "run", mode="data")
    yield harness
    harness.close()


@pytest.fixture
def grad_learner(tmp_path):
    harness = InProcessLearner(tmp_path / "run", mode="gradient")
    yield harness
    harness.close()


def test_a_rollout_from_a_future_weights_version_is_dropped_and_learning_goes_on(data_learner):
    h = data_learner
    welcome = h.join("a", b"A")
    h.send(b"A", h.work("a", welcome, version=welcome.weights_version + 5))
    h.learn()  # popped an empty queue before
    assert h.dropped.get("future_version") == 1 and not h.learner.intake.pending
    h.send(b"A", h.work("a", welcome))
    h.learn()
    assert h.learner.updater.version == welcome.weights_version + 1


def test_absurd_episode_returns_are_refused_and_never_solve_the_run(grad_learner):
    h = grad_learner
    welcome = h.join("a", b"A")
    for _ in range(100):
        h.send(b"A", Episodes(welcome.run_id, "a", [1.7e308], [10]))
    stats = h.learner.stats
    assert h.dropped.get("bad_value") == 100 and stats.episodes == 0
    assert stats.mean_return_100 is None or math.isfinite(stats.mean_return_100)
    assert not h.learner.stop_rule.solved()


def test_a_message_is_one_frame_and_extra_frames_are_dropped(grad_learner):
    h = grad_learner
    welcome = h.join("a", b"A")
    (whole,) = encode(h.work("a", welcome))
    h.deliver(b"A", [bytes(whole), b"more"])
    h.deliver(b"A", [])
    assert h.dropped.get("bad_frames") == 2 and h.learner.updater.version == 0


def test_the_message_size_limit_fits_the_run_and_holds_on_the_socket(grad_learner):
    learner = grad_learner.learner
    assert learner.max_message_bytes == 1 << 20  # CartPole's work is far smaller
    assert learner.sock.getsockopt(zmq.MAXMSGSIZE) == 1 << 20
    # what a peer that floods or never reads can make the learner hold: 64 messages each way
    assert learner.sock.getsockopt(zmq.RCVHWM) == learner.sock.getsockopt(zmq.SNDHWM) == 64


def test_an_unknown_actor_or_an_old_run_gets_a_small_rejoin_never_weights(grad_learner):
    h = grad_learner
    welcome = h.join("a", b"A")
    stranger = Gradient(welcome.run_id, "nobody", 0, 5, 0.0, welcome.weights)
    old_run = Heartbeat("0" * 16, "a")
    for msg in (stranger, old_run):
        h.sent.clear()
        h.send(b"X", msg)
        ((_, reply),) = h.sent
        assert isinstance(reply, Rejoin)
        assert sum(len(bytes(f)) for f in encode(reply)) < 200
    assert h.dropped.get("unknown_actor") == 1 and h.dropped.get("wrong_run") == 1


def test_weights_go_out_once_per_version_per_connection(grad_learner):
    h = grad_learner
    for _ in range(5):
        h.send(b"A", Hello("a", "here", 1))
    welcomes = [m for m in h.replies(b"A") if isinstance(m, Welcome)]
    assert len(welcomes) == 1 and h.dropped.get("repeated_hello") == 4
    h.send(b"B", Hello("a", "here", 1))  # a reconnected actor: a new connection
    assert isinstance(h.replies(b"B")[-1], Welcome)


def test_another_connection_cannot_speak_for_an_actor(data_learner):
    h = data_learner
    welcome = h.join("a", b"A")
    h.send(b"A", h.work("a", welcome))  # queued, not yet learned
    h.send(b"B", Stop(welcome.run_id, "a", "forged"))
    h.send(b"B", h.work("a", welcome))
    assert h.dropped.get("identity_mismatch") == 2
    info = h.learner.registry.get("a")
    assert not info.gone and len(h.learner.intake.pending["a"]) == 1
    h.learn()
    hp = h.learner.hp
    assert info.env_steps == hp.rollout_len * hp.num_envs  # the actor's own work, learned


@pytest.mark.parametrize(
    ("version", "expected"), [(3, "stop"), (4, "refused"), (PROTOCOL_VERSION + 1, "refused")]
)
def test_a_hello_of_another_version_gets_a_refusal_it_can_read(
    grad_learner, monkeypatch, version, expected
):
    sent = []
    monkeypatch.setattr(service, "send_frames", lambda sock, frames, ident: sent.append(frames))
    hello = header("hello", {"actor_id": "old", "host": "h", "pid": 1}, v=version)
    grad_learner.deliver(b"O", frame(hello))
    ((reply,),) = sent
    head = msgpack.unpackb(bytes(reply))
    assert head["t"] == expected
    reason = head["f"]["reason"]
    assert str(PROTOCOL_VERSION) in reason and str(version) in reason
    assert ("upgrade the actor" in reason) == (version < PROTOCOL_VERSION)
    if expected == "refused":
        assert isinstance(decode([reply]), Refused)
    assert grad_learner.dropped.get("bad_version") == 1


def test_replies_to_stale_identities_are_counted(tmp_path):
    config = LearnerConfig(
        mode="gradient", env_id="CartPole-v1", run_dir=str(tmp_path), bind="tcp://127.0.0.1:*"
    )
    learner = Learner(config)
    try:
        assert learner._send(Heartbeat(learner.run_id, "a"), b"long-gone") == 0
        assert learner.stats.dropped.get("stale_identity") == 1
    finally:
        learner.close()


def test_the_last_resort_guard_counts_by_type_and_goes_on(grad_learner, monkeypatch, caplog):
    h = grad_learner
    welcome = h.join("a", b"A")

    def broken(info, msg):
        raise RuntimeError("a bug")

    h.learner._handlers[Heartbeat] = broken
    for _ in range(3):
        h.send(b"A", Heartbeat(welcome.run_id, "a"))
    assert h.dropped.get("internal_error") == 3
    assert caplog.text.count("RuntimeError: a bug") == 1  # the traceback once, not per message
    h.send(b"A", h.work("a", welcome))
    assert h.learner.updater.version == 1


def _pump(learner: Learner, socks, seconds: float = 3.0, until=lambda: False) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        if learner.sock.poll(50):
            learner._receive_burst()


def _recv(sock, timeout: float = 3.0):
    return decode(sock.recv_multipart()) if sock.poll(int(timeout * 1000)) else None


def test_with_keys_an_actor_id_belongs_to_the_key_it_joined_with(tmp_path):
    keygen(tmp_path / "keys", 2)
    config = LearnerConfig(
        mode="gradient",
        env_id="CartPole-v1",
        run_dir=str(tmp_path / "run"),
        bind="tcp://127.0.0.1:*",
        keys_dir=str(tmp_path / "keys" / "learner"),
        tensorboard=False,
    )
    learner = Learner(config)
    ctx = zmq.Context()
    one = connect_dealer(ctx, learner.endpoint, load_client_keys(tmp_path / "keys" / "actor-1"))
    two = connect_dealer(ctx, learner.endpoint, load_client_keys(tmp_path / "keys" / "actor-2"))
    try:
        one.send_multipart(encode(Hello("a", "one", 1)))
        _pump(learner, [one], until=lambda: learner.registry.get("a") is not None)
        welcome = _recv(one)
        assert isinstance(welcome, Welcome)
        two.send_multipart(encode(Hello("a", "two", 2)))  # the same id, another key
        two.send_multipart(encode(Stop(welcome.run_id, "a", "forged")))
        _pump(learner, [two], until=lambda: learner.stats.dropped["identity_mismatch"] >= 2)
        assert learner.stats.dropped["identity_mismatch"] == 2
        info = learner.registry.get("a")
        assert not info.gone and info.host == "one"
        assert _recv(two, 0.5) is None  # nothing, not even weights, for the impostor
    finally:
        one.close(0)
        two.close(0)
        ctx.term()
        learner.close()


def test_ids_with_control_characters_never_reach_logs_or_the_registry(grad_learner, caplog):
    h = grad_learner
    for bad in ("fuzzer\0", "a\nINFO forged line", ""):
        h.send(b"Z", Hello(bad, "here", 1))
    h.send(b"Z", Hello("ok", "host\r\nforged", 1))
    assert not h.learner.registry.actors and h.dropped.get("bad_field") == 4
    assert "\nINFO forged" not in caplog.text and "\0" not in caplog.text


def test_a_gradient_whose_norm_overflows_is_never_applied(grad_learner):
    h = grad_learner
    welcome = h.join("a", b"A")
    work = h.work("a", welcome)
    work.grad[:] = 3e38  # every value finite, their norm is not
    h.send(b"A", work)
    assert h.dropped.get("non_finite_update") == 1 and h.learner.updater.version == 0
    assert isinstance(h.replies(b"A")[-1], Weights)  # the credit still comes back
    assert np.isfinite(h.learner.updater.weights).all()


def test_one_connection_speaks_for_one_actor(grad_learner):
    h = grad_learner
    h.join("a", b"A")
    for i in range(5):
        h.send(b"A", Hello(f"fake-{i}", "here", 1))
    assert h.dropped.get("one_id_per_connection") == 5
    assert list(h.learner.registry.actors) == ["a"]
    assert sum(isinstance(m, Welcome) for m in h.replies(b"A")) == 1


def test_a_peer_that_never_reads_costs_one_welcome_per_version(grad_learner):
    h = grad_learner
    attempts = []
    h.learner._send = lambda msg, identity: attempts.append(msg) or 0  # its queue is full
    for _ in range(10):
        h.send(b"A", Hello("a", "here", 1))
    assert sum(isinstance(m, Welcome) for m in attempts) == 1
    assert h.dropped.get("repeated_hello") == 9


def test_a_full_registry_never_forgets_a_connected_actor():
    from learner.registry import ActorRegistry

    registry = ActorRegistry(heartbeat_timeout=10, capacity=2)
    assert registry.register("a", b"A") and registry.register("b", b"B")
    assert registry.register("c", b"C") is None  # both connected: the newcomer waits
    registry.actors["a"].gone = True
    assert registry.register("c", b"C") is not None and set(registry.actors) == {"b", "c"}
    assert registry.owner(b"A") is None and registry.owner(b"C") == "c"


def test_work_refused_for_memory_still_returns_its_credit(data_learner, monkeypatch):
    h = data_learner
    welcome = h.join("a", b"A")
    monkeypatch.setattr(intake, "MAX_PENDING_BYTES", 0)
    h.sent.clear()
    h.send(b"A", h.work("a", welcome))
    assert h.dropped.get("learner_full") == 1
    assert [type(m) for m in h.replies(b"A")] == [Weights]


def test_one_update_learns_a_bounded_number_of_rollouts_and_none_waits_forever(
    data_learner, monkeypatch
):
    h = data_learner
    monkeypatch.setattr(intake, "MAX_ROLLOUTS_PER_UPDATE", 2)
    for name in "abc":
        welcome = h.join(name, name.encode())
        h.send(name.encode(), h.work(name, welcome))
    h.learn()
    assert list(h.learner.intake.pending) == ["c"] and h.learner.updater.version == 1
    h.learn()
    assert not h.learner.intake.pending and h.learner.intake.pending_bytes == 0


@pytest.mark.parametrize(("mode", "other"), [("gradient", "data"), ("data", "gradient")])
def test_the_other_modes_work_is_refused_and_its_credit_returned(tmp_path, mode, other):
    source = InProcessLearner(tmp_path / "other", mode=other)
    try:
        work = source.work("a", source.join("a", b"A"))  # valid work of the other mode
    finally:
        source.close()
    h = InProcessLearner(tmp_path / "run", mode=mode)
    try:
        work.run_id = h.join("a", b"A").run_id
        h.sent.clear()
        h.send(b"A", work)
        assert h.dropped == {"wrong_mode": 1} and h.learner.updater.version == 0
        assert [type(m) for m in h.replies(b"A")] == [Weights]
    finally:
        h.close()


def test_the_status_reply_fits_its_decoder_whatever_the_ids(grad_learner):
    from protocol import Status

    learner = grad_learner.learner
    for i in range(100):
        learner.registry.register(f"{i:03d}" + "x" * 250, bytes([i]), "h" * 256, i)
    back = decode(encode(Status(learner.run_id, learner.reporter.status())))
    assert len(back.state["actors"]) == 64


def test_moments_with_an_absurd_variance_are_refused():
    from learner.normstats import NormStats
    from protocol import CodecError
    from rlcore.hyperparams import Hyperparams

    norm = NormStats(Hyperparams(normalize_obs=True, normalize_reward=True), 2)
    steps = 10
    obs = np.array([steps, 0.0, 0.0, 1.0, 1e300])  # count, mean (2), M2 (2)
    ret = np.array([steps, 0.0, 1.0])
    with pytest.raises(CodecError, match="variance"):
        norm.check({"obs_moments": obs, "ret_moments": ret}, steps)
