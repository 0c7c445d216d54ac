"""Relays' bundles, fuzzed: bundles built from the protocol's schema, valid for the run they
go to, then broken where a relay or the actors behind it could break them: the header's
count and fields, the frames it carries, each inner message broken as tests/test_fuzz.py
breaks one, inner messages of types a bundle may not carry, of another run or for actors
the relay may not speak for, bundles from peers that never said hello or from connections
that are not the relay's; and relays that say hello again, go silent, or lose their actors
to a direct hello while data-mode work waits.

Whatever arrives, the learner (in-process, through its real `_handle`) counts it, answers
every bundle it took from a relay exactly once, never before that bundle's work is learned,
keeps its registry, queues and folds exact, and trains on. The failing cases the fuzzer
found are kept after it as plain tests."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import learner.folding as folding
from learner.intake import MAX_PENDING_BYTES, DataIntake
from protocol import (
    MAX_BUNDLE,
    Answer,
    Bundle,
    CodecError,
    Episodes,
    Gradient,
    Heartbeat,
    Hello,
    Message,
    Refused,
    Rejoin,
    Rollout,
    Status,
    StatusQuery,
    Stop,
    Weights,
    Welcome,
    decode,
    encode,
)
from relay.downstream import MAX_WAITING
from relay.service import Relay, RelayConfig
from tests.inproc import InProcessLearner
from tests.test_fuzz import (
    FRAME_MUTATIONS,
    ONE_IN_SIX,
    Chooser,
    DrawChooser,
    RandomChooser,
    Target,
    draft_of,
    fuzzed,
    pick_mutation,
    valid_message,
)

INNER_TYPES = (Gradient, Rollout, Episodes, Heartbeat, Stop)
"""What a relay forwards: each inner message is one of these, as its actor encoded it."""
TYPE_WEIGHTS = {"gradient": (Gradient,) * 4, "data": (Rollout,) * 4}
"""The run's own work type, drawn more often: its checks and queues go deepest."""

RELAY_A, RELAY_B, DIRECT = "relay-a", "relay-b", "direct"
MEMBERS = {RELAY_A: ("a-0", "a-1", "a-2"), RELAY_B: ("b-0",)}
BAD_IDS = ("", "a\n", "nul\0", "\u00fc-actor", "tab\tid", "x" * 300)
"""Ids no actor may have: empty, not printable ASCII, or longer than the codec allows."""


def frames_of(msg: Message) -> list[bytes]:
    return [bytes(f) for f in encode(msg)]


def bundle_frames(run_id: str, relay_id: str, seq: int, inner: list[bytes], count=None):
    count = len(inner) if count is None else count
    return [*frames_of(Bundle(run_id, relay_id, seq, count)), *inner]


@dataclass
class Sent:
    """One bundle the learner took from a relay: it is owed exactly one answer, unless its
    relay said hello again (or lost its id) after it, when it may get one at most."""

    peer: str
    seq: int
    received: float
    epoch: int


