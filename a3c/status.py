"""`a3c status`: ask a running learner for its live state and print it as tables."""

from __future__ import annotations

import zmq

from protocol import CodecError, Status, StatusQuery, decode, encode
from protocol.security import ClientKeys
from protocol.sockets import connect_dealer


class StatusError(RuntimeError):
    pass


def query(address: str, timeout: float, keys: ClientKeys | None = None) -> dict:
    """The learner's status map, or StatusError when none comes within `timeout` seconds."""
    ctx = zmq.Context()
    sock = connect_dealer(ctx, address, keys)
    try:
        sock.send_multipart(encode(StatusQuery()))
        if not sock.poll(int(timeout * 1000)):
            hint = "" if keys else " (a learner with --keys-dir needs --keys-dir here too)"
            raise StatusError(f"no answer from {address} within {timeout:g}s{hint}")
        try:
            msg = decode(sock.recv_multipart())
        except CodecError as exc:
            raise StatusError(f"{address} answered with a bad message: {exc}") from None
        if not isinstance(msg, Status):
            raise StatusError(f"{address} answered with a {msg.TYPE} message, not a status")
        return {"run_id": msg.run_id, **msg.state}
    finally:
        sock.close(linger=0)
        ctx.term()


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


RUN_FIELDS = (
    "run_id", "mode", "env", "recurrent", "wall_seconds", "env_steps", "episodes", "updates",
    "weights_version", "mean_return_100", "target_return", "env_steps_per_second",
    "updates_per_second", "staleness_mean", "staleness_max", "actors_connected",
)  # fmt: skip
ACTOR_FIELDS = (
    "index", "actor_id", "host", "connected", "last_seen_seconds", "env_steps",
    "env_steps_per_second", "via",
)  # fmt: skip
RELAY_FIELDS = (
    "run_id", "relay_id", "learner", "joined", "weights_version", "actors_connected", "bundles",
    "messages_folded", "lost_in_flight", "bytes_in_from_learner", "bytes_out_to_learner",
    "wall_seconds",
)  # fmt: skip


def render(state: dict) -> str:
    """A learner's state (or a relay's) as tables: the run, its actors, relays, drops."""
    if state.get("role") == "relay":
        run = table([[k, _fmt(state.get(k))] for k in RELAY_FIELDS], ["relay", ""])
        steps = state.get("actors") or {}
        actors = table([[k, _fmt(v)] for k, v in steps.items()], ["actor_id", "env_steps"])
    else:
        run = table([[k, _fmt(state.get(k))] for k in RUN_FIELDS], ["run", ""])
        actors = table(
            [[_fmt(a.get(k)) for k in ACTOR_FIELDS] for a in state.get("actors", [])],
            list(ACTOR_FIELDS),
        )
        relays = state.get("relays") or {}
        if relays:
            rows = [[k, _fmt(v.get("actors")), _fmt(v.get("env_steps"))] for k, v in relays.items()]
            actors += "\n\n" + table(rows, ["relay", "actors", "env_steps"])
    dropped = state.get("dropped") or {}
    drops = (
        table([[k, _fmt(v)] for k, v in sorted(dropped.items())], ["dropped", "messages"])
        if dropped
        else "dropped: none"
    )
    return f"{run}\n\n{actors}\n\n{drops}"
