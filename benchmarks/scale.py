"""Scale: many light actors straight to the learner, then the same actors through relays,
in one run on this machine.

Each case starts a gradient-mode learner (CartPole's network, staleness unbounded so
nothing is dropped for age) with a metrics endpoint, and `--actors` light actors in one
process (tests/support/load_actor.py: hello, then gradients as fast as credit allows). In the
relayed case, `--relays` relay processes stand between them, the actors spread evenly. Over
`--seconds` of steady state it measures what the learner pays and what the actors get:
learner CPU seconds per 1k env steps, messages the learner handles per second and per 1k
env steps, bytes it sends per weights version, env steps/s, update-to-actor latency and
staleness.

    python -m benchmarks.scale --actors 256 --relays 8 --seconds 20
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

import click
import zmq

from benchmarks.harness import launch, machine, results
from benchmarks.harness.table import print_table
from tests.support.load_actor import LoadActor

QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(url: str) -> dict[str, float]:
    """The learner's unlabelled samples, parsed by the Prometheus client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urlopen(url, timeout=10).read().decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }


def relay_bundles(addresses: list[str]) -> int:
    """Bundles all relays have sent the learner so far (their status; a relay that does not
    answer fails the run rather than count as none)."""
    from a3c.status import query

    return sum(query(address, 10.0)["bundles"] for address in addresses)


@dataclass(frozen=True)
class Net:
    """Where the learner binds and how the others reach it: all on loopback, or the learner
    across an emulated link (tests/support/netlink.py) from the actors' namespace."""

    bind: str
    reach: str
    """The address relays and direct actors connect to."""
    metrics_host: str = "127.0.0.1"
    wrap: tuple[str, ...] = ()
    """What runs the learner in its namespace."""


class Case:
    """One learner, optionally relays, and the light actors, measured over a window."""

    def __init__(self, actors: int, relays: int, port: int, net: Net | None = None):
        self.actors, self.relays, self.port = actors, relays, port
        loopback = f"tcp://127.0.0.1:{port}"
        self.net = net or Net(loopback, loopback)
        self.learner_at = self.net.reach
        self.metrics_url = f"http://{self.net.metrics_host}:{port + 1}/metrics"
        self.relay_at = [f"tcp://127.0.0.1:{port + 2 + i}" for i in range(relays)]
        self.procs: list[subprocess.Popen] = []

    def start(self, run_dir: Path) -> subprocess.Popen:
        args = launch.learner_args(
            "gradient", self.net.bind, run_dir, "--target-return", "1e9", "--insecure",
            "--max-staleness", "1000000", "--metrics-port", str(self.port + 1),
        )  # fmt: skip
        cmd = [*self.net.wrap, *launch.A3C, *args]
        learner = subprocess.Popen(cmd, cwd=launch.ROOT, **QUIET)
        self.procs.append(learner)
        for i, bind in enumerate(self.relay_at):
            relay = ["relay", "--learner", self.learner_at, "--bind", bind, "--relay-id", f"r{i}"]
            launch.remember(relay, run_dir)
            self.procs.append(subprocess.Popen([*launch.A3C, *relay], cwd=launch.ROOT, **QUIET))
        return learner

    def targets(self) -> list[str]:
        return (
            [self.relay_at[i % self.relays] for i in range(self.actors)]
            if self.relays
            else [self.learner_at] * self.actors
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def measure(actors: int, relays: int, seconds: float, port: int, net: Net | None = None) -> dict:
    case = Case(actors, relays, port, net)
    with launch.run_dir() as run_dir:
        learner = case.start(run_dir)
        ctx, stop = zmq.Context(), threading.Event()
        threads = [LoadActor(ctx, a, i, stop) for i, a in enumerate(case.targets())]
        try:
            for t in threads:
                t.start()
            return _window(case, learner, threads, seconds)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)
            case.stop()
            ctx.term()


def _window(case: Case, learner, threads: list[LoadActor], seconds: float) -> dict:
    deadline = time.monotonic() + 180
    while min(t.replies for t in threads) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)  # every actor served once: the start-up is not measured
    time.sleep(2.0)
    first, cpu0, sent0 = scrape(case.metrics_url), cpu_seconds(learner.pid), _sent(case, threads)
    for t in threads:
        t.latencies.clear()
    time.sleep(seconds)
    last, cpu1, sent1 = scrape(case.metrics_url), cpu_seconds(learner.pid), _sent(case, threads)
    steps = last["a3c_env_steps_total"] - first["a3c_env_steps_total"]
    versions = last["a3c_weights_version"] - first["a3c_weights_version"]
    count = last["a3c_staleness_updates_count"] - first["a3c_staleness_updates_count"]
    total = last["a3c_staleness_updates_sum"] - first["a3c_staleness_updates_sum"]
    latencies = sorted(x for t in threads for x in t.latencies)
    messages = sent1 - sent0
    return {
        "case": f"{case.relays} relays" if case.relays else "direct",
        "actors": case.actors,
        "relays": case.relays,
        "seconds": seconds,
        "env_steps_per_second": round(steps / seconds, 1),
        "learner_cpu_s_per_1k_steps": round(1000 * (cpu1 - cpu0) / max(steps, 1), 4),
        "learner_messages_per_second": round(messages / seconds, 1),
        "learner_messages_per_1k_steps": round(1000 * messages / max(steps, 1), 2),
        "learner_bytes_sent_per_version": round(
            (last["a3c_sent_bytes_total"] - first["a3c_sent_bytes_total"]) / max(versions, 1)
        ),
        "weights_versions": int(versions),
        "latency_ms_median": _ms(statistics.median(latencies)) if latencies else None,
        "latency_ms_p90": _ms(latencies[int(0.9 * (len(latencies) - 1))]) if latencies else None,
        "staleness_mean": round(total / count, 2) if count else None,
    }


