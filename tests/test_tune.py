"""benchmarks/tune.py's arithmetic: a family ranks candidates by their worst task, a run
that misses counts by how far it fell short, and a candidate's flags become a preset
entry with the hyperparameters' own types."""

import json

import pytest

from benchmarks import render, tune
from benchmarks.harness import results
from benchmarks.tasks import Task
from rlcore.presets import load_file

A = Task("A-v0", 1000, 2_000_000, "")
B = Task("B-v0", -100, 500_000, "")


def runs(*cells):
    """(solved, env steps, best return) per seed, the same in both modes."""
    rows = [{"solved": s, "env_steps": n, "best_return": b} for s, n, b in cells]
    return {"runs": {"gradient": rows, "data": rows}}


def test_a_solved_task_counts_its_share_of_the_budget_and_a_miss_its_shortfall():
    assert tune.shortfall(runs((True, 500_000, 1000), (True, 1_000_000, 1000)), A) == 0.375
    # missed on every seed: 1 plus how far the best return fell short of the target
    assert tune.shortfall(runs((False, 2_000_000, 750)), A) == pytest.approx(1.25)
    assert tune.shortfall(runs((False, 500_000, -150)), B) == pytest.approx(1.5)
    assert tune.shortfall(runs((False, 500_000, None)), B) == 2.0


def test_the_worse_mode_decides():
    entry = runs((True, 200_000, 1000))
    entry["runs"]["data"] = [{"solved": True, "env_steps": 1_800_000, "best_return": 1000}]
    assert tune.shortfall(entry, A) == pytest.approx(0.9)


def flagged(flags, *cells):
    return {"flags": flags, **runs(*cells)}


STEADY, SPIKY = "--lr 2e-3", "--hidden 256,256"