@dataclass
class World:
    """One learner and the peers that talk to it: relays, their actors, a direct actor."""

    inproc: InProcessLearner
    run_id: str
    base: Target
    identities: dict[str, bytes] = field(default_factory=dict)
    """Each peer that said hello (and may send bundles): its connection now."""
    epochs: Counter = field(default_factory=Counter)
    """Per peer: how often it said hello again or stopped being a peer of its own."""
    sent: list[Sent] = field(default_factory=list)
    answered: Counter = field(default_factory=Counter)
    """Answers by (peer, seq)."""
    seen: int = 0
    """How many of the learner's sends are already accounted for."""
    fresh: int = 0

    def __repr__(self) -> str:
        return f"World({self.learner.cfg.mode}, run {self.run_id})"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))

    @property
    def learner(self):
        return self.inproc.learner

    @property
    def data_mode(self) -> bool:
        return isinstance(self.learner.intake, DataIntake)

    def join(self, peer: str, identity: bytes) -> None:
        self.inproc.send(identity, Hello(peer, "here", 1))
        self.settle()

    def target(self, actor_id: str, run_id: str | None = None) -> Target:
        version = self.learner.updater.version
        run_id = self.run_id if run_id is None else run_id
        return dataclasses.replace(self.base, actor_id=actor_id, run_id=run_id, version=version)

    def name_of(self, identity: bytes) -> str | None:
        return next((p for p, i in self.identities.items() if i == identity), None)

    # ---- what the learner does, step by step ------------------------------------------

    def deliver(self, identity: bytes, frames: list) -> None:
        oracle = self.taken(identity, frames)
        self.inproc.deliver(identity, frames)
        if oracle is not None:
            self.sent.append(Sent(oracle[0], oracle[1], self.learner._received, 0))
            self.sent[-1].epoch = self.epochs[oracle[0]]
        self.settle()

    def learn(self) -> None:
        self.inproc.learn()
        self.settle()

    def taken(self, identity: bytes, frames: list) -> tuple[str, int] | None:
        """(peer, seq) when the learner takes this message as a bundle of a registered peer
        of its own: a bundle the codec reads, of this run, from that peer's connection."""
        if len(frames) > 1 + MAX_BUNDLE:
            return None
        try:
            msg = decode(frames)
        except CodecError:
            return None
        if not isinstance(msg, Bundle) or msg.run_id != self.run_id:
            return None
        if self.identities.get(msg.actor_id) != identity:
            return None
        return msg.actor_id, msg.seq

    def settle(self) -> None:
        """Accounts for what the learner sent since the last step, and checks it."""
        self._track_peers()
        new = self.inproc.sent[self.seen :]
        self.seen = len(self.inproc.sent)
        for identity, msg in new:
            # Only a relay speaks for the actors behind it (a spoofer may be asked to rejoin).
            made_up = b"/" in identity and not isinstance(msg, Rejoin)
            assert not made_up, f"{msg.TYPE} sent to {identity!r}, behind a relay"
            if isinstance(msg, Welcome):
                self._welcomed(identity)
            if not isinstance(msg, Answer):
                continue
            peer = self.name_of(identity)
            assert peer is not None, f"an answer to {identity!r}, no peer's connection"
            self.answered[peer, msg.seq] += 1
            self._check_not_early(peer, msg.seq)
        self.check_invariants()

    def _welcomed(self, identity: bytes) -> None:
        actor_id = self.learner.registry.owner(identity)
        if actor_id is None:
            return
        if actor_id in self.identities:
            self.epochs[actor_id] += 1  # its bundles before this hello are forgotten
        self.identities[actor_id] = identity

    def _track_peers(self) -> None:
        """A peer whose id was taken over (moved behind a relay) is a peer no longer."""
        registry = self.learner.registry
        for peer, identity in list(self.identities.items()):
            info = registry.get(peer)
            if info is None or info.via is not None or info.identity != identity:
                del self.identities[peer]
                self.epochs[peer] += 1

    def _check_not_early(self, peer: str, seq: int) -> None:
        """The answer to a bundle goes out once its work is learned: none of it waits."""
        mine = [s for s in self.sent if (s.peer, s.seq) == (peer, seq)]
        if len(mine) != 1 or not self.data_mode:
            return  # duplicated numbers: which bundle an answer is for is ambiguous
        waiting = [i for q in self.learner.intake.pending.values() for i in q]
        assert all(i.received != mine[0].received for i in waiting), (
            f"bundle {seq} of {peer} answered while its work waits to be learned"
        )

    # ---- what must hold ----------------------------------------------------------------

    def check_invariants(self) -> None:
        ln = self.learner
        s, registry = ln.stats, ln.registry
        assert "internal_error" not in s.dropped, s.dropped
        assert len(registry.actors) <= registry.capacity
        assert registry.by_identity == {a.identity: a.actor_id for a in registry.actors.values()}
        queues = ln.intake.pending if self.data_mode else {}
        assert set(queues) <= set(registry.actors), (set(queues), set(registry.actors))
        assert all(0 < len(q) <= ln.cfg.max_credit for q in queues.values())
        held = ln.intake.pending_bytes if self.data_mode else 0
        assert held == sum(i.nbytes for q in queues.values() for i in q)
        assert 0 <= held <= MAX_PENDING_BYTES
        refs, folds = Counter(), {}
        for a in registry.actors.values():
            if a.via is None:
                assert not a.folds, f"{a.actor_id} talks direct, yet waits on a bundle"
            else:
                # Each waiting rollout of a relayed actor is its bundle's; nothing else is.
                assert len(a.folds) == len(queues.get(a.actor_id, ())), a.actor_id
            for f in a.folds:
                refs[id(f)] += 1
                folds[id(f)] = f
        for key, f in folds.items():
            assert f.remaining == refs[key], (f.seq, f.remaining, refs[key])
            assert registry.get(f.relay.actor_id) is f.relay and f.relay.via is None
        counters = [s.env_steps, s.episodes, s.updates, s.bytes_in, s.bytes_out, s.weights_sent]
        assert min(counters + list(s.dropped.values())) >= 0, (counters, s.dropped)
        mean = s.mean_return_100
        assert mean is None or math.isfinite(mean), mean
        assert np.isfinite(ln.updater.weights).all(), "a bundle reached the model's weights"

    def drain(self) -> None:
        """What the loop learns once nothing more comes."""
        for _ in range(4 * self.learner.cfg.max_credit + 4):
            if not self.learner.intake.backlog:
                break
            self.learn()
        assert not self.learner.intake.backlog

    def check_answers(self) -> None:
        """Every bundle taken is answered exactly once (at most once when its relay said
        hello again after it); no answer is for a bundle never taken."""
        owed, may = Counter(), Counter()
        for s in self.sent:
            current = s.epoch == self.epochs[s.peer] and s.peer in self.identities
            (owed if current else may)[s.peer, s.seq] += 1
        for key in set(owed) | set(may) | set(self.answered):
            got = self.answered[key]
            assert owed[key] <= got <= owed[key] + may[key], (
                f"bundle {key[1]} of {key[0]}: {got} answers, owed {owed[key]} "
                f"(+{may[key]} from before a rejoin); dropped {dict(self.learner.stats.dropped)}"
            )

    def assert_still_trains(self) -> None:
        """A relay that joins now, with one valid work message, moves the model on and
        gets one answer."""
        before = self.learner.updater.version
        self.join("relay-check", b"RC")
        work = valid_message(self.learner.intake.WORK, self.target("check-0"), NoChoice())
        self.deliver(b"RC", bundle_frames(self.run_id, "relay-check", 7, frames_of(work)))
        self.drain()
        assert self.learner.updater.version > before, dict(self.learner.stats.dropped)
        assert self.answered["relay-check", 7] == 1
        self.check_answers()


