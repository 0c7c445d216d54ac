"""The floors of the house: imports only run downwards.

protocol (bytes, messages, sockets) and rlcore (networks, losses, envs) are the ground floor
and know nothing of each other; actor and learner compose them and never import each other;
the relay speaks the protocol both ways and knows no RL;
a3c (the command line) is the top. Benchmarks and tests are outside the product.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "rlcore", "actor", "learner", "relay", "a3c")
ALLOWED = {
    "protocol": {"protocol"},
    "rlcore": {"rlcore"},
    "actor": {"actor", "protocol", "rlcore"},
    "learner": {"learner", "protocol", "rlcore"},
    "relay": {"relay", "protocol"},
    "a3c": set(PACKAGES),
}
OUTSIDE = {"benchmarks", "tests"}
SOCKETS = {"zmq"}


def imported_roots(path: Path) -> set[str]:
    """Top-level names imported anywhere in a module (lazy imports inside functions too)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def violations(package: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / package).rglob("*.py")):
        roots = imported_roots(path)
        wrong = (roots & (set(PACKAGES) | OUTSIDE)) - ALLOWED[package]
        if package == "rlcore":
            wrong |= roots & SOCKETS
        found += [f"{path.relative_to(root)} imports {name}" for name in sorted(wrong)]
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_downwards(package):
    assert violations(package) == []


def test_a_planted_upward_import_is_found(tmp_path):
    (tmp_path / "actor").mkdir()
    (tmp_path / "actor" / "sneaky.py").write_text("def f():\n    from a3c.logs import x\n")
    (tmp_path / "rlcore").mkdir()
    (tmp_path / "rlcore" / "net.py").write_text("import zmq\nfrom protocol import codec\n")
    assert violations("actor", tmp_path) == ["actor/sneaky.py imports a3c"]
    assert violations("rlcore", tmp_path) == [
        "rlcore/net.py imports protocol",
        "rlcore/net.py imports zmq",
    ]