def test_a_family_ranks_by_its_worst_task(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS", tmp_path)
    tables = {
        # steady: fair on both tasks; spiky: best on A, misses B
        "A-v0": {"steady": flagged(STEADY, (True, 800_000, 1000)),
                 "spiky": flagged(SPIKY, (True, 100_000, 1000))},
        "B-v0": {"steady": flagged(STEADY, (True, 250_000, -90)),
                 "spiky": flagged(SPIKY, (False, 500_000, -120))},
    }  # fmt: skip
    candidates = {"steady": STEADY, "spiky": SPIKY}
    name, ranking = tune.rank_family("fam", [A, B], tables, candidates)
    assert ranking == ["steady", "spiky"]
    written = json.loads((tmp_path / name).read_text())
    assert written["candidates"]["spiky"]["worst"] == pytest.approx(1.2)
    assert written["candidates"]["steady"]["per_task"] == {"A-v0": 0.4, "B-v0": 0.5}
    # rendered for the docs: each task's outcome per mode, a miss with how close it came
    text = render.tune_family(written, name, chosen="steady")
    steady, spiky = (line for line in text.splitlines() if "steady" in line or "spiky" in line)
    assert "**steady** (the preset)" in steady and "g 1/1, 800k; d 1/1, 800k" in steady
    assert "g 0/1, 500k, best -120" in spiky and spiky.endswith("| 1.20 |")


def test_a_family_finds_a_candidate_by_its_flags_and_drops_changed_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS", tmp_path)
    tables = {
        # A's own set ran steady's flags under another name; spiky's flags changed since
        "A-v0": {"a-own-name": flagged(STEADY, (True, 800_000, 1000)),
                 "spiky": flagged("--hidden 128,128", (True, 100_000, 1000))},
        "B-v0": {"steady": flagged(STEADY, (True, 250_000, -90)),
                 "spiky": flagged(SPIKY, (True, 100_000, -90))},
    }  # fmt: skip
    _, ranking = tune.rank_family("fam", [A, B], tables, {"steady": STEADY, "spiky": SPIKY})
    assert ranking == ["steady"]


def test_rank_only_ranks_the_recorded_files_and_runs_nothing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.setattr(results, "RESULTS", tmp_path)
    monkeypatch.setattr(tune, "run_task", lambda *a, **k: pytest.fail("ran a task"))
    monkeypatch.setitem(tune.CANDIDATES, "fam", {"steady": STEADY, "spiky": SPIKY})
    monkeypatch.setattr(tune, "TASKS", {"A-v0": A, "B-v0": B})
    for task, table in (("A-v0", {"steady": flagged(STEADY, (True, 800_000, 1000))}),
                        ("B-v0", {"steady": flagged(STEADY, (True, 250_000, -90))})):  # fmt: skip
        (tmp_path / f"tune_{task}.json").write_text(json.dumps({"candidates": table}))
    args = ["--task", "A-v0", "--task", "B-v0", "--candidates", "fam", "--rank-only"]
    out = CliRunner().invoke(tune.main, args)
    assert out.exit_code == 0, out.output
    written = json.loads((tmp_path / "tune_fam.json").read_text())
    assert written["ranking"] == ["steady"]
    one = CliRunner().invoke(tune.main, ["--task", "A-v0", "--candidates", "fam", "--rank-only"])
    assert one.exit_code != 0 and "two --task" in one.output


def test_flags_become_a_typed_preset_entry_that_loads(tmp_path):
    flags = "--lr 2e-3 --rollout-len 10 --hidden 128,128 --normalize-obs --log-std-init -1"
    entry = tune.preset_entry("mine", ["Mine-v0"], flags, "tune_Mine-v0.json, candidate x")
    assert entry["settings"] == {"lr": 0.002, "rollout_len": 10, "hidden": [128, 128],
                                 "normalize_obs": True, "log_std_init": -1.0}  # fmt: skip
    assert isinstance(entry["settings"]["rollout_len"], int)
    path = tmp_path / "p.json"
    tune.add_preset(path, entry)
    tune.add_preset(path, {**entry, "settings": {"lr": 0.001}})  # same name: replaced
    [loaded] = load_file(path)
    assert loaded.name == "mine" and loaded.settings == {"lr": 0.001}


def test_imported_tune_runs_replace_every_service_row_of_the_task(tmp_path, monkeypatch):
    """A preset's tuning runs become the task's service rows; rows of the preset before it
    (say seeds 3..5) must not stay mixed in; other trainers' rows stay."""
    from click.testing import CliRunner

    from benchmarks import learning

    monkeypatch.setattr(results, "RESULTS", tmp_path)
    curve = [[50_000, 1.0, 100.0], [90_000, 2.0, 480.0]]
    run = {"solved": True, "env_steps": 90_000, "wall_seconds": 2.0, "best_return": 480.0,
           "final_return": 480.0, "curve": curve}  # fmt: skip
    flags = "--lr 3e-3 --batch-lr-scale 1"  # the cartpole preset's settings
    tuned = {
        "flags": flags,
        "machine": None,
        "runs": {m: [{"seed": s, **run} for s in (0, 1)] for m in ("gradient", "data")},
    }
    (tmp_path / "tune_CartPole-v1.json").write_text(json.dumps({"candidates": {"x": tuned}}))
    old = {**run, "best_return": 9.0}
    store = {"runs": {"CartPole-v1": {**{f"service {m}|{s}": old for m in ("gradient", "data")
                                         for s in range(6)},
                                      "SB3 A2C (zoo)|0": run}}}  # fmt: skip
    (tmp_path / "learning.json").write_text(json.dumps(store))
    out = CliRunner().invoke(learning.main, ["--import-tune", "CartPole-v1:x"])
    assert out.exit_code == 0, out.output
    rows = json.loads((tmp_path / "learning.json").read_text())["runs"]["CartPole-v1"]
    assert sorted(rows) == ["SB3 A2C (zoo)|0", "service data|0", "service data|1",
                            "service gradient|0", "service gradient|1"]  # fmt: skip
    assert all(r["best_return"] == 480.0 for r in rows.values())


def test_a_candidate_built_on_a_preset_sets_an_option_once():
    base = "--normalize-obs --log-std-init -1 --rollout-len 5 --bounded-mean"
    assert tune.with_flags(base, "--log-std-init 0") == (
        "--normalize-obs --rollout-len 5 --bounded-mean --log-std-init 0"
    )
    # a switch (no value) and a negative value are told apart from the next option
    assert tune.with_flags(base, "--bounded-mean --lr 2e-3") == (
        "--normalize-obs --log-std-init -1 --rollout-len 5 --bounded-mean --lr 2e-3"
    )
