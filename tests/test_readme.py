"""Every command the README shows names a real program, subcommand and option: each `a3c`
command's options are checked against the CLI itself, each benchmark script answers
`--help` from the repository root and knows the options the README gives it, so a renamed
module, option or path breaks this test instead of a user."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from a3c.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PROGRAMS = ("a3c", "python", "pytest", "docker", "kubectl", "tensorboard")


def _code_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", README, flags=re.S))
    return lines


def _commands() -> list[list[str]]:
    """Each documented command as tokens, chains split at && and leading VAR=value dropped."""
    found = []
    for line in _code_lines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        for part in line.split("&&"):
            try:
                tokens = shlex.split(part)
            except ValueError:
                continue
            while tokens and re.match(r"^[A-Z0-9_]+=", tokens[0]):
                tokens = tokens[1:]
            if tokens and tokens[0] in PROGRAMS and tokens not in found:
                found.append(tokens)
    return found


COMMANDS = _commands()
A3C = [c for c in COMMANDS if c[0] == "a3c" and len(c) > 1 and not c[1].startswith("-")]
SCRIPTS = [c for c in COMMANDS if c[0] == "python" and len(c) > 1 and c[1].endswith(".py")]


def _option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def test_the_readme_documents_commands():
    assert len(A3C) >= 10 and len(SCRIPTS) >= 4, (len(A3C), len(SCRIPTS))


@pytest.mark.parametrize("tokens", A3C, ids=lambda t: " ".join(t)[:60])
def test_each_a3c_command_names_a_real_subcommand_and_options(tokens):
    sub = cli.commands.get(tokens[1])
    assert sub is not None, f"no subcommand {tokens[1]!r}: {' '.join(tokens)}"
    known = _option_names(sub)
    for token in tokens[2:]:
        if token.startswith("-") and not re.match(r"^-?\d", token):
            name = token.split("=", 1)[0]
            assert name in known, f"{' '.join(tokens)}: {name} is not an option of a3c {tokens[1]}"
    choices = {o: p.type.choices for p in sub.params if isinstance(p.type, click.Choice)
               for o in p.opts}  # fmt: skip
    for flag, value in zip(tokens[2:], tokens[3:]):
        if flag in choices:
            assert value in choices[flag], f"{' '.join(tokens)}: {value} not in {choices[flag]}"


@pytest.mark.parametrize("tokens", SCRIPTS, ids=lambda t: " ".join(t)[:60])
def test_each_benchmark_script_runs_from_the_root_and_knows_its_options(tokens):
    done = subprocess.run(
        [sys.executable, tokens[1], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for token in tokens[2:]:
        if token.startswith("--"):
            assert token.split("=")[0] in done.stdout, f"{' '.join(tokens)}: {token}"


def test_each_a3c_subcommand_answers_help_as_a_program():
    for sub in sorted({c[1] for c in A3C}):
        done = subprocess.run(
            [sys.executable, "-m", "a3c", sub, "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and "Usage" in done.stdout, (sub, done.stderr)


def test_the_readme_figures_are_rendered_from_the_results_files():
    done = subprocess.run(
        [sys.executable, "benchmarks/render_readme.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
