"""Wire efficiency: compressed frames, 16-bit weights and gradients, frame-once rollouts,
version-only replies and link-sized credit."""

import lz4.block
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from actor.credit import RTT_WINDOW, CreditPacer
from learner.credit import CreditGrant
from protocol import CodecError, Gradient, Rollout, Weights, decode, encode
from protocol.compression import CompressionError, compress, decompress
from protocol.wire import WireFormat, narrow, widen
from rlcore import framestack
from rlcore.envs import EnvConfig, VectorEnv
from tests.frames import array_sizes, frame, parts


def frames(msg, wire):
    return [bytes(f) for f in encode(msg, wire)]


def sizes(raw):
    return array_sizes(raw[0])


def rollout(obs):
    return Rollout("r", "a", 3, obs.shape[0] * obs.shape[1], 0.0, {"obs": obs})


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_compressed_frames_round_trip_exactly_and_are_smaller(codec):
    obs = np.zeros((20, 4, 4, 84, 84), np.uint8)
    obs[:, :, :, 30:40, 10:12] = 200  # a paddle
    mask = np.zeros((20, 4), bool)
    msg = Rollout("r", "a", 3, 80, 0.0, {"obs": obs, "terminated": mask})
    wire = frames(msg, WireFormat(compress=codec))
    assert sum(sizes(wire)) < obs.nbytes / 20
    back = decode(wire)
    assert back.arrays["obs"].dtype == np.uint8 and np.array_equal(back.arrays["obs"], obs)
    assert np.array_equal(back.arrays["terminated"], mask)


def test_incompressible_and_float_arrays_travel_as_they_are():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    assert compress(noise, "zstd") is None  # not smaller: sent raw
    msg = Rollout("r", "a", 3, 1, 0.0, {"obs": noise, "rewards": np.ones(4096, np.float32)})
    wire = frames(msg, WireFormat(compress="zstd"))
    assert sizes(wire) == [noise.nbytes, 4 * 4096]
    assert np.array_equal(decode(wire).arrays["obs"], noise)


@pytest.mark.parametrize(
    "data, codec, expected, why",
    [
        (zstandard.ZstdCompressor().compress(bytes(10**6)), "zstd", 1000, "declares"),
        (
            zstandard.ZstdCompressor(write_content_size=False).compress(bytes(10**6)),
            "zstd",
            1000,
            "declares",
        ),  # fmt: skip
        (b"\x28\xb5\x2f\xfd" + bytes(16), "zstd", 1000, "corrupt|declares"),
        (lz4.block.compress(bytes(10**5), store_size=False), "lz4", 1000, "inflates too far"),
        (bytes(2000), "zstd", 1000, "not compressed"),
        (b"abc", "gzip", 1000, "unknown"),
    ],
    ids=["zstd-lies", "zstd-no-size", "zstd-corrupt", "lz4-bomb", "raw-as-zstd", "unknown"],
)
def test_decompression_refuses_bombs_and_lying_sizes(data, codec, expected, why):
    with pytest.raises(CompressionError, match=why):
        decompress(data, codec, expected)


def test_a_message_may_not_inflate_past_its_bound_before_anything_is_inflated():
    bomb = zstandard.ZstdCompressor().compress(bytes(32 << 20))
    msg = rollout(np.zeros((32, 1 << 20), np.uint8))
    head, _ = parts(bytes(encode(msg, WireFormat(compress="zstd"))[0]))
    wire = frame({**head, "a": [[*head["a"][0][:4], len(bomb)]]}, bomb)
    assert isinstance(decode(wire, max_inflated=64 << 20), Rollout)
    with pytest.raises(CodecError) as err:
        decode(wire, max_inflated=16 << 20)
    assert err.value.reason == "bad_compression"


@pytest.mark.parametrize("floats, tolerance", [("bfloat16", 2**-8), ("float16", 2**-11)])
def test_half_precision_weights_and_gradients(floats, tolerance):
    rng = np.random.default_rng(1)
    w = (rng.standard_normal(10_000) * rng.choice([1e-3, 1, 30], 10_000)).astype(np.float32)
    wire = WireFormat(floats=floats)
    for msg in (Weights("r", 1, 0.0, 2, 0.0, w), Gradient("r", "a", 1, 80, 0.0, w)):
        raw = frames(msg, wire)
        assert sizes(raw) == [2 * w.size]  # half the bytes of float32
        back = decode(raw).array_items()
        got = back["weights" if isinstance(msg, Weights) else "grad"]
        assert got.dtype == np.float32 and got.shape == w.shape
        big = np.abs(w) > 1e-4  # float16 loses tiny values to subnormals; bfloat16 does not
        assert np.all(np.abs(got - w)[big] <= tolerance * np.abs(w)[big])


