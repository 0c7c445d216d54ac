"""Seeing a run: `a3c status` against a live learner, TensorBoard scalars for every metric,
`a3c plot` and `a3c evaluate --video`."""

import json

import imageio.v2 as imageio
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from learner.tensorboard import flatten
from tests.helpers import (
    free_port,
    kill_all,
    metrics,
    run_a3c,
    start_actors,
    start_learner,
    wait,
    wait_for,
    wait_for_contributors,
)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """A data-mode learner with two actors, asked for its status while it trains, then
    stopped with SIGTERM: its run directory serves the TensorBoard, plot and video tests."""
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path_factory.mktemp("tools") / "run"
    learner = start_learner("data", address, run_dir, "--max-seconds", "300",
                            "--target-return", "1e9", "--metrics-every", "0.5")  # fmt: skip
    actors = start_actors(address, "--workers", "2")
    try:
        wait_for(lambda: any(r["env_steps"] > 0 for r in metrics(run_dir)), 60, "env steps")
        wait_for_contributors(address, 2)
        as_json = run_a3c("status", address, "--json")
        as_table = run_a3c("status", address)
    finally:
        learner.terminate()
        wait(learner, 30)
        wait(actors, 30)
        kill_all(learner, actors)
    return {"run_dir": run_dir, "json": as_json, "table": as_table}


def test_status_shows_the_live_state_of_a_running_learner(live_run):
    done = live_run["json"]
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert (state["mode"], state["env"]) == ("data", "CartPole-v1")
    assert state["env_steps"] > 0 and state["env_steps_per_second"] > 0
    assert state["updates_per_second"] > 0 and state["actors_connected"] == 2
    assert len(state["actors"]) == 2  # asking did not register the asker as an actor
    assert all(a["connected"] and a["env_steps"] > 0 for a in state["actors"])
    assert all(a["last_seen_seconds"] < 5 for a in state["actors"])
    table = live_run["table"]
    assert table.returncode == 0
    for word in ("mode", "data", "CartPole-v1", "env_steps_per_second", "actor_id"):
        assert word in table.stdout
    nobody = run_a3c("status", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert nobody.returncode == 1 and "no answer" in nobody.stderr
    assert "Traceback" not in nobody.stderr


def test_tensorboard_has_a_scalar_for_every_metric(live_run):
    run_dir = live_run["run_dir"]
    records = metrics(run_dir)
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = set().union(*(flatten(r) for r in records))
    assert expected and expected <= tags, expected - tags
    steps = [e.step for e in acc.Scalars("env_steps")]
    assert steps == [r["env_steps"] for r in records]  # one point per record, at its env steps


def test_plot_overlays_several_runs(live_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    lines = [{"env_steps": 1000 * i, "wall_seconds": i, "mean_return_100": 10.0 * i}
             for i in range(1, 6)]  # fmt: skip
    (other / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "curve.png"
    done = run_a3c("plot", live_run["run_dir"], other, "-o", out)
    assert done.returncode == 0, done.stderr
    assert "2 runs" in done.stdout
    assert imageio.imread(out).shape[1] > 800  # two panels side by side
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = run_a3c("plot", empty, "-o", tmp_path / "x.png")
    assert bad.returncode == 1 and "no metrics.jsonl" in bad.stderr


# The same recording path; GIF encoding of full-size frames is the slow part.
@pytest.mark.parametrize("suffix", [pytest.param(".gif", marks=pytest.mark.slow), ".mp4"])
def test_evaluate_records_a_video_of_the_policy(live_run, tmp_path, suffix):
    out = tmp_path / f"play{suffix}"
    episodes = "1"  # rendering and GIF encoding are slow
    done = run_a3c("evaluate", live_run["run_dir"], "--video", out, "--video-episodes", episodes)
    assert done.returncode == 0, done.stderr
    lengths = [int(line.split(", ")[1].split()[0]) for line in done.stdout.splitlines()
               if line.startswith("episode")]  # fmt: skip
    assert len(lengths) == int(episodes)
    frames = imageio.mimread(out, memtest=False)
    if suffix == ".mp4":
        assert len(frames) == sum(lengths)  # one frame per step of both episodes
    else:  # GIF writers merge identical consecutive frames into one longer frame
        assert 1 < len(frames) <= sum(lengths)
    assert frames[0].ndim == 3 and frames[0].shape[2] == 3
