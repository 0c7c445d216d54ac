"""Codec round trips and rejections."""

import contextlib

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    PROTOCOL_VERSION,
    ArraySpec,
    CodecError,
    Episodes,
    Gradient,
    Heartbeat,
    Hello,
    Rollout,
    Stop,
    Weights,
    Welcome,
    check_arrays,
    decode,
    encode,
)
from tests.frames import frame
from tests.frames import header as header_map


def frames_of(msg):
    return [bytes(f) for f in encode(msg)]


def roundtrip(msg):
    return decode(frames_of(msg))


def test_roundtrip_every_message_type():
    w = np.arange(10, dtype=np.float32)
    msgs = [
        Hello("a1", "host", 42),
        Welcome("run", 3, 7, 1.5, {"mode": "data", "nested": {"x": [1, 2]}}, w),
        Weights("run", 8, 2.5, 4, 0.001, w),
        Weights("run", 9, 2.5, 2, 0.0),
        Gradient("run", "a1", 7, 160, 0.01, w * 2),
        Episodes("run", "a1", [1.0, 2.5], [10, 20]),
        Heartbeat("run", "a1"),
        Stop("run", "a1", "target_reached"),
    ]
    for msg in msgs:
        out = roundtrip(msg)
        assert type(out) is type(msg)
        assert out.header_fields() == msg.header_fields()
        for name, arr in msg.array_items().items():
            np.testing.assert_array_equal(out.array_items()[name], arr)


def test_rollout_roundtrip_keeps_dtypes_and_shapes():
    arrays = {
        "obs": np.random.rand(5, 3, 4).astype(np.float32),
        "actions": np.arange(15, dtype=np.int64).reshape(5, 3),
        "terminated": np.zeros((5, 3), dtype=bool),
        "frames": np.full((2, 84, 84), 7, dtype=np.uint8),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    out = roundtrip(Rollout("run", "a1", 1, 15, -1.0, arrays))
    for name, arr in arrays.items():
        assert out.arrays[name].dtype == arr.dtype
        assert out.arrays[name].shape == arr.shape
        np.testing.assert_array_equal(out.arrays[name], arr)


def header(t="heartbeat", f=None, a=None, v=PROTOCOL_VERSION):
    return msgpack.packb(header_map(t, f, a, v))


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "bad_frames"),
        ([b"\xc1\xff\x00garbage"], "bad_msgpack"),
        ([msgpack.packb([1, 2, 3])], "bad_header"),
        ([msgpack.packb({"v": 1})], "bad_header"),
        ([header(v=999)], "bad_version"),
        ([header(t="launch_missiles")], "unknown_type"),
        ([header(f={"run_id": "r"})], "bad_field"),
        ([header(f={"run_id": "r", "actor_id": 5})], "bad_field"),
        ([header(f={"run_id": "r", "actor_id": "a", "extra": 1})], "bad_field"),
        ([header(f={"run_id": "r" * 10_000, "actor_id": "a"})], "bad_field"),
    ],
)
def test_rejects_malformed_headers(frames, reason):
    with pytest.raises(CodecError) as err:
        decode(frames)
    assert err.value.reason == reason


def gradient_frames(desc, payload):
    f = {
        "run_id": "r",
        "actor_id": "a",
        "weights_version": 0,
        "env_steps": 1,
        "weights_latency": 0.0,
    }
    return frame(header_map("gradient", f, [desc]), payload)


@pytest.mark.parametrize(
    ("desc", "payload", "reason"),
    [
        (["grad", "complex64", [4]], np.zeros(4, np.complex64).tobytes(), "bad_dtype"),
        (["grad", "object", [4]], b"x" * 32, "bad_dtype"),
        (["grad", "float32", [5]], np.zeros(4, np.float32).tobytes(), "bad_frames"),
        (["grad", "float32", [-1]], b"", "bad_shape"),
        (["grad", "float32", "4"], b"", "bad_shape"),
        (["other", "float32", [4]], np.zeros(4, np.float32).tobytes(), "bad_array"),
        # A list where the dtype goes once raised TypeError (unhashable) out of the codec.
        (["grad", ["float32"], [4]], np.zeros(4, np.float32).tobytes(), "bad_dtype"),
        (["grad", "float32", [4], ["plain"]], np.zeros(4, np.float32).tobytes(), "bad_encoding"),
        # Zero bytes passed the size checks, then numpy refused the shape (ValueError).
        (["grad", "float32", [0, 2**31 - 1, 2**31 - 1, 2**31 - 1]], b"", "bad_shape"),
        (["grad", "float32", [4], "plain", 2**40], b"", "bad_array"),
        (["grad", "float32", [4], "plain", -1], b"", "bad_array"),
    ],
)
def test_rejects_bad_arrays(desc, payload, reason):
    with pytest.raises(CodecError) as err:
        decode(gradient_frames(desc, payload))
    assert err.value.reason == reason


