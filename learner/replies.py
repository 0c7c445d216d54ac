"""What the learner answers an actor: the welcome that hands it the run's settings and
weights, and the reply to each work message that returns its credit, with the newest
weights or only their version. The service sends them."""

from __future__ import annotations

import time

from learner.credit import CreditGrant
from learner.registry import ActorInfo
from learner.startup import RunParts
from protocol import Weights, Welcome


class Replies:
    def __init__(self, run: RunParts, run_id: str, credit: CreditGrant):
        self.weights_lag, self.run_id, self.settings = run.cfg.weights_lag, run_id, run.settings
        self.updater, self.norm, self.credit = run.updater, run.norm, credit

    def welcome(self, info: ActorInfo) -> Welcome:
        """The welcome for `info`, marked as sent before it is: a peer whose queue is full
        gets no welcome and no second try on this connection (an honest actor says hello
        again on a fresh socket)."""
        up = self.updater
        info.welcomed = (info.identity, up.version)
        info.sent_version = up.version
        return Welcome(
            self.run_id,
            info.index,
            up.version,
            up.stamp,
            self.settings,
            up.weights,
            self.norm.reply(),
        )

    def weights(self, info: ActorInfo, received: float) -> Weights:
        """One credit back, with the newest weights unless the actor's copy is at most
        weights_lag versions old (a version-only reply). `received`: when the work it
        answers arrived, so the actor can tell the link's round trip from the learner's."""
        up = self.updater
        held = max(0.0, time.monotonic() - received)
        reply = Weights(self.run_id, up.version, up.stamp, self.credit.grant, held)
        if up.version - info.sent_version > self.weights_lag or info.sent_version < 0:
            reply.weights, reply.extras = up.weights, self.norm.reply()
        return reply
