"""Every command the README and the docs show is one a user can type: each `a3c` command in
a fenced code block is parsed by the CLI itself (subcommand, required options, choices,
types), each `python -m benchmarks.NAME` answers `--help` and knows the options shown, the
README's example env really trains, and the README stays a short front page. A renamed
option, a dropped choice or a moved module breaks this test instead of a user."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.core import ParameterSource

from a3c.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
SHELLS = ("", "bash", "sh", "shell", "console")
OPERATORS = {"&&", "||", "|", ";", "&", "(", ")"}
# A rendered passage records how past results were made; it is not an instruction.
RENDERED = re.compile(r"^<!-- results:([\w.-]+) -->\n.*?^<!-- /results:\1 -->$", re.S | re.M)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def fenced(text: str) -> list[tuple[str, str]]:
    return FENCE.findall(RENDERED.sub("", text))


def _shell_lines(block: str) -> list[str]:
    lines = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.strip()
        lines.append(line[2:] if line.startswith("$ ") else line)
    return lines


def _simple_commands(line: str) -> list[list[str]]:
    """A shell line as its simple commands: split at &&, |, ;, & and parentheses."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        tokens = list(lex)
    except ValueError:  # an unclosed quote: not a command anyone could run either
        return [[line]]
    out, current = [], []
    for token in tokens:
        if token in OPERATORS:
            out.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in [*out, current] if c]


def commands(text: str) -> list[tuple[dict, list[str]]]:
    """Each command in the fenced shell blocks of `text`: (leading VAR=value, words)."""
    found = []
    for lang, block in fenced(text):
        if lang not in SHELLS:
            continue
        for line in _shell_lines(block):
            for words in _simple_commands(line):
                env = {}
                while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                    key, value = words.pop(0).split("=", 1)
                    env[key] = value
                if words:
                    found.append((env, words))
    return found


def a3c_args(words: list[str]) -> list[str] | None:
    """The arguments after `a3c` (or `python -m a3c`), or None for another program."""
    if words[0] == "a3c":
        return words[1:]
    if words[0] in ("python", "python3") and words[1:3] == ["-m", "a3c"]:
        return words[3:]
    return None


def benchmark_module(words: list[str]) -> str | None:
    python = words[0] in ("python", "python3") and len(words) > 2 and words[1] == "-m"
    return words[2] if python and words[2].startswith("benchmarks.") else None


