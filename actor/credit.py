"""How much work an actor keeps in flight: enough to cover its round trip to the learner.

An actor that waits for each reply before it acts again idles for a round trip per message;
over a 40 ms link that is most of its time. The pacer measures the link's round trip (each
reply's, less the time the learner held the work, and the least of the recent ones, so a
queue that builds up does not feed on itself) and the time one work message takes to make.
A reply is read only when the actor looks, after making work; timed from then, every reply
would seem to take a work message's time per message in flight, and more in flight would
ask for more still. So the round trip counts only to the last time the actor found nothing
waiting (`nothing_waiting`): the reply came later than that, and maybe much later.
While the link is faster than making work (any local link) the learner's base credit
stands, so runs repeat exactly; past that it allows ceil(rtt / work) + 1 in flight, never
above what the learner granted.

The pacer also says how long a reply may take before the link counts as broken: four times
the slowest recent round trip, timed from sending the work to reading its reply (the
learner's hold included: a learner that holds work long is slow, not gone), never under a
floor. Read late, a reply only lengthens that deadline.
"""

from __future__ import annotations

import math
import time
from collections import deque

RTT_WINDOW = 32
WORK_SMOOTHING = 0.2
DEADLINE_FACTOR = 4.0


class CreditPacer:
    def __init__(self, floor: int, cap: int):
        self.floor = max(1, floor)
        self.cap = max(self.floor, cap)
        self.grant = self.floor
        self._sent: deque[float] = deque()
        self._rtts: deque[float] = deque(maxlen=RTT_WINDOW)
        self._trips: deque[float] = deque(maxlen=RTT_WINDOW)
        self._work: float | None = None
        self._empty_at = 0.0

    def reset(self) -> None:
        """Nothing in flight any more (a new learner, or a re-sync)."""
        self._sent.clear()

    def on_grant(self, credit: int) -> None:
        self.grant = min(self.cap, max(self.floor, credit))

    def on_work(self, seconds: float) -> None:
        """Time spent making one work message (acting and, in gradient mode, backprop)."""
        if self._work is None:
            self._work = seconds
        else:
            self._work += WORK_SMOOTHING * (seconds - self._work)

    def on_send(self) -> None:
        self._sent.append(time.monotonic())
        if len(self._sent) > self.cap * 4:  # replies lost on the way: forget the oldest
            self._sent.popleft()

    def nothing_waiting(self) -> None:
        """The actor found no reply waiting: any reply read later arrived after now."""
        self._empty_at = time.monotonic()

    def on_reply(self, held: float) -> None:
        """A reply read now; `held`: how long the learner held the work before replying."""
        if self._sent:
            sent = self._sent.popleft()
            self._rtts.append(max(0.0, self._empty_at - sent - held))
            self._trips.append(time.monotonic() - sent)

    def oldest_wait(self) -> float:
        """Seconds the oldest work message in flight has gone unanswered (0: none)."""
        return time.monotonic() - self._sent[0] if self._sent else 0.0

    def reply_deadline(self, floor: float) -> float:
        """How long a reply may take before the link counts as broken."""
        return max(floor, DEADLINE_FACTOR * max(self._trips, default=0.0))

    @property
    def pacing(self) -> bool:
        """Whether the limit can move at all (off with max-credit equal to the base)."""
        return self.cap > self.floor

    @property
    def rtt(self) -> float | None:
        return min(self._rtts) if self._rtts else None

    @property
    def limit(self) -> int:
        """Work messages to keep in flight now."""
        rtt = self.rtt
        if rtt is None or not self._work or rtt <= self._work:
            return self.floor
        wanted = math.ceil(rtt / self._work) + 1
        return max(self.floor, min(self.grant, wanted))
