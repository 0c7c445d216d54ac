"""The relay's metrics for Prometheus (--metrics-port): what crosses its two links, what it
folds, and what it drops, published about once a second (protocol.exporter)."""

from __future__ import annotations

from protocol.exporter import COUNTER, Family, by_label, counter, gauge

EVERY = 1.0


def snapshot(state: dict) -> list[Family]:
    """Families from the relay's status map (relay.service.Relay.status)."""
    return [
        gauge("a3c_relay_joined", "1 when joined to the learner.", float(state["joined"])),
        gauge("a3c_weights_version", "Newest weights version held.", state["weights_version"]),
        gauge("a3c_actors_connected", "Actors heard from lately.", state["actors_connected"]),
        counter("a3c_env_steps_total", "Env steps its actors sent.", state["env_steps"]),
        counter("a3c_relay_bundles_total", "Bundles sent to the learner.", state["bundles"]),
        counter(
            "a3c_relay_messages_folded_total",
            "Actor messages sent up inside bundles.",
            state["messages_folded"],
        ),
        counter(
            "a3c_relay_fanout_replies_total",
            "Replies to actors served from the weights this relay holds.",
            state["fanout_replies"],
        ),
        counter(
            "a3c_relay_lost_in_flight_total",
            "Work messages lost in flight when the learner restarted or went silent.",
            state["lost_in_flight"],
        ),
        counter(
            "a3c_received_bytes_total", "Bytes from the learner.", state["bytes_in_from_learner"]
        ),
        counter("a3c_sent_bytes_total", "Bytes to the learner.", state["bytes_out_to_learner"]),
        by_label(
            COUNTER, "a3c_dropped_total", "Messages dropped, by why.", "reason", state["dropped"]
        ),
    ]
