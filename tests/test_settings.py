"""One source per setting: the dataclass field declares the option, its range and its help."""

from __future__ import annotations

import dataclasses

import click
import pytest
from click.testing import CliRunner

from a3c.cli import main
from a3c.options import GroupedCommand, apply, options_from
from learner.config import LearnerConfig
from rlcore.hyperparams import Hyperparams
from rlcore.presets import Preset, merge
from rlcore.setting import setting, settings_of


def _params(command: str) -> dict[str, click.Parameter]:
    return {p.name: p for p in main.get_command(None, command).params}


@pytest.mark.parametrize("cls", [Hyperparams, LearnerConfig])
def test_every_flagged_setting_is_an_option_with_its_default_and_variable(cls):
    params = {**_params("train"), **_params("learner")}
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    for name, meta in settings_of(cls).items():
        if meta.flag is None:
            assert name not in params or name in (
                "bind",
                "keys_dir",
                "authorized_dir",
                "max_message_bytes",
            ), name
            continue
        param = params[name]
        assert param.envvar == "A3C_" + param.opts[0][2:].upper().replace("-", "_")
        assert meta.help in param.help
        default = defaults[name].default
        if default is not dataclasses.MISSING and name not in ("hidden", "wrappers"):
            assert param.default == default, name


@pytest.mark.parametrize(
    "flag, value, field",
    [
        ("--lr", "0", "lr"),
        ("--gamma", "1.5", "gamma"),
        ("--max-staleness", "0", "max_staleness"),
        ("--wire-compress", "gzip", "wire_compress"),
        ("--metrics-every", "0.01", "metrics_every"),
    ],
)
def test_cli_and_validation_refuse_the_same_values(flag, value, field):
    result = CliRunner().invoke(main, ["train", "--mode", "data", flag, value])
    assert result.exit_code == 2 and flag in result.output
    hp_fields = {f.name for f in dataclasses.fields(Hyperparams)}
    parsed = float(value) if field != "wire_compress" else value
    with pytest.raises(ValueError, match=flag[2:]):
        if field in hp_fields:
            Hyperparams(**{field: parsed}).validate()
        else:
            LearnerConfig(mode="data", run_dir="x", **{field: parsed}).validate()


def test_a_new_setting_is_one_field():
    @dataclasses.dataclass
    class Toy:
        window: int = setting(8, help="Frames per window.", lo=1, hi=64, group="wire")
        sharp: bool = setting(False, help="Sharpen.", group="run")
        hidden_knob: float = setting(1.0, help="Presets only.", flag=None)

    seen = {}

    @click.command(cls=GroupedCommand)
    @apply(options_from(Toy))
    def cmd(**kw):
        seen.update(kw)

    runner = CliRunner()
    assert runner.invoke(cmd, ["--window", "16", "--sharp"]).exit_code == 0
    assert seen == {"window": 16, "sharp": True}
    assert runner.invoke(cmd, ["--window", "65"]).exit_code == 2
    assert runner.invoke(cmd, [], env={"A3C_WINDOW": "3"}).exit_code == 0 and seen["window"] == 3
    assert runner.invoke(cmd, ["--hidden-knob", "2"]).exit_code == 2
    help_text = runner.invoke(cmd, ["--help"]).output
    assert help_text.index("Wire and link:") < help_text.index("--window")
    assert help_text.index("Run control:") < help_text.index("--sharp")


def test_train_help_lists_options_by_group():
    out = CliRunner().invoke(main, ["train", "--help"]).output
    sections = [out.index(t) for t in ("Algorithm:", "Wire and link:", "Run control:")]
    assert sections == sorted(sections)
    assert (
        sections[0]
        < out.index("  --lr ")
        < sections[1]
        < out.index("  --wire-dtype ")
        < sections[2]
    )
    assert sections[2] < out.index("  --max-env-steps ")


PRESET = Preset("p", {"lr": 0.01, "hidden": [32, 32], "rho_bar": 2.0}, chosen_by="a run")


def test_merge_applies_the_preset_where_nothing_was_given():
    values, record = merge(PRESET, {"lr": 0.001, "hidden": (64, 64)}, given=set())
    assert values == {"lr": 0.01, "hidden": (32, 32), "rho_bar": 2.0}
    assert record == {
        "name": "p",
        "chosen_by": "a run",
        "applied": {"lr": 0.01, "hidden": [32, 32], "rho_bar": 2.0},
        "overridden": [],
    }


def test_merge_keeps_what_the_user_gave():
    values, record = merge(PRESET, {"lr": 0.5, "hidden": (64, 64)}, given={"lr"})
    assert values["lr"] == 0.5 and values["hidden"] == (32, 32)
    assert record["overridden"] == ["lr"] and "lr" not in record["applied"]


def test_merge_without_a_preset_changes_nothing():
    assert merge(None, {"lr": 0.5}, given=set()) == ({"lr": 0.5}, None)