class NoChoice(Chooser):
    """The first option every time: the plainest valid message."""

    def choice(self, options):
        return options[0]

    def integer(self, lo: int, hi: int) -> int:
        return lo


def work_of(world: World, actor_id: str) -> bytes:
    msg = valid_message(world.learner.intake.WORK, world.target(actor_id), NoChoice())
    return frames_of(msg)[0]


def make_world(run_dir, mode: str) -> World:
    inproc = InProcessLearner(run_dir, mode)
    welcome = inproc.join(DIRECT, b"D")
    world = World(inproc, welcome.run_id, Target.of(welcome, DIRECT), seen=len(inproc.sent))
    world.identities[DIRECT] = b"D"
    for relay, identity in ((RELAY_A, b"RA"), (RELAY_B, b"RB")):
        world.join(relay, identity)
        beats = [frames_of(Heartbeat(world.run_id, m))[0] for m in MEMBERS[relay]]
        world.deliver(identity, bundle_frames(world.run_id, relay, 0, beats))
    return world


# ---- the generator --------------------------------------------------------------------


def inner_frames(world: World, relay: str, c: Chooser) -> tuple[list[bytes], str]:
    """One inner message of a bundle from `relay`, valid or broken one way, and how."""
    members = MEMBERS.get(relay, ("m-0",))
    how = c.choice(
        ("valid",) * 6 + ("mutated", "mutated", "forbidden", "other_run", "other_id", "frames")
    )
    actor_id = c.choice(members)
    if how == "other_id":
        others = [m for r, ms in MEMBERS.items() if r != relay for m in ms]
        world.fresh += 1
        actor_id = c.choice(
            (*others, DIRECT, RELAY_A, RELAY_B, f"new-{world.fresh}", *BAD_IDS, relay)
        )
    if how == "forbidden":
        return frames_of(forbidden(world, actor_id, c)), how
    run_id = c.choice(("0" * 16, "", world.run_id[::-1])) if how == "other_run" else None
    t = world.target(actor_id, run_id)
    cls = c.choice((*TYPE_WEIGHTS[world.learner.cfg.mode], *INNER_TYPES))
    msg = valid_message(cls, t, c)
    if how not in ("mutated", "frames"):
        return frames_of(msg), how
    d = draft_of(msg, t, c)
    for _ in range(c.choice((1, 1, 2, 3))):
        pick_mutation(d, c)[2](d, c)
    frames = [d.render()]
    if how == "frames":
        name, fn = c.choice(FRAME_MUTATIONS)
        frames = fn(frames[0], c)
    return frames, how


def forbidden(world: World, actor_id: str, c: Chooser) -> Message:
    """A message of a type no relay forwards."""
    run, w = world.run_id, np.zeros(3, np.float32)
    return c.choice(
        (
            Hello(actor_id, "here", 1),
            Welcome(run, 0, 0, 0.0, {}, w),
            Weights(run, 0, 0.0, 1, 0.0),
            Answer(run, 0, 0.0, 1, 0.0, seq=0),
            Bundle(run, actor_id, 0, 1),
            StatusQuery(),
            Status(run, {}),
            Rejoin(run, "again"),
            Refused("no", 5),
        )
    )


@dataclass
class Draw:
    """One step of a fuzzed exchange, for the report hypothesis prints."""

    kind: str
    detail: str = ""

    def __repr__(self) -> str:
        return f"{self.kind}({self.detail})"


def bundle_step(world: World, c: Chooser, seqs: Counter) -> Draw:
    peers = [p for p in (RELAY_A, RELAY_B, DIRECT) if p in world.identities]
    relay = c.choice(peers) if peers else RELAY_A
    identity = world.identities.get(relay, b"RA")
    seq = seqs[relay]
    seqs[relay] += 1
    if seq and c.choice(ONE_IN_SIX):
        seq = c.integer(0, seq - 1)  # a number it used before
    inner, hows = [], []
    for _ in range(c.integer(1, 5)):
        frames, how = inner_frames(world, relay, c)
        inner += frames
        hows.append(how)
    run_id, header_id, count = world.run_id, relay, None
    broken = c.choice(
        ("none",) * 8
        + ("count", "full", "too_many", "header", "run", "named", "stranger", "ghost", "spoof")
        + ("flood",)
    )
    if broken == "count":
        count = c.choice((len(inner) + 1, len(inner) - 1, 0, -1, MAX_BUNDLE + 1, 2**63 - 1))
    elif broken in ("full", "too_many"):
        beat = frames_of(Heartbeat(run_id, c.choice(MEMBERS.get(relay, ("m-0",)))))[0]
        inner = [beat] * (MAX_BUNDLE + (broken == "too_many"))
    elif broken == "flood":  # more work of one actor than its credit: the rest is refused
        member = c.choice(MEMBERS.get(relay, ("m-0",)))
        inner = [work_of(world, member)] * (world.learner.cfg.max_credit + 2)
    elif broken == "run":
        run_id = c.choice(("0" * 16, "", run_id[::-1]))
    elif broken == "named":
        header_id = c.choice((*MEMBERS[RELAY_A], *MEMBERS[RELAY_B], RELAY_A, RELAY_B, DIRECT))
    elif broken == "stranger":
        identity = c.choice((b"X", b"RB" if relay != RELAY_B else b"RA", b"D"))
    elif broken == "ghost":  # a peer that never said hello
        header_id, identity = "ghost", b"G"
    elif broken == "spoof":  # a connection that took the made-up identity of a relayed actor
        member = c.choice(MEMBERS.get(relay, ("m-0",)))
        header_id, identity = member, identity + b"/" + member.encode()
    frames = bundle_frames(run_id, header_id, seq, inner, count)
    if broken == "header":
        frames[0] = broken_header(world, Bundle(run_id, header_id, seq, len(inner)), c)
    world.deliver(identity, frames)
    for kind in (f"bundle broken: {broken}", *(f"inner message: {how}" for how in hows)):
        if currently_in_test_context():  # also drawn from a seeded RNG, outside hypothesis
            event(kind)
    return Draw("bundle", f"{relay} seq {seq} {broken} {hows}")