def _sent(case: Case, threads: list[LoadActor]) -> int:
    """Messages the learner has been sent: the actors' own, or the relays' bundles."""
    return relay_bundles(case.relay_at) if case.relays else sum(t.sent for t in threads)


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


COLUMNS = [
    ("case", "case", ""), ("env_steps_per_second", "env steps/s", ",.0f"),
    ("learner_cpu_s_per_1k_steps", "learner CPU s/1k steps", ".3f"),
    ("learner_messages_per_second", "learner msgs/s", ",.0f"),
    ("learner_messages_per_1k_steps", "msgs/1k steps", ".1f"),
    ("learner_bytes_sent_per_version", "bytes out/version", ",.0f"),
    ("latency_ms_median", "latency ms (median)", ".1f"), ("staleness_mean", "staleness", ".1f"),
]  # fmt: skip


def ratios(direct: dict, relayed: dict) -> dict:
    """Relayed over direct, for the measures the targets name."""
    keys = ("learner_bytes_sent_per_version", "learner_messages_per_1k_steps",
            "env_steps_per_second", "learner_cpu_s_per_1k_steps")  # fmt: skip
    return {k: round(relayed[k] / direct[k], 4) if direct[k] else None for k in keys}


def both(actors: int, relays: int, seconds: float, port: int, net: Net | None = None) -> dict:
    rows = [measure(actors, 0, seconds, port, net), measure(actors, relays, seconds, port, net)]
    print_table(rows, COLUMNS)
    out = {"rows": rows, "relayed_over_direct": ratios(rows[0], rows[1])}
    print("relayed / direct:", out["relayed_over_direct"], flush=True)
    return out


def across(profile: str, actors: int, relays: int, seconds: float) -> dict:
    """Both cases with the learner across an emulated link: this script again, in the
    actors' namespace (relays beside their actors), starting the learner in its own."""
    from tests.support.netlink import LEARNER_PORT, PROFILES, Link

    with Link(PROFILES[profile], tag="s") as link:
        sizes = ("--actors", str(actors), "--relays", str(relays), "--seconds", str(seconds))
        inner = link.in_actor_ns(sys.executable, "-m", "benchmarks.scale", "--inside", profile,
                                 *sizes, "--port", str(LEARNER_PORT))  # fmt: skip
        done = subprocess.run(inner, cwd=launch.ROOT, capture_output=True, text=True, check=True)
        out = json.loads(done.stdout.strip().splitlines()[-1])
        out["link"] = {"profile": profile, **link.check()}
    return out


def inside(profile: str, actors: int, relays: int, seconds: float, port: int) -> None:
    from tests.support.netlink import LEARNER_IP, PROFILES, Link

    link = Link(PROFILES[profile], tag="s")  # already up: only its addresses are used
    net = Net(f"tcp://{LEARNER_IP}:{port}", link.actor_address, LEARNER_IP,
              tuple(link.in_learner_ns()))  # fmt: skip
    with contextlib.redirect_stdout(sys.stderr):
        out = both(actors, relays, seconds, port, net)
    print(json.dumps(out))


MEASURES = (
    ("learner_bytes_sent_per_version", "bytes out\nper version"),
    ("learner_messages_per_1k_steps", "messages\nper 1k steps"),
    ("learner_cpu_s_per_1k_steps", "learner CPU\nper step"),
    ("env_steps_per_second", "env steps/s"),
)


def plot(out: dict, path: Path) -> None:
    """Through relays over direct, per measure, on loopback and across the link (log scale:
    the learner's costs fall by tens, throughput moves by a few percent)."""
    from benchmarks.harness.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    parts = [("loopback", out)] + ([("across the link", out["across_link"])]
                                   if "across_link" in out else [])  # fmt: skip
    width = 0.8 / len(parts)
    for i, (label, part) in enumerate(parts):
        values = [part["relayed_over_direct"][k] for k, _ in MEASURES]
        xs = [j + (i - (len(parts) - 1) / 2) * width for j in range(len(MEASURES))]
        ax.bar(xs, values, width, label=label)
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(MEASURES)), [name for _, name in MEASURES])
    actors, relays = out["rows"][1]["actors"], out["rows"][1]["relays"]
    ax.set_ylabel("through relays / direct")
    ax.set_title(f"{actors} light actors, direct against {relays} relays")
    ax.legend()
    save(fig, path, dpi=110)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--actors", default=256, show_default=True, help="Light actors in each case.")
@click.option("--relays", default=8, show_default=True, help="Relays in the relayed case.")
@click.option("--seconds", default=20.0, show_default=True, help="Measured window per case.")
@click.option("--port", default=5700, show_default=True, help="First of the ports used.")
@click.option("--link", type=click.Choice(["dc", "cloud", "wan"]), default=None,
              help="Also both cases with the learner across this emulated link.")  # fmt: skip
@click.option("--inside", default=None, hidden=True)
def main(actors, relays, seconds, port, link, **kw) -> None:
    if kw.get("inside"):
        inside(kw["inside"], actors, relays, seconds, port)
        return
    machine.show()
    out = both(actors, relays, seconds, port)
    if link is not None:
        out["across_link"] = across(link, actors, relays, seconds)
    results.write("scale.json", out)
    plot(out, results.path("scale.png"))


if __name__ == "__main__":
    main()
