"""A setting declared once: its default, range, choices, help and group live on the dataclass
field, and both validation and the command line are derived from them.

Adding a setting is one field with `setting(...)` (and its test); the CLI option, its
`A3C_*` variable, its range check and its help text follow from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

GROUPS = ("algorithm", "wire", "run")
"""How help lists the options: the algorithm's settings, what travels on the wire and how,
and run control (what runs, for how long, where it writes)."""


@dataclass(frozen=True)
class Setting:
    help: str
    group: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | None = None
    flag: str | None = ""
    """The option's name; "" derives it from the field (lr_decay -> --lr-decay), None means
    no option (presets and files set it)."""
    required: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise ValueError naming the setting when value is out of its range or choices."""
        if value is None or isinstance(value, bool):
            return
        shown = name.replace("_", "-")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{shown} must be one of {', '.join(self.choices)}, not {value!r}")
        if not isinstance(value, int | float):
            return
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            raise ValueError(f"{shown} must be {'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None and value > self.hi:
            raise ValueError(f"{shown} must be <= {self.hi:g}")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    group: str = "algorithm",
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] | None = None,
    flag: str | None = "",
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field that carries its Setting (see the module docstring)."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}")
    meta = Setting(
        help,
        group,
        lo,
        hi,
        lo_open,
        choices,
        flag,
        required=default is factory is dataclasses.MISSING,
    )
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"setting": meta})
    return dataclasses.field(default=default, metadata={"setting": meta})


def settings_of(cls_or_obj: Any) -> dict[str, Setting]:
    """Field name -> Setting, in declaration order, for the fields that declare one."""
    return {
        f.name: f.metadata["setting"]
        for f in dataclasses.fields(cls_or_obj)
        if "setting" in f.metadata
    }


def check_settings(obj: Any) -> None:
    """Every declared range and choice of obj's settings (ValueError on the first miss)."""
    for name, meta in settings_of(obj).items():
        meta.check(name, getattr(obj, name))
