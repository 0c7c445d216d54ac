"""The docs site builds without a warning, and every figure in README.md and docs/ is what
its results file says: `python -m benchmarks.render --check` passes on the checkout and
catches a figure changed by hand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import render

ROOT = Path(__file__).resolve().parents[1]


def _check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.render", "--check", "--root", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_site_builds_strictly(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "WARNING" not in output, output[-4000:]
    assert (tmp_path / "site" / "performance" / "index.html").exists()


def test_every_figure_matches_its_results_file():
    done = _check(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def copy(tmp_path) -> Path:
    """The pages and the results they are rendered from, away from the checkout."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copytree(ROOT / "benchmarks" / "results", root / "benchmarks" / "results")
    (root / "rlcore").mkdir()
    shutil.copy(ROOT / "rlcore" / "presets.json", root / "rlcore" / "presets.json")
    shutil.copy(ROOT / "README.md", root / "README.md")
    return root


def test_a_figure_changed_by_hand_is_caught(copy):
    assert _check(copy).returncode == 0
    page = copy / "docs" / "performance.md"
    text = page.read_text()
    body = re.search(r"<!-- results:learning -->\n(.*?)<!-- /results:learning -->", text, re.S)
    figure = re.search(r"\| (\d+)/(\d+), (\d+)k", body.group(1))
    changed = figure.group(0).replace(f"{figure.group(3)}k", f"{int(figure.group(3)) + 1}k")
    page.write_text(text.replace(figure.group(0), changed, 1))
    done = _check(copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "docs/performance.md" in done.stdout and "README.md" not in done.stdout


def test_a_changed_results_file_makes_the_readme_stale(copy):
    results = copy / "benchmarks" / "results" / "learning.json"
    data = json.loads(results.read_text())
    first = next(iter(data["summary"].values()))  # a row the README's headline shows
    first["steps_to_target"] = 1
    results.write_text(json.dumps(data))
    done = _check(copy)
    assert done.returncode == 1 and "README.md" in done.stdout, done.stdout + done.stderr


def test_a_changed_image_is_caught(copy):
    image = copy / "docs" / "img" / render.IMAGES[0]
    image.write_bytes(image.read_bytes() + b"\0")
    done = _check(copy)
    assert done.returncode == 1 and f"docs/img/{render.IMAGES[0]}" in done.stdout


def test_a_marker_without_a_renderer_or_an_end_is_refused(copy):
    page = copy / "docs" / "index.md"
    original = page.read_text()
    page.write_text(
        original + "\n<!-- results:no-such-table -->\n<!-- /results:no-such-table -->\n"
    )
    assert _check(copy).returncode not in (0, 1)
    page.write_text(original + "\n<!-- results:learning -->\nno end\n")
    done = _check(copy)
    assert done.returncode not in (0, 1) and "closing" in done.stdout + done.stderr


def test_provenance_marks_older_and_unknown_results():
    assert "Today's defaults" in render.provenance(
        {
            "meta": {
                "commit": "0123456789",
                "date": "2026-01-02T03:04:05+00:00",
                "defaults": "current",
            }
        },
        "x.json",
    )
    older = render.provenance({"meta": {"commit": "0123456789", "defaults": "older"}}, "x.json")
    assert "`0123456`" in older and "⚠ Older defaults" in older and "date not recorded" in older
    unknown = render.provenance({"rows": []}, "x.json")
    assert "⚠ Older defaults" in unknown and "commit not recorded" in unknown