def broken_header(world: World, header: Bundle, c: Chooser) -> bytes:
    """The bundle header broken as test_fuzz breaks a single message."""
    d = draft_of(header, world.target(header.actor_id), c)
    for _ in range(c.choice((1, 2))):
        pick_mutation(d, c)[2](d, c)
    return d.render()


def rejoin_step(world: World, c: Chooser) -> Draw:
    """A relay says hello again: from a fresh connection (it restarted) or its own."""
    relay = c.choice((RELAY_A, RELAY_B))
    world.fresh += 1
    identity = c.choice((f"{relay}-{world.fresh}".encode(), world.identities.get(relay, b"RA")))
    world.join(relay, identity)
    return Draw("rejoin", f"{relay} from {identity!r}")


def direct_hello_step(world: World, c: Chooser) -> Draw:
    """An actor that was behind a relay says hello to the learner itself (it fell back to
    the learner's own address): from now on it is a peer of its own."""
    actor_id = c.choice(MEMBERS[RELAY_A] + MEMBERS[RELAY_B])
    world.fresh += 1
    world.join(actor_id, f"H{world.fresh}".encode())
    return Draw("direct_hello", actor_id)


def silence_step(world: World, c: Chooser) -> Draw:
    """Time passes: a relay and the actors behind it go silent (the registry marks them
    gone), so another relay may take its actors over."""
    relay = c.choice((RELAY_A, RELAY_B))
    for info in world.learner.registry.actors.values():
        if relay in (info.actor_id, info.via):
            info.gone = True
    world.settle()
    return Draw("silence", relay)


def spoof_step(world: World, c: Chooser) -> Draw:
    """Work sent direct for a relayed actor, from the identity the registry made up for it."""
    relay = c.choice((RELAY_A, RELAY_B))
    actor_id = c.choice(MEMBERS[relay])
    identity = world.identities.get(relay, b"RA") + b"/" + actor_id.encode()
    msg = valid_message(world.learner.intake.WORK, world.target(actor_id), NoChoice())
    world.deliver(identity, frames_of(msg))
    return Draw("spoof", actor_id)


def leave_step(world: World, c: Chooser) -> Draw:
    """A relay says it leaves (its actors' work may still wait)."""
    relay = c.choice((RELAY_A, RELAY_B))
    world.deliver(world.identities.get(relay, b"RA"), frames_of(Stop(world.run_id, relay, "bye")))
    return Draw("leave", relay)


STEPS = ("bundle",) * 6 + ("learn", "learn", "rejoin", "direct_hello", "silence", "spoof", "leave")


@st.composite
def exchange(draw, world: World) -> list[Draw]:
    """Steps against `world`, taken as they are drawn."""
    c, seqs, done = DrawChooser(draw), Counter({RELAY_A: 1, RELAY_B: 1, DIRECT: 0}), []
    for _ in range(c.integer(1, 8)):
        kind = c.choice(STEPS)
        event(f"step: {kind}")
        if kind == "bundle":
            done.append(bundle_step(world, c, seqs))
        elif kind == "learn":
            world.learn()
            done.append(Draw("learn"))
        else:
            step = {
                "rejoin": rejoin_step,
                "direct_hello": direct_hello_step,
                "silence": silence_step,
                "spoof": spoof_step,
                "leave": leave_step,
            }[kind]
            done.append(step(world, c))
    return done


FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_exchange(tmp_path_factory, mode: str, data) -> None:
    world = make_world(tmp_path_factory.mktemp(f"bundles-{mode}") / "run", mode)
    try:
        data.draw(exchange(world), label="steps")
        world.drain()
        world.check_answers()
        world.assert_still_trains()
    finally:
        world.inproc.close()


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzzed_bundles_to_a_gradient_learner(tmp_path_factory, data):
    run_exchange(tmp_path_factory, "gradient", data)


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzzed_bundles_to_a_data_learner(tmp_path_factory, data):
    run_exchange(tmp_path_factory, "data", data)


# ---- what the fuzzer found, kept as plain tests -----------------------------------------


@pytest.fixture(params=["gradient", "data"])
def world(request, tmp_path):
    w = make_world(tmp_path / "run", request.param)
    yield w
    w.inproc.close()


@pytest.fixture
def data_world(tmp_path):
    w = make_world(tmp_path / "run", "data")
    yield w
    w.inproc.close()


def test_an_actor_that_leaves_a_relay_for_the_learner_frees_the_relay_and_gets_replies(
    data_world,
):
    """A relayed actor said hello direct while its rollout waited: the rollout was dropped
    but its share of the bundle never settled, so the relay never got its answer; and the
    actor stayed marked as relayed, so its own work was never answered either."""
    w = data_world
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, "a-0")]))
    w.join("a-0", b"H")
    assert w.answered[RELAY_A, 1] == 1  # its work is gone: the relay need not wait
    w.deliver(b"H", [work_of(w, "a-0")])
    w.drain()
    assert [type(m) for m in w.inproc.replies(b"H")] == [Welcome, Weights]
    w.check_answers()


