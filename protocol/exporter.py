"""Metrics for Prometheus: an HTTP endpoint in the standard text format that serves the
last snapshot its process published.

The owning process's loop builds a snapshot (plain Family values) about once a second and
hands it to `Exporter.publish`, which turns it into prometheus_client metric objects and
swaps them in with one reference assignment. The HTTP thread only reads whatever reference
is current, so a scrape never waits on the loop, the loop never waits on a scrape, and no
object either thread can still change is shared between them.

Each exporter has its own CollectorRegistry rather than the library's global one, so one
process (a test, say) can serve several.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

GAUGE, COUNTER, SUMMARY = "gauge", "counter", "summary"
KINDS = (GAUGE, COUNTER, SUMMARY)
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
LABEL_VALUE_CHARS = 64
"""Longest label value served: a value a peer named cannot bloat every scrape."""


class ExporterError(RuntimeError):
    """The metrics endpoint cannot serve (its port is taken, its host unknown)."""


@dataclass(frozen=True)
class Sample:
    value: float
    """A gauge's or counter's value; a summary's sum."""
    labels: tuple[str, ...] = ()
    """Label values, in the order of the family's label names."""
    count: float = 0.0
    """A summary's count of observations (unused by the other kinds)."""


@dataclass(frozen=True)
class Family:
    """One metric family of a snapshot. A counter's name ends in `_total`, as scraped."""

    name: str
    help: str
    kind: str = GAUGE
    samples: tuple[Sample, ...] = ()
    labels: tuple[str, ...] = ()
    """Label names; every sample gives one value for each."""


def gauge(name: str, help: str, value: float | None) -> Family:
    """A gauge without labels; None: no sample (a value not known yet)."""
    return Family(name, help, GAUGE, () if value is None else (Sample(value),))


def counter(name: str, help: str, value: float) -> Family:
    return Family(name, help, COUNTER, (Sample(value),))


def by_label(kind: str, name: str, help: str, label: str, values: Mapping[str, float]) -> Family:
    """A gauge or counter with one label: a sample per label value, in sorted order."""
    samples = tuple(Sample(v, (str(k),)) for k, v in sorted(values.items()))
    return Family(name, help, kind, samples, (label,))


def summary(name: str, help: str, count: float, total: float) -> Family:
    """Observations counted and summed (no quantiles): rate(sum) / rate(count) is their
    mean over any window a query picks."""
    return Family(name, help, SUMMARY, (Sample(total, (), count),))


def to_metric(family: Family) -> Metric:
    """The prometheus_client form of `family`; ValueError names what is wrong with it."""
    name, kind, labels = family.name, family.kind, list(family.labels)
    # The classic character sets, which every Prometheus version and query parses as is
    # (the library would also take UTF-8 names, served escaped or quoted).
    if not NAME.fullmatch(name):
        raise ValueError(f"metric name {name!r} is not [a-zA-Z_:][a-zA-Z0-9_:]*")
    for label in labels:
        if not LABEL.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"metric {name!r}: label name {label!r} is not [a-zA-Z_][a-zA-Z0-9_]*")
    if kind == COUNTER:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in _total")
        metric = CounterMetricFamily(name, family.help, labels=labels)
    elif kind == GAUGE:
        metric = GaugeMetricFamily(name, family.help, labels=labels)
    elif kind == SUMMARY:
        metric = SummaryMetricFamily(name, family.help, labels=labels)
    else:
        raise ValueError(f"metric {name!r}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    for sample in family.samples:
        if len(sample.labels) != len(labels):
            raise ValueError(f"metric {name!r}: a sample has labels {sample.labels}, not {labels}")
        values = [str(v)[:LABEL_VALUE_CHARS] for v in sample.labels]
        value = _number(name, sample.value)
        if kind == SUMMARY:
            metric.add_metric(values, count_value=_number(name, sample.count), sum_value=value)
        else:
            metric.add_metric(values, value)
    return metric


def _number(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"metric {name!r}: value {value!r} is not a number")
    return float(value)


class _Latest:
    """The registry's one collector: the metrics of the last publish, as they were."""

    def __init__(self):
        self.metrics: tuple[Metric, ...] = ()

    def collect(self) -> Iterable[Metric]:
        return self.metrics  # one read of the reference: the whole snapshot or the one before


class Exporter:
    """Serves the last published snapshot over HTTP until closed."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, latest: _Latest):
        self._server, self._thread, self._latest = server, thread, latest
        self.host = server.server_address[0]
        self.port: int = server.server_address[1]
        """The port it serves on (the one the system chose when asked for port 0)."""
        self._closed = False

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    def publish(self, snapshot: Iterable[Family]) -> None:
        """Serve `snapshot` from now on, in place of the last one. Raises ValueError for a
        malformed family or a name given twice, and then the last snapshot stays."""
        metrics, names = [], set()
        for family in snapshot:
            if family.name in names:
                raise ValueError(f"metric {family.name!r} appears twice in one snapshot")
            names.add(family.name)
            metrics.append(to_metric(family))
        self._latest.metrics = tuple(metrics)

    def close(self) -> None:
        """Stop serving and free the port; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(port: int, host: str = "0.0.0.0") -> Exporter:
    """Serve metrics on host:port (port 0: a free port, then `Exporter.port`) from a daemon
    thread; nothing until the first publish. ExporterError when it cannot bind."""
    latest = _Latest()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(latest)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ExporterError(f"cannot serve metrics on {_address(host, port)}: {reason}") from None
    return Exporter(server, thread, latest)


def _address(host: str, port: int) -> str:
    try:
        socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        return f"{host}:{port}"
    return f"[{host}]:{port}"
