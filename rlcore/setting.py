"""A setting declared once: its default, range, choices, help and group live on the dataclass
field, and both validation and the command line are derived from them.

Adding a setting is one field with `setting(...)` (and its test); the CLI option, its
`A3C_*` variable, its range check and its help text follow from it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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
    """Every declared type, range and choice of obj's settings (ValueError on the first
    miss): values from files and handshakes arrive as any JSON type."""
    hints = typing.get_type_hints(type(obj))
    for name, meta in settings_of(obj).items():
        value = getattr(obj, name)
        if not _of_type(value, hints.get(name, Any)):
            shown = name.replace("_", "-")
            raise ValueError(f"{shown} must be {_type_name(hints[name])}, not {value!r}")
        meta.check(name, value)


def _of_type(value: Any, hint: Any) -> bool:
    """Whether `value` is of the declared type; types other than these are not checked."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_of_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return isinstance(value, tuple) and all(_of_type(v, args[0]) for v in value)
    return True


def _type_name(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, str(hint).replace("typing.", ""))
