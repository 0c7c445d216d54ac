"""How much work in flight the learner grants each actor: enough to cover long round trips,
no more than the learner can take.

An actor's pacer (actor.credit) asks for more work in flight when its round trip is long.
It cannot tell a slow link from a busy learner: work that waits in the learner's inbound
queue looks like link time. When the learner itself is the bottleneck, more work in flight
buys no throughput, only staleness (gradients computed on older weights), and the queue it
makes reads as a longer round trip, which asks for more. The learner knows which case it is
in: a learner that never waits for work is saturated. So the grant falls by one per
housekeeping period while the learner waits less than BUSY of its time, down to the base
credit, and rises by one while it waits more than SPARE, up to its share of max_staleness.
"""

from __future__ import annotations

BUSY = 0.02
"""Idle fraction below which the learner counts as saturated."""
SPARE = 0.10
"""Idle fraction above which the learner has room for more work in flight."""


class CreditGrant:
    def __init__(self, base: int, cap: int, max_staleness: int):
        self.base = base
        self.cap = max(base, cap)
        self.max_staleness = max_staleness
        self.grant = self.base
        self._idle = 0.0
        self._since: float | None = None
        self.idle_fraction: float | None = None

    def waited(self, seconds: float) -> None:
        """Time the learner spent waiting for work (blocked in poll)."""
        self._idle += seconds

    def ceiling(self, connected: int) -> int:
        """Every actor's work in flight together stays within max_staleness updates."""
        share = self.max_staleness // max(1, connected)
        return max(self.base, min(self.cap, share))

    def update(self, now: float, connected: int) -> int:
        """The grant for the next period, from how idle the learner was in the last one."""
        if self._since is not None and now > self._since:
            self.idle_fraction = min(1.0, self._idle / (now - self._since))
            if self.idle_fraction < BUSY:
                self.grant -= 1
            elif self.idle_fraction > SPARE:
                self.grant += 1
        self._since, self._idle = now, 0.0
        self.grant = max(self.base, min(self.ceiling(connected), self.grant))
        return self.grant