def test_a_stop_before_work_in_one_bundle_does_not_answer_it_early(data_world):
    """An actor's stop, then its rollout, in one bundle: the stop settled the fold the
    rollout had been counted in, so the relay was answered before the rollout was learned
    (and the rollout, learned later, settled a fold of some later bundle)."""
    w = data_world
    stop = frames_of(Stop(w.run_id, "a-0", "bye"))[0]
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [stop, work_of(w, "a-0")]))
    assert w.answered[RELAY_A, 1] == 0 and w.learner.intake.pending
    w.drain()
    assert w.answered[RELAY_A, 1] == 1


def test_work_refused_in_a_later_bundle_does_not_answer_an_earlier_one(data_world):
    """A rollout refused on arrival settled the oldest fold of its actor, not its own: the
    earlier bundle was answered while its rollout still waited."""
    w = data_world
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, "a-0")]))
    bad = valid_message(Rollout, w.target("a-0"), NoChoice())
    bad.arrays["actions"][0, 0] = 99
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 2, frames_of(bad)))
    assert w.learner.stats.dropped["bad_value"] == 1
    assert w.answered[RELAY_A, 1] == 0  # its rollout waits
    w.drain()
    assert w.answered[RELAY_A, 1] == w.answered[RELAY_A, 2] == 1


def test_the_registry_follows_a_relay_that_reconnected(world):
    """A relay back on a new connection: each of its actors got the new made-up identity,
    but the registry's map kept the old one, one stale entry per actor and reconnect."""
    w = world
    w.join(RELAY_A, b"RA2")
    beat = frames_of(Heartbeat(w.run_id, "a-0"))[0]
    w.deliver(b"RA2", bundle_frames(w.run_id, RELAY_A, 1, [beat]))
    assert w.learner.registry.owner(b"RA/a-0") is None
    assert w.learner.registry.owner(b"RA2/a-0") == "a-0"


def test_a_connection_cannot_speak_direct_for_an_actor_behind_a_relay(world):
    """A peer that chose the identity the registry made up for a relayed actor could send
    work as that actor, and its reply settled the relay's bundles."""
    w = world
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, "a-0")]))
    w.deliver(b"RA/a-0", [work_of(w, "a-0")])
    w.deliver(b"RA/a-0", bundle_frames(w.run_id, "a-0", 1, [work_of(w, "a-1")]))
    assert w.learner.stats.dropped["identity_mismatch"] == 2
    w.drain()
    w.check_answers()
    assert w.answered[RELAY_A, 1] == 1


def test_a_direct_actor_taken_over_by_a_relay_leaves_its_own_work_behind(data_world):
    """A silent direct actor's id taken over by a relay while a rollout it had sent itself
    still waited: learned, that rollout settled the relay's bundle, which was answered
    before its own rollout was learned."""
    w = data_world
    w.deliver(b"D", [work_of(w, DIRECT)])
    w.learner.registry.get(DIRECT).gone = True
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, DIRECT)]))
    assert w.learner.stats.dropped["moved_unlearned"] == 1
    w.drain()  # each answer checked as it goes: none before its bundle's work is learned
    assert w.answered[RELAY_A, 1] == 1
    w.check_answers()


def test_an_actor_taken_over_from_a_silent_relay_settles_that_relays_bundles(data_world):
    """An actor moves to another relay with a rollout of the first one's still waiting:
    that work is dropped as on a hello, the first relay answered at once, the second once
    its own work is learned."""
    w = data_world
    w.deliver(b"RB", bundle_frames(w.run_id, RELAY_B, 1, [work_of(w, "b-0")]))
    for info in w.learner.registry.actors.values():
        if RELAY_B in (info.actor_id, info.via):
            info.gone = True
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, "b-0")]))
    assert w.learner.registry.get("b-0").via == RELAY_A
    assert w.answered[RELAY_B, 1] == 1 and w.answered[RELAY_A, 1] == 0
    w.drain()
    assert w.answered[RELAY_A, 1] == 1
    w.check_answers()


def test_a_relay_id_taken_over_as_an_actor_leaves_no_answers_behind(data_world):
    """A silent relay's id used as an actor id by another relay: the first relay's actors'
    waiting work was answered to a made-up identity no connection has."""
    w = data_world
    w.deliver(b"RB", bundle_frames(w.run_id, RELAY_B, 1, [work_of(w, "b-0")]))
    w.learner.registry.get(RELAY_B).gone = True
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, RELAY_B)]))
    w.drain()
    assert w.learner.stats.dropped["relay_rejoined_unlearned"] == 1
    w.check_answers()


def test_a_relay_that_rejoins_while_its_work_waits_gets_only_new_answers(data_world):
    w = data_world
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, "a-0"), work_of(w, "a-1")]))
    w.join(RELAY_A, b"RA2")
    assert not w.learner.intake.pending
    w.deliver(b"RA2", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, "a-0")]))
    w.drain()
    assert w.answered[RELAY_A, 1] == 1
    assert w.learner.stats.dropped["relay_rejoined_unlearned"] == 2
    w.check_answers()


