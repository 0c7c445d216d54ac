"""What orchestrators read: one learner per run directory, exit codes that tell a finished
run (0) from an interrupted one (128 + signal, to be resumed), a resume that refuses other
settings, and a status probe that stays light."""

import signal
import subprocess
import sys

import pytest
import torch

from tests.helpers import (
    ENV,
    INTERRUPTED,
    a3c,
    free_port,
    kill_all,
    metrics,
    run_a3c,
    start_actors,
    start_learner,
    stop,
    summary,
    wait,
    wait_for,
    wait_for_env_steps,
)
from tests.test_service import one_line_error


def test_one_learner_per_run_directory_and_sigterm_exits_143_then_a_budget_exits_0(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    first = start_learner("gradient", address, run_dir, "--target-return", "1e9",
                          "--metrics-every", "0.5", log=tmp_path / "first.log")  # fmt: skip
    actor = start_actors(address)
    try:
        wait_for_env_steps(run_dir, 1, timeout=120)
        for extra in ((), ("--resume",)):
            # --max-seconds: were it let in, it would end on its own rather than hang here
            other = f"tcp://127.0.0.1:{free_port()}"
            second = run_a3c("learner", "--mode", "gradient", "--run-dir", run_dir, "--bind",
                             other, "--max-seconds", "1", *extra)  # fmt: skip
            one_line_error(second, str(run_dir), f"pid {first.pid}")
        assert stop(first) == INTERRUPTED, (tmp_path / "first.log").read_text()[-2000:]
        assert wait(actor, 30) == 0
    finally:
        kill_all(first, actor)
    interrupted = summary(run_dir)
    assert interrupted["stop_reason"] == "interrupted (SIGTERM)"
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert saved["env_steps"] == interrupted["env_steps"] > 0

    # The lock left with the process; a resumed run that spends its budget has finished.
    budget = interrupted["env_steps"] + 2000
    resumed = start_learner("gradient", address, run_dir, "--resume", "--max-env-steps",
                            budget, "--target-return", "1e9")  # fmt: skip
    actor = start_actors(address)
    try:
        assert wait(resumed, 180) == 0 and wait(actor, 30) == 0
    finally:
        kill_all(resumed, actor)
    assert summary(run_dir)["stop_reason"] == "max_env_steps"


def test_train_interrupted_with_sigint_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    train = a3c("train", "--mode", "data", "--actors", "1", "--run-dir", run_dir,
                "--target-return", "1e9", "--metrics-every", "0.5")  # fmt: skip
    try:
        wait_for(lambda: any(r["env_steps"] > 0 for r in metrics(run_dir)), 120, "training")
        train.send_signal(signal.SIGINT)
        assert wait(train, 60) == 130
    finally:
        kill_all(train)
    assert summary(run_dir)["stop_reason"] == "interrupted (SIGINT)"


@pytest.mark.slow  # the check itself: tests/test_checkpoint.py, in the default run
def test_resume_with_other_reward_normalization_is_a_one_line_error(tmp_path):
    common = ("learner", "--mode", "data", "--run-dir", tmp_path / "run", "--preset", "none")
    first = run_a3c(*common, "--bind", f"tcp://127.0.0.1:{free_port()}",
                    "--normalize-reward", "--max-seconds", "0.5")  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = run_a3c(*common, "--bind", f"tcp://127.0.0.1:{free_port()}", "--resume",
                    "--max-seconds", "0.5")  # fmt: skip
    one_line_error(again, "normalize_reward", "--normalize-reward")


PROBE = """
import sys
from a3c.cli import main
try:
    main(["status", sys.argv[1], "--timeout", "0.2"])
except SystemExit as exc:
    print("exit", exc.code)
assert "torch" not in sys.modules, "a3c status imported torch"
"""


def test_the_status_probe_never_imports_torch():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    assert "exit 1" in done.stdout and "no answer" in done.stderr  # it did run the command
