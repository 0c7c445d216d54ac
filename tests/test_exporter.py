"""Metrics for Prometheus: the exporter serves what its process last published, in the text
format Prometheus parses, and a learner with --metrics-port serves its run's state."""

from __future__ import annotations

import contextlib
import math
import signal
import socket
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from a3c.cli import main
from learner.exporting import LearnerMetrics
from learner.registry import ActorRegistry
from learner.stats import RunStats
from protocol.exporter import (
    COUNTER,
    GAUGE,
    ExporterError,
    Family,
    Sample,
    by_label,
    counter,
    gauge,
    serve_metrics,
    summary,
)
from tests import helpers
from tests.helpers import INTERRUPTED, a3c, free_port, kill_all, run_a3c, wait


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """Each sample served at `url` by name, then by its labels (sorted pairs)."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def families(url: str) -> dict[str, tuple[str, str]]:
    """Each family served at `url`: its type and help."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(text)}


@pytest.fixture
def exporter():
    served = serve_metrics(0, "127.0.0.1")
    yield served
    served.close()


def test_a_scrape_sees_what_was_published(exporter):
    assert exporter.port > 0
    assert scrape(exporter.url) == {}  # nothing published yet: an empty, valid page
    exporter.publish(
        [
            counter("demo_steps_total", "Steps.", 1234),
            gauge("demo_actors", "Actors.", 3),
            gauge("demo_unknown", "Not known yet.", None),
            by_label(COUNTER, "demo_dropped_total", "Drops.", "reason", {"stale": 2, "bad": 5}),
            summary("demo_staleness_updates", "Staleness.", 4, 10),
            Family("demo_info", "Names.", GAUGE, (Sample(1, ("x", 'q"uote')),), ("a", "b")),
        ]
    )
    got = scrape(exporter.url)
    assert got["demo_steps_total"] == {(): 1234}
    assert got["demo_actors"] == {(): 3}
    assert "demo_unknown" not in got
    assert got["demo_dropped_total"] == {(("reason", "bad"),): 5, (("reason", "stale"),): 2}
    assert got["demo_staleness_updates_count"] == {(): 4}
    assert got["demo_staleness_updates_sum"] == {(): 10}
    assert got["demo_info"] == {(("a", "x"), ("b", 'q"uote')): 1}
    kinds = families(exporter.url)
    assert kinds["demo_steps"] == ("counter", "Steps.")
    assert kinds["demo_unknown"] == ("gauge", "Not known yet.")  # help and type, no sample
    assert kinds["demo_staleness_updates"] == ("summary", "Staleness.")


def test_a_second_publish_replaces_the_first(exporter):
    exporter.publish([counter("demo_steps_total", "Steps.", 1), gauge("demo_old", "Old.", 1)])
    exporter.publish([counter("demo_steps_total", "Steps.", 2), gauge("demo_nan", "N.", math.nan)])
    got = scrape(exporter.url)
    assert got["demo_steps_total"] == {(): 2}
    assert "demo_old" not in got
    assert math.isnan(got["demo_nan"][()])


@pytest.mark.parametrize(
    "family, match",
    [
        (gauge("bad name", "x", 1), "bad name"),
        (Family("demo_x", "x", GAUGE, (Sample(1, ("v",)),), ("__internal",)), "label name"),
        (counter("demo_steps", "x", 1), "_total"),
        (Family("demo_x", "x", "histogram", (Sample(1),)), "kind"),
        (Family("demo_x", "x", GAUGE, (Sample(1, ("a", "b")),), ("only",)), "labels"),
        (gauge("demo_x", "x", "7"), "not a number"),
    ],
)
def test_a_malformed_snapshot_is_refused_and_the_last_one_stays(exporter, family, match):
    exporter.publish([gauge("demo_kept", "Kept.", 1)])
    with pytest.raises(ValueError, match=match):
        exporter.publish([gauge("demo_new", "New.", 1), family])
    assert scrape(exporter.url) == {"demo_kept": {(): 1}}


def test_a_name_twice_in_one_snapshot_is_refused(exporter):
    with pytest.raises(ValueError, match="twice"):
        exporter.publish([gauge("demo_x", "x", 1), gauge("demo_x", "x", 2)])


def test_exporters_are_independent_and_close_frees_the_port(exporter):
    other = serve_metrics(0, "127.0.0.1")
    try:
        exporter.publish([gauge("demo_which", "Which.", 1)])
        other.publish([gauge("demo_which", "Which.", 2)])
        assert scrape(exporter.url) == {"demo_which": {(): 1}}
        assert scrape(other.url) == {"demo_which": {(): 2}}
    finally:
        other.close()
    other.close()  # a second close does nothing
    with pytest.raises(urllib.error.URLError):
        scrape(other.url)
    again = serve_metrics(other.port, "127.0.0.1")
    again.close()