def test_a_bundle_of_max_bundle_frames_is_answered_once_and_one_more_is_dropped(world):
    w = world
    beat = frames_of(Heartbeat(w.run_id, "a-0"))[0]
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [beat] * MAX_BUNDLE))
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 2, [beat] * (MAX_BUNDLE + 1)))
    assert w.answered[RELAY_A, 1] == 1 and w.answered[RELAY_A, 2] == 0
    assert w.learner.stats.dropped["bad_frames"] == 1
    w.check_answers()


def test_a_bundle_from_a_peer_that_never_said_hello_is_asked_to_say_it(world):
    w = world
    beat = frames_of(Heartbeat(w.run_id, "g-0"))[0]
    w.deliver(b"G", bundle_frames(w.run_id, "ghost", 0, [beat]))
    assert [type(m) for m in w.inproc.replies(b"G")] == [Rejoin]
    assert w.learner.registry.get("g-0") is None
    assert w.learner.stats.dropped["unknown_actor"] == 1


def test_a_relay_cannot_grow_the_registry_past_its_bound(world):
    """Inner messages register actors without a hello each: many bundles of new ids fill
    the registry to its capacity and no further, and each bundle is still answered."""
    w = world
    w.learner.registry.capacity = 300
    for seq in range(1, 4):
        beats = [frames_of(Heartbeat(w.run_id, f"n-{seq}-{i}"))[0] for i in range(MAX_BUNDLE)]
        w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, seq, beats))
        assert w.answered[RELAY_A, seq] == 1
    assert len(w.learner.registry.actors) == 300
    assert w.learner.stats.dropped["registry_full"] == 3 * MAX_BUNDLE - (300 - 7)


def test_a_relayed_actor_forgotten_for_a_newcomer_still_settles_its_bundle(data_world):
    w = data_world
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, [work_of(w, "a-0")]))
    w.learner.registry.get("a-0").gone = True
    w.learner.registry.capacity = len(w.learner.registry.actors)
    beat = frames_of(Heartbeat(w.run_id, "newcomer"))[0]
    w.deliver(b"RB", bundle_frames(w.run_id, RELAY_B, 1, [beat]))
    w.drain()
    assert w.answered[RELAY_A, 1] == 1


def test_a_bundles_inner_messages_are_decoded_one_at_a_time(world, monkeypatch):
    """All of a bundle's messages were decoded (compressed arrays inflated) before the
    first was handled: up to MAX_BUNDLE inflated messages held at once for one bundle."""
    w, live, most = world, [0], [0]
    real_decode, real_run = folding.decode, w.learner._run

    def counting_decode(frames, max_inflated):
        live[0] += 1
        most[0] = max(most[0], live[0])
        return real_decode(frames, max_inflated)

    def counting_run(handler, info, msg):
        live[0] -= 1
        real_run(handler, info, msg)

    monkeypatch.setattr(folding, "decode", counting_decode)
    monkeypatch.setattr(w.learner, "_run", counting_run)
    work = [work_of(w, m) for m in MEMBERS[RELAY_A]]
    w.deliver(b"RA", bundle_frames(w.run_id, RELAY_A, 1, work))
    assert most[0] == 1


def test_the_generator_reaches_every_way_of_breaking_a_bundle(tmp_path):
    """Drawn from a seeded RNG: every way of breaking a bundle, an inner message and the
    exchange is reached, and valid bundles are taken and answered."""
    world = make_world(tmp_path / "run", "data")
    try:
        c, seqs, kinds = RandomChooser(random.Random(0)), Counter({RELAY_A: 1, RELAY_B: 1}), []
        for _ in range(300):
            kinds.append(bundle_step(world, c, seqs).detail)
            if c.coin():
                world.learn()
        world.drain()
        world.check_answers()
    finally:
        world.inproc.close()
    text = " ".join(kinds)
    for broken in ("none", "count", "full", "too_many", "header", "run", "named", "stranger"):
        assert f" {broken} " in text, broken
    for how in ("valid", "mutated", "forbidden", "other_run", "other_id", "frames"):
        assert f"'{how}'" in text, how
    assert sum(world.answered.values()) > 50


# ---- the relay, in-process, between real sockets ----------------------------------------