def test_bfloat16_rounds_to_nearest_even_and_float16_saturates():
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -2.5, 1e30, 0.0], np.float32)
    back = widen(narrow(x, "bfloat16").tobytes(), "bfloat16", x.size)
    assert back.tolist() == [1.0, 1.0, 1.0 + 2**-6, -2.5, pytest.approx(1e30, rel=2**-8), 0.0]
    sat = widen(narrow(np.array([1e6, -1e6], np.float32), "float16").tobytes(), "float16", 2)
    assert np.isfinite(sat).all() and sat.tolist() == [65504.0, -65504.0]


def test_a_version_only_reply_has_no_weights():
    back = decode(encode(Weights("r", 7, 1.5, 6, 0.002)))
    assert back.weights is None and back.version == 7 and back.credit == 6 and back.extras == {}


# ---- frame-once rollouts -------------------------------------------------------------------


@st.composite
def stacked_rollouts(draw):
    """Stacks of C frames that shift by one each step, restarting at random steps (with the
    first frame repeated, as gymnasium's frame stack pads a reset)."""
    T, E, C = draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    restart = rng.random((T, E)) < draw(st.floats(0, 0.6))
    seq = np.empty((T + 1, E, C, 3, 2), np.uint8)
    seq[0] = rng.integers(0, 4, (E, C, 3, 2))
    for t in range(T):
        new = rng.integers(0, 4, (E, 3, 2))
        seq[t + 1, :, :-1] = seq[t, :, 1:]
        seq[t + 1, :, -1] = new
        seq[t + 1, restart[t]] = new[restart[t]][:, None]
    return seq[:-1], seq[-1]


@settings(max_examples=200, deadline=None)
@given(stacked_rollouts())
def test_frame_once_unpacks_to_exactly_the_actors_stacks(data):
    obs, bootstrap = data
    packed = framestack.pack(obs, bootstrap)
    got_obs, got_boot = framestack.unpack(packed)
    assert np.array_equal(got_obs, obs) and np.array_equal(got_boot, bootstrap)


def test_frame_once_on_real_atari_rollouts_through_the_wire():
    """Breakout with a life lost every few hundred steps, so stacks restart mid-rollout."""
    envs = VectorEnv(EnvConfig("ALE/Breakout-v5", wrappers=("atari-episodic-life",)), 2, 3)
    envs.reset()
    rng = np.random.default_rng(0)
    T, restarts, plain, sent = 20, 0, 0, 0
    obs = np.zeros((T, 2, 4, 84, 84), np.uint8)
    for _ in range(40):
        for t in range(T):
            obs[t] = envs.obs
            envs.step(rng.integers(0, 4, 2))
        boot = envs.obs.copy()
        packed = framestack.pack(obs, boot)
        restarts += packed["restack_index"].size
        msg = Rollout("r", "a", 0, T * 2, 0.0, dict(packed))
        raw = frames(msg, WireFormat(compress="zstd"))
        back = framestack.unpack(decode(raw).arrays)
        assert np.array_equal(back[0], obs) and np.array_equal(back[1], boot)
        plain += obs.nbytes + boot.nbytes
        sent += sum(sizes(raw))
    envs.close()
    assert restarts >= 1  # the case that matters was exercised
    assert framestack.packed_bytes(packed) < (obs.nbytes + boot.nbytes) / 3
    assert sent < plain / 20


def test_a_lying_restack_index_is_refused():
    obs = np.zeros((4, 2, 4, 3, 3), np.uint8)
    packed = framestack.pack(obs, obs[0])
    for bad in ([8], [3, 3], [5, 2], [-1]):
        lie = dict(packed)
        lie["restack_index"] = np.array(bad, np.int64)
        lie["restack_obs"] = np.zeros((len(bad), 3, 3, 3), np.uint8)
        with pytest.raises(ValueError):
            framestack.unpack(lie)