def parse(args: list[str], env: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Parse `a3c ARGS` as the CLI would, up to (not into) running it; raise click's error."""
    for key in [k for k in os.environ if k.startswith("A3C_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # paths that must exist are made here, not in the checkout
    group = cli.make_context("a3c", list(args))
    name, cmd, rest = cli.resolve_command(group, list(args))
    # A path argument that must exist (a run directory to evaluate or plot) is made first:
    # the command is what is checked, not the reader's disk.
    raw, _, _ = cmd.make_parser(click.Context(cmd, parent=group)).parse_args(list(rest))
    for param in cmd.params:
        if isinstance(param.type, click.Path) and param.type.exists:
            value = raw.get(param.name)
            for path in value if isinstance(value, (tuple, list)) else [value]:
                if path:
                    (tmp_path / path).mkdir(parents=True, exist_ok=True)
    ctx = cmd.make_context(name, list(rest), parent=group)
    # An option declared required but given an explicit default is not enforced by click;
    # the reader must still give it (on the command line or as its variable).
    for param in cmd.params:
        if param.required and ctx.get_parameter_source(param.name) in (
            ParameterSource.DEFAULT,
            None,
        ):
            raise click.MissingParameter(ctx=ctx, param=param)


DOCUMENTED = [(page, env, words) for page in PAGES for env, words in commands(page.read_text())]
A3C = [(p, env, a3c_args(w)) for p, env, w in DOCUMENTED if a3c_args(w) is not None]


def _benchmark_options() -> dict[str, set[str]]:
    """Each benchmark module shown, in a code block or in prose, with the options shown."""
    found: dict[str, set[str]] = {}
    for page in PAGES:
        text = page.read_text()
        shown = [words for _, words in commands(text)]
        prose = FENCE.sub("", RENDERED.sub("", text))
        spans = re.findall(r"`(python -m benchmarks[^`\n]+)`", prose)
        shown += [shlex.split(span) for span in spans]
        for words in shown:
            module = benchmark_module(words)
            if module:
                options = {w.split("=")[0] for w in words[3:] if w.startswith("--")}
                found.setdefault(module, set()).update(options)
    return found


BENCHMARKS = sorted(_benchmark_options().items())


def _id(item) -> str:
    page, _env, args = item
    return f"{page.name}: {' '.join(args)}"[:80]


def test_the_pages_document_commands():
    subcommands = {args[0] for _, _, args in A3C if args}
    assert {"train", "learner", "actor", "keygen", "status", "evaluate", "plot"} <= subcommands
    assert len(BENCHMARKS) >= 8, BENCHMARKS


@pytest.mark.parametrize("item", A3C, ids=[_id(x) for x in A3C])
def test_each_a3c_command_parses_with_the_cli(item, monkeypatch, tmp_path):
    page, env, args = item
    try:
        parse(args, env, monkeypatch, tmp_path)
    except click.ClickException as exc:
        pytest.fail(f"{page.relative_to(ROOT)}: a3c {shlex.join(args)}: {exc.format_message()}")


@pytest.mark.parametrize(
    "bad",
    [
        "a3c train --mode sideways --env CartPole-v1",
        "a3c train --env CartPole-v1 --actors 2",
        "a3c learner --mode data --max-env-steps lots",
        "a3c actor --learner tcp://127.0.0.1:5555 --wrkers 2",
        "a3c trian --mode data",
        "python -m a3c status",
    ],
)
def test_a_planted_bad_command_is_refused(bad, monkeypatch, tmp_path):
    continued = bad.replace(" --", " \\\n    --", 1)  # as a reader would wrap it
    page = f"Run it:\n\n```bash\n$ {continued}\n```\n"
    [(env, words)] = commands(page)
    assert " ".join(words) == bad
    with pytest.raises(click.ClickException):
        parse(a3c_args(words), env, monkeypatch, tmp_path)


def test_commands_are_found_in_continued_chained_and_prompted_lines():
    page = (
        "```bash\n$ A3C_MODE=data a3c train \\\n  --env CartPole-v1  # a comment\n"
        "mkdir -p runs && python -m a3c status tcp://h:5555 | tee out\n```\n"
        "```python\na3c = 'not a command'\n```\n"
        "<!-- results:x -->\n```bash\na3c train --mode old-way\n```\n<!-- /results:x -->\n"
    )
    assert commands(page) == [
        ({"A3C_MODE": "data"}, ["a3c", "train", "--env", "CartPole-v1"]),
        ({}, ["mkdir", "-p", "runs"]),
        ({}, ["python", "-m", "a3c", "status", "tcp://h:5555"]),
        ({}, ["tee", "out"]),
    ]


@pytest.mark.parametrize("module,options", BENCHMARKS, ids=[m for m, _ in BENCHMARKS])
def test_each_benchmark_command_answers_help_and_knows_its_options(module, options):
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    missing = sorted(o for o in options if o not in done.stdout)
    assert not missing, f"python -m {module}: {missing} not in its --help"


def _inline_a3c() -> list[tuple[Path, list[str]]]:
    """`a3c ...` quoted in prose: too short to parse whole, but its options must exist."""
    found = []
    for page in PAGES:
        prose = FENCE.sub("", RENDERED.sub("", page.read_text()))
        for span in re.findall(r"`(a3c [^`\n]+)`", prose):
            words = shlex.split(span, comments=True)
            if len(words) > 1 and not words[1].startswith("-"):
                found.append((page, words))
    return found


@pytest.mark.parametrize("page,words", _inline_a3c(), ids=lambda x: str(x)[:60])
def test_each_a3c_command_in_prose_names_a_real_subcommand_and_options(page, words):
    sub = cli.commands.get(words[1])
    assert sub is not None, f"{page.name}: no subcommand {words[1]!r}: {' '.join(words)}"
    known = {"--help", "-h"}
    for param in sub.params:
        known.update(param.opts, param.secondary_opts)
    for word in words[2:]:
        if word.startswith("-") and not re.match(r"^-?\d", word):
            assert word.split("=", 1)[0] in known, f"{page.name}: {' '.join(words)}: {word}"


def test_each_a3c_subcommand_answers_help_as_a_program():
    for sub in sorted({args[0] for _, _, args in A3C if args}):
        done = subprocess.run(
            [sys.executable, "-m", "a3c", sub, "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and "Usage" in done.stdout, (sub, done.stderr)


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move depth to docs/"


def test_the_readme_example_env_trains(tmp_path):
    """The env module shown in the README, saved as the README says, trains by its
    `module:Id` in a real learner and actor."""
    text = README.read_text()
    [code] = [body for lang, body in fenced(text) if lang == "python" and "gym.register" in body]
    [env_id] = {
        words[words.index("--env") + 1]
        for env, words in commands(text)
        if a3c_args(words) and "--env" in words and ":" in words[words.index("--env") + 1]
    }
    module = env_id.split(":")[0]
    (tmp_path / f"{module}.py").write_text(code)
    run_dir = tmp_path / "run"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "a3c", "train", "--mode", "data", "--env", env_id,
         "--actors", "1", "--max-env-steps", "2000", "--run-dir", str(run_dir),
         "--no-tensorboard"],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env"] == env_id and summary["stop_reason"] == "max_env_steps", summary
    assert summary["env_steps"] >= 2000 and summary["updates"] > 0 and summary["episodes"] > 0
    assert f"after {summary['env_steps']:,} env steps" in done.stdout


def test_the_tuning_loop_on_an_env_of_your_own(tmp_path):
    """docs/presets.md's loop, with the README's corridor env and a small budget: tune.py
    writes the best candidate to a presets file, and a3c train applies it from there."""
    text = README.read_text()
    [code] = [body for lang, body in fenced(text) if lang == "python" and "gym.register" in body]
    (tmp_path / "corridor_env.py").write_text(code)
    page = (ROOT / "docs" / "presets.md").read_text()
    [tune, train] = [
        words for env, words in commands(page)
        if "corridor_env:Corridor-v0" in words and "--preset-file" in words
        or "benchmarks.tune" in words and "--write-preset" in words
    ]  # fmt: skip
    assert tune[tune.index("--write-preset") + 1] == train[train.index("--preset-file") + 1]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
               "A3C_RESULTS_DIR": str(tmp_path / "results")}  # fmt: skip
    presets = tmp_path / "mine.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.tune", "--task", "corridor_env:Corridor-v0",
         "--target", "0.5", "--budget", "6000", "--candidates", "generic", "--only",
         "defaults,T5", "--seeds", "1", "--modes", "data", "--write-preset", str(presets)],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    tuned = json.loads((tmp_path / "results" / "tune_corridor_env-Corridor-v0.json").read_text())
    assert set(tuned["candidates"]) == {"defaults", "T5"} and tuned["meta"]["commit"]
    [entry] = json.loads(presets.read_text())["presets"]
    best = tuned["ranking"][0]
    assert entry["ids"] == ["corridor_env:Corridor-v0"]
    assert entry["chosen_by"] == f"tune_corridor_env-Corridor-v0.json, candidate {best}"
    assert entry["settings"] == ({"rollout_len": 5} if best == "T5" else {})
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "a3c", "train", "--mode", "data", "--env",
         "corridor_env:Corridor-v0", "--preset-file", str(presets), "--actors", "1",
         "--max-env-steps", "1000", "--run-dir", str(run_dir), "--no-tensorboard"],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"]["name"] == entry["name"] and config["preset"]["file"] == str(presets)
    assert config["preset"]["applied"] == entry["settings"]