class RelayRig:
    """A real relay (relay.service.Relay) driven one loop turn at a time, joined to a
    stand-in learner: a ROUTER socket the test reads and answers, with a real learner's
    welcome. Actors are DEALER sockets of the test."""

    def __init__(self, tmp_path, mode: str = "data", **settings):
        self.inproc = InProcessLearner(tmp_path / "run", mode, **settings)
        self.ctx = zmq.Context()
        self.learner = self.ctx.socket(zmq.ROUTER)
        port = self.learner.bind_to_random_port("tcp://127.0.0.1")
        cfg = RelayConfig([f"tcp://127.0.0.1:{port}"], "tcp://127.0.0.1:*", "relay-t")
        self.relay = Relay(cfg)
        self.actors: dict[str, object] = {}
        self.relay._pump_upstream()  # its hello
        identity, *frames = self.recv_up()
        assert isinstance(decode(frames), Hello)
        self.welcome = self.inproc.join("relay-t", b"R")
        self.learner.send_multipart([identity, *encode(self.welcome)])
        self.identity = identity
        self.turn_until(lambda: self.relay.up.joined is not None)

    @property
    def run_id(self) -> str:
        return self.welcome.run_id

    def recv_up(self, timeout: float = 5.0) -> list:
        assert self.learner.poll(int(timeout * 1000)), "nothing reached the learner"
        return self.learner.recv_multipart()

    def turn(self) -> None:
        """One turn of the relay's loop (Relay.run), without its wait."""
        r = self.relay
        r._pump_upstream()
        if r.down.sock.poll(0):
            r.down.receive_burst(r.status)
        r.down.flush()
        r._chores()

    def turn_until(self, done, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the relay did not get there"
            self.turn()
            time.sleep(0.005)

    def actor(self, actor_id: str) -> object:
        """A joined actor behind the relay: a DEALER that said hello and got its welcome."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.relay.endpoint)
        sock.send_multipart(frames_of(Hello(actor_id, "here", 1)))
        self.actors[actor_id] = sock
        self.turn_until(lambda: sock.poll(0))
        assert isinstance(decode(sock.recv_multipart()), Welcome)
        return sock

    def work(self, actor_id: str, **fields) -> bytes:
        t = dataclasses.replace(Target.of(self.welcome, actor_id), actor_id=actor_id)
        msg = valid_message(self.inproc.learner.intake.WORK, t, NoChoice())
        for name, value in fields.items():
            setattr(msg, name, value)
        return frames_of(msg)[0]

    def bundles_up(self, wait: int = 20) -> list[tuple[Bundle, list[bytes]]]:
        """The bundles that reached the learner so far; its heartbeats and hellos are
        answered as the learner answers them."""
        out = []
        while self.learner.poll(wait):
            wait = 0
            identity, *frames = self.learner.recv_multipart()
            msg = decode(frames)
            if isinstance(msg, Bundle):
                out.append((msg, frames[1:]))
            elif isinstance(msg, Heartbeat):
                beat = frames_of(Heartbeat(self.run_id, msg.actor_id))
                self.learner.send_multipart([identity, *beat])
            elif isinstance(msg, Hello):
                self.identity = identity
                self.learner.send_multipart([identity, *encode(self.welcome)])
        return out

    def answer(self, seq: int) -> None:
        reply = Answer(self.run_id, self.welcome.weights_version, 0.0, 2, 0.0, seq=seq)
        self.learner.send_multipart([self.identity, *encode(reply)])

    def close(self) -> None:
        for sock in self.actors.values():
            sock.close(0)
        self.learner.close(0)
        self.relay.close()
        self.ctx.term()
        self.inproc.close()


@pytest.fixture
def rig(tmp_path):
    r = RelayRig(tmp_path)
    yield r
    r.close()


def test_an_actor_cannot_make_the_relay_hold_its_messages_without_bound(rig):
    """Work waiting to go up is bounded by each actor's credit, but its heartbeats and
    episode reports were not: while the learner's answers were slow, one actor could make
    the relay hold any number of them."""
    a = rig.actor("a-0")
    for n in (1, 2):  # the two bundles the relay may keep in flight, unanswered
        a.send_multipart([rig.work("a-0")])
        rig.turn_until(lambda n=n: len(rig.relay.up.inflight) == n)
    beat, episodes = (
        frames_of(Heartbeat(rig.run_id, "a-0")),
        frames_of(Episodes(rig.run_id, "a-0", [1.0], [10])),
    )
    for _ in range(500):
        a.send_multipart(beat)
        a.send_multipart(episodes)
    rig.turn_until(lambda: rig.relay.dropped["queue_full"] + len(rig.relay.down.pending) == 1000)
    assert len(rig.relay.up.inflight) == 2 and rig.relay.dropped["queue_full"] > 0
    assert len(rig.relay.down.pending) <= MAX_WAITING


def test_a_bundle_the_learner_never_answers_does_not_hold_the_relay_forever(tmp_path):
    """The relay took a bundle as lost only when the learner fell silent; a learner that
    answered its heartbeats and later bundles but lost one (or its answer) held that
    bundle's credit, here and its actors', for good: a few such and the relay sent no more."""
    rig = RelayRig(tmp_path, heartbeat_interval=0.2, heartbeat_timeout=1.0)
    try:
        a = rig.actor("a-0")
        a.send_multipart([rig.work("a-0")])
        rig.turn_until(lambda: rig.relay.up.inflight)
        assert len(rig.bundles_up()) == 1  # and never answered
        deadline = time.monotonic() + 5.0
        hello = None
        while hello is None and time.monotonic() < deadline:
            rig.turn()
            while rig.learner.poll(20):  # answer all else, as a live learner does
                identity, *frames = rig.learner.recv_multipart()
                msg = decode(frames)
                if isinstance(msg, Hello):
                    hello = msg
                elif isinstance(msg, Heartbeat):
                    reply = frames_of(Heartbeat(rig.run_id, "relay-t"))
                    rig.learner.send_multipart([identity, *reply])
        assert hello is not None, "the relay never gave the bundle up"
        assert rig.relay.lost_in_flight == 1 and not rig.relay.up.inflight
        rig.turn_until(lambda: a.poll(0))
        assert isinstance(decode(a.recv_multipart()), Rejoin)  # its actor joins again
    finally:
        rig.close()


def test_a_message_over_the_learners_size_limit_stays_at_the_relay(rig):
    """Forwarded, one actor's oversized message made the learner's socket drop the relay's
    connection, and every actor behind it lost its work in flight and had to join again."""
    a = rig.actor("a-0")
    limit = rig.inproc.learner.max_message_bytes
    big = valid_message(Rollout, Target.of(rig.welcome, "a-0"), NoChoice())
    big.arrays["junk"] = np.zeros(limit // 4 + 1, np.float32)
    a.send_multipart(frames_of(big))
    a.send_multipart([rig.work("a-0")])
    rig.turn_until(lambda: rig.relay.up.inflight)
    ((bundle, inner),) = rig.bundles_up()
    assert bundle.count == 1 and all(len(f) <= limit for f in inner)
    assert rig.relay.dropped["oversize"] == 1


def test_the_relay_counts_no_env_steps_the_learner_would_refuse(rig):
    """The relay added whatever env-step count a work message claimed to its own counters
    (its status and Prometheus counters), a negative one included."""
    a = rig.actor("a-0")
    a.send_multipart([rig.work("a-0", env_steps=-(2**62))])
    a.send_multipart([rig.work("a-0", env_steps=1)])
    rig.turn_until(lambda: rig.relay.up.inflight)
    assert rig.relay.down.env_steps == 0 and rig.relay.down.members.by_id["a-0"].env_steps == 0
    a.send_multipart([rig.work("a-0")])
    rig.answer(0)
    rig.turn_until(lambda: rig.relay.down.env_steps > 0)
    assert rig.relay.down.env_steps == Target.of(rig.welcome, "a-0").work_steps


# ---- the relay's actor side, fuzzed -----------------------------------------------------

OWN, OWN_ID, OTHER, OTHER_ID = "fuzz-actor", b"F", "other-actor", b"O"


class RelayHarness:
    """One relay (module-wide), fed fuzzed actor messages as its receive loop would feed
    them, with its bundles answered, late, twice or never by the stand-in learner."""

    def __init__(self, rig: RelayRig):
        self.rig, self.relay = rig, rig.relay
        self.max_credit = rig.inproc.learner.cfg.max_credit
        self.own = set()
        """Every frame the fuzzed actor sent from its own connection: all that may go up
        in its name."""

    def ensure_joined(self) -> None:
        for actor_id, identity in ((OWN, OWN_ID), (OTHER, OTHER_ID)):
            member = self.relay.down.members.by_id.get(actor_id)
            if member is None or member.identity != identity:
                self.relay.down.on_frames(
                    identity, frames_of(Hello(actor_id, "h", 1)), 0, self.relay.status
                )

    def target(self) -> Target:
        while self.relay.up.joined is None:  # it said hello again: the learner answers
            self.rig.turn()
            self.learner_reads()
        self.ensure_joined()
        joined = self.relay.up.joined
        return dataclasses.replace(Target.of(self.rig.welcome, OWN), version=joined.version)

    def deliver(self, fz) -> None:
        identity = OTHER_ID if fz.stranger else OWN_ID
        if not fz.stranger:
            self.own.update(fz.frames)
        frames = fz.frames
        self.relay.down.on_frames(identity, frames[:1], max(0, len(frames) - 1), self.relay.status)
        self.check()

    def learner_turn(self, c: Chooser) -> None:
        """The relay's loop turns; the learner answers some bundles, in any order."""
        self.rig.turn()
        self.learner_reads()
        inflight = sorted(self.relay.up.inflight)
        how = c.choice(("none", "oldest", "newest", "unknown", "twice"))
        seqs = {"oldest": inflight[:1], "twice": inflight[:1] * 2, "newest": inflight[-1:]}
        answers = seqs.get(how, [10**9] if how == "unknown" else [])
        for seq in answers:
            self.rig.answer(seq)
        if self.relay.up.sock.poll(200 if answers else 0):  # the answers are there to read
            self.rig.turn()
        self.check()

    def learner_reads(self) -> None:
        """What reached the learner: nothing goes up in an actor's name that it never sent."""
        for _, inner in self.rig.bundles_up(wait=1):
            for frame in inner:
                msg = decode([frame])
                assert msg.actor_id in (OWN, OTHER), msg.actor_id
                if msg.actor_id == OWN:
                    assert frame in self.own, "a frame went up that its actor never sent"

    def check(self) -> None:
        r = self.relay
        assert "internal_error" not in r.dropped, r.dropped
        assert len(r.up.inflight) <= max(1, r.up.credit)
        assert r.down.env_steps >= 0
        waiting = Counter(id(m) for _, m, t in r.down.pending if t is None)
        for member in r.down.members.by_id.values():
            assert 0 <= member.outstanding <= self.max_credit
            assert member.waiting == waiting[id(member)] <= MAX_WAITING
            assert member.env_steps >= 0
        work = Counter(m.actor_id for _, m, t in r.down.pending if t is not None)
        assert all(n <= self.max_credit for n in work.values())


@pytest.fixture(scope="module")
def relay_harness(tmp_path_factory):
    rig = RelayRig(tmp_path_factory.mktemp("relay-fuzz"))
    harness = RelayHarness(rig)
    harness.ensure_joined()
    yield harness
    rig.close()


@settings(FUZZ_SETTINGS, max_examples=300)
@given(data=st.data())
def test_fuzzed_actor_messages_to_a_relay(relay_harness, data):
    h = relay_harness
    for _ in range(data.draw(st.integers(1, 4), label="batch size")):
        h.deliver(data.draw(fuzzed(h.target())))
        if data.draw(st.booleans(), label="turn"):
            h.learner_turn(DrawChooser(data.draw))
    h.learner_turn(DrawChooser(data.draw))