# ---- credit sized to the link --------------------------------------------------------------


def test_credit_covers_the_round_trip_within_the_grant(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("actor.credit.time.monotonic", lambda: now[0])
    pacer = CreditPacer(floor=2, cap=16)
    pacer.on_grant(10)

    def exchange(work: float, rtt: float, held: float = 0.0):
        pacer.on_work(work)
        pacer.on_send()
        now[0] += rtt + held
        pacer.nothing_waiting()  # the actor waited for this reply
        pacer.on_reply(held)

    for _ in range(5):
        exchange(work=0.004, rtt=0.0005)  # a local link: the base credit stands
    assert pacer.limit == 2
    for _ in range(5):
        exchange(work=0.004, rtt=0.0005, held=0.2)  # a busy learner is not a long link
    assert pacer.limit == 2
    pacer = CreditPacer(floor=2, cap=16)
    pacer.on_grant(10)
    for _ in range(5):
        exchange(work=0.004, rtt=0.019)
    assert pacer.limit == 6  # ceil(19 ms / 4 ms) + 1
    for _ in range(5):
        exchange(work=0.004, rtt=0.080)
    assert pacer.limit == 6  # the least recent round trip: a queue does not feed itself
    pacer.on_grant(3)
    assert pacer.limit == 3  # never above the learner's grant
    pacer.on_grant(99)
    assert pacer.grant == 16


def test_credit_does_not_feed_on_the_actors_own_reading(monkeypatch):
    """Over a fast link each reply lands while the actor makes its next work message and is
    read after it. Timed to the read, every round trip would be a work message long, at the
    edge of asking for more in flight, and with more in flight, longer still. Counted to the
    last time the actor found nothing waiting, it is the link's own."""
    now = [0.0]
    monkeypatch.setattr("actor.credit.time.monotonic", lambda: now[0])
    pacer = CreditPacer(floor=2, cap=16)
    pacer.on_grant(10)
    pacer.on_work(0.004)
    pacer.on_send()
    pacer.nothing_waiting()
    for _ in range(2 * RTT_WINDOW):
        now[0] += 0.004  # making the next message; the last reply lands 0.5 ms into it
        pacer.on_work(0.004)
        pacer.on_send()
        pacer.on_reply(0.0)  # the drain after the send reads it
        pacer.nothing_waiting()  # and finds nothing more
    assert pacer.rtt < 0.004
    assert pacer.limit == 2


def test_learner_grants_more_in_flight_only_while_it_has_time_to_spare():
    grant = CreditGrant(base=2, cap=16, max_staleness=20)
    now = 0.0

    def period(idle: float, connected: int = 2) -> int:
        nonlocal now
        grant.waited(idle * 0.1)
        now += 0.1
        return grant.update(now, connected)

    assert period(0.5) == 2  # the first period only starts the clock
    assert [period(0.5) for _ in range(12)][-4:] == [10, 10, 10, 10]  # up to 20 // 2 actors
    assert period(0.05) == 10  # neither busy nor spare: holds
    assert [period(0.0) for _ in range(3)] == [9, 8, 7]  # saturated: falls by one a period
    assert [period(0.0) for _ in range(10)][-1] == 2  # never below the base credit
    assert period(0.5, connected=20) == 2  # 20 actors share 20 updates of staleness
    assert [period(0.5, connected=1) for _ in range(20)][-1] == 16  # never above max-credit


@pytest.mark.parametrize(
    ("env_id", "flags", "floats"),
    [
        ("CartPole-v1", (), "bfloat16"),  # discrete actions: 16-bit by default
        ("Pendulum-v1", (), "float32"),  # a Gaussian policy: float32 by default
        ("Pendulum-v1", ("--wire-dtype", "bfloat16"), "bfloat16"),  # a flag decides
    ],
)
def test_the_wire_dtype_follows_the_action_space_unless_set(tmp_path, env_id, flags, floats):
    from tests.test_presets import learner_config

    config, log = learner_config(tmp_path, "run", "--env", env_id, *flags)
    assert config["wire_dtype"] == (flags[1] if flags else "auto")
    assert config["wire"] == {"compress": "zstd", "floats": floats}  # what was used
    assert f"wire: {floats} weights and gradients" in log