def test_a_taken_port_is_a_clear_error(exporter):
    with pytest.raises(ExporterError, match=f"cannot serve metrics on 127.0.0.1:{exporter.port}"):
        serve_metrics(exporter.port, "127.0.0.1")


def test_the_learner_snapshot_counts_relays_and_drops(exporter):
    registry = ActorRegistry(heartbeat_timeout=10)
    for name, via in [("a", None), ("b", "relay-1"), ("c", "relay-1"), ("d", "relay-2")]:
        info = registry.register(name, name.encode())
        info.via = via  # set by the registry for actors that came through a relay
    registry.leave(registry.get("d"))
    stats = RunStats()
    stats.add_env_steps(500)
    stats.add_update([0, 2], (math.nan,) * 4)
    stats.add_update([4], (math.nan,) * 4)
    stats.drop("stale")
    reporter = SimpleNamespace(
        stats=stats,
        cfg=SimpleNamespace(mode="data", env_id="CartPole-v1"),
        registry=registry,
        updater=SimpleNamespace(version=7),
        live_rates=lambda: (250.0, 1.0),
    )
    metrics = LearnerMetrics(exporter, reporter, "run1")
    metrics.tick(0.0)
    got = scrape(exporter.url)
    assert got["a3c_relay_actors"] == {(("relay", "relay-1"),): 2}
    assert got["a3c_actors_connected"] == {(): 3}
    assert got["a3c_dropped_total"] == {(("reason", "stale"),): 1}
    assert got["a3c_env_steps_total"] == {(): 500} and got["a3c_weights_version"] == {(): 7}
    assert got["a3c_staleness_updates_count"] == {(): 3}
    assert got["a3c_staleness_updates_sum"] == {(): 6}
    assert got["a3c_staleness_mean_updates"] == {(): 2}
    assert "a3c_mean_return_100" not in got  # no episode yet
    stats.add_update([1], (math.nan,) * 4)
    metrics.tick(0.5)  # not due: the same snapshot
    assert scrape(exporter.url)["a3c_updates_total"] == {(): 2}
    metrics.tick(1.0)
    got = scrape(exporter.url)
    assert got["a3c_updates_total"] == {(): 3} and got["a3c_staleness_mean_updates"] == {(): 1}


def test_train_help_shows_the_option():
    result = CliRunner().invoke(main, ["train", "--help"])
    assert "--metrics-port" in result.output and "A3C_METRICS_PORT" in result.output


def test_a_learner_serves_its_run_while_it_runs(tmp_path):
    port = free_port()
    run_dir = tmp_path / "run"
    # A budget it will not reach while this looks (20,000 steps take about a second, and it
    # publishes once a second): it is stopped once seen working.
    train = a3c("train", "--mode", "gradient", "--env", "CartPole-v1", "--actors", "1",
                "--max-env-steps", "2000000", "--target-return", "1e9", "--no-tensorboard",
                "--run-dir", run_dir, "--metrics-port", port)  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    seen: dict = {}
    deadline = time.monotonic() + 120
    try:
        while not _working(seen):
            assert train.poll() is None and time.monotonic() < deadline, seen
            time.sleep(0.2)
            with contextlib.suppress(urllib.error.URLError, ConnectionError):  # not up yet
                seen = scrape(url)
        train.send_signal(signal.SIGTERM)
        assert wait(train, 60) == INTERRUPTED
    finally:
        kill_all(train)
    assert seen["a3c_actors_connected"] == {(): 1}
    assert seen["a3c_updates_total"][()] > 0
    assert seen["a3c_staleness_updates_count"][()] >= seen["a3c_updates_total"][()]
    assert seen["a3c_sent_bytes_total"][()] > 0 and seen["a3c_received_bytes_total"][()] > 0
    ((labels, one),) = seen["a3c_run_info"].items()
    assert one == 1 and dict(labels)["mode"] == "gradient"
    assert dict(labels)["env"] == "CartPole-v1"
    assert helpers.summary(run_dir)["env_steps"] >= seen["a3c_env_steps_total"][()]
    with pytest.raises(urllib.error.URLError):
        scrape(url)  # the learner closed it on exit


def _working(samples: dict) -> bool:
    return (
        samples.get("a3c_env_steps_total", {}).get((), 0) > 0
        and samples.get("a3c_actors_connected", {}).get(()) == 1
        and samples.get("a3c_weights_version", {}).get((), 0) > 0
    )


def test_a_learner_whose_metrics_port_is_taken_does_not_start(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_a3c("learner", "--mode", "data", "--run-dir", tmp_path / "run",
                       "--bind", f"tcp://127.0.0.1:{free_port()}", "--max-seconds", "1",
                       "--metrics-port", port)  # fmt: skip
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: cannot serve metrics on 0.0.0.0:{port}: Address already in use"]