def test_rejects_missing_or_extra_bytes_and_frames():
    (whole,) = frames_of(Gradient("r", "a", 0, 1, 0.0, np.zeros(4, np.float32)))
    for bad in ([whole[:-8]], [whole + b"x" * 8], [whole, b"extra"], [whole[:-16], whole[-16:]]):
        with pytest.raises(CodecError, match="bad_frames"):
            decode(bad)


def test_a_message_is_one_frame_whose_arrays_start_aligned():
    msg = Gradient("r", "a", 0, 1, 0.0, np.arange(3, dtype=np.float32), {})
    (whole,) = frames_of(msg)
    assert len(whole) % 8 == 0
    assert np.array_equal(decode([whole]).grad, msg.grad)


def test_refusals_decode_whatever_version_they_claim():
    from protocol import Refused, refusal

    for version in (4, 5, 99):
        back = decode(
            [msgpack.packb(header_map("refused", {"reason": "no", "version": version}, v=version))]
        )
        assert isinstance(back, Refused) and back.version == version
    old = msgpack.unpackb(refusal(3, "upgrade the actor")[0])
    assert old["v"] == 3 and old["t"] == "stop" and old["f"]["reason"] == "upgrade the actor"
    err = pytest.raises(CodecError, decode, [header(v=7, t="hello")])
    assert err.value.peer_version == 7 and err.value.peer_type == "hello"


def test_episode_lists_must_hold_finite_numbers():
    for bad in ([float("nan")], ["x"], [True]):
        f = {"run_id": "r", "actor_id": "a", "returns": bad, "lengths": [1]}
        with pytest.raises(CodecError, match="bad_field"):
            decode([header("episodes", f)])


def test_check_arrays_binds_symbolic_dims_and_rejects_non_finite():
    specs = {"obs": ArraySpec("float32", (3, "E", 2)), "act": ArraySpec("int64", (3, "E"))}
    good = {"obs": np.zeros((3, 5, 2), np.float32), "act": np.zeros((3, 5), np.int64)}
    assert check_arrays(good, specs) == {"E": 5}
    with pytest.raises(CodecError, match="bad_shape"):
        check_arrays({**good, "act": np.zeros((3, 4), np.int64)}, specs)
    with pytest.raises(CodecError, match="bad_dtype"):
        check_arrays({**good, "act": np.zeros((3, 5), np.int32)}, specs)
    bad = good["obs"].copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(CodecError, match="non_finite"):
        check_arrays({**good, "obs": bad}, specs)
    with pytest.raises(CodecError, match="bad_array"):
        check_arrays({"obs": good["obs"]}, specs)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=4))
def test_any_bytes_decode_or_raise_codec_error(frames):
    with contextlib.suppress(CodecError):
        decode(frames)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "t", "f", "a", "x"]),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**64 - 1)
            | st.floats()
            | st.text(max_size=10),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
            max_leaves=10,
        ),
    )
)
def test_any_msgpack_map_decodes_or_raises_codec_error(obj):
    with contextlib.suppress(CodecError):
        decode([msgpack.packb(obj)])


def test_optional_arrays_round_trip_and_unknown_ones_are_rejected():
    from protocol import NORM_STATS, WORK_STATS

    moments = {WORK_STATS[0]: np.arange(9, dtype=np.float64), WORK_STATS[1]: np.ones(3)}
    grad = Gradient("r", "a", 0, 160, 0.0, np.zeros(4, np.float32), moments)
    back = decode(encode(grad))
    assert set(back.extras) == set(WORK_STATS)
    assert np.array_equal(back.extras[WORK_STATS[0]], moments[WORK_STATS[0]])
    stats = {name: np.ones(3, np.float32) for name in NORM_STATS}
    reply = decode(encode(Weights("r", 1, 0.0, 2, 0.0, np.zeros(4, np.float32), stats)))
    assert set(reply.extras) == set(NORM_STATS) and reply.weights.size == 4
    plain = decode(encode(Weights("r", 1, 0.0, 2, 0.0, np.zeros(4, np.float32))))
    assert plain.extras == {}
    forged = Gradient("r", "a", 0, 160, 0.0, np.zeros(4, np.float32), {"obs_mean": np.ones(2)})
    with pytest.raises(CodecError) as err:
        decode(encode(forged))  # a learner's statistics are not an actor's to send
    assert err.value.reason == "bad_array"
