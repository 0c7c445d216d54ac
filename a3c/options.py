"""Click options generated from the settings dataclasses (rlcore.setting), grouped in help.

The name, default, range, choices, help and `A3C_*` variable of an option all come from its
field, so the command line cannot drift from what the learner validates and records.
"""

from __future__ import annotations

import json
import typing
from dataclasses import MISSING, fields

import click

from rlcore.setting import GROUPS, Setting, settings_of

TITLES = {"algorithm": "Algorithm", "wire": "Wire and link", "run": "Run control"}


def option(*names: str, group: str | None = None, **kwargs):
    """A click option whose environment variable is A3C_<LONG NAME>."""
    long = next(n for n in names if n.startswith("--")).split("/")[0]
    kwargs.setdefault("envvar", "A3C_" + long[2:].upper().replace("-", "_"))
    kwargs.setdefault("show_envvar", True)
    return click.option(*names, cls=GroupedOption, group=group, **kwargs)


class GroupedOption(click.Option):
    def __init__(self, *args, group: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group


class GroupedCommand(click.Command):
    """Help that lists options under Algorithm, Wire and link, Run control, then Other."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list] = {g: [] for g in (*GROUPS, None)}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections[getattr(param, "group", None)].append(record)
        for group, rows in sections.items():
            if rows:
                with formatter.section(TITLES.get(group, "Other options")):
                    formatter.write_dl(rows)


def _sizes(_ctx, _param, value):
    if isinstance(value, tuple):
        return value
    try:
        sizes = tuple(int(x) for x in str(value).split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected sizes like 64,64") from None
    if not sizes or min(sizes) <= 0:
        raise click.BadParameter(f"{value!r}: expected positive sizes like 64,64")
    return sizes


def _json_object(_ctx, _param, value):
    if not value:
        return {}
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{value!r} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter(f"{value!r}: expected a JSON object like '{{\"g\": 9.81}}'")
    return parsed


def _wrapper_names(_ctx, _param, value):
    if isinstance(value, tuple):
        return value
    from rlcore.wrappers import WRAPPERS  # only when given: it loads gymnasium

    names = tuple(w.strip() for w in (value or "").split(",") if w.strip())
    unknown = [w for w in names if w not in WRAPPERS]
    if unknown:
        raise click.BadParameter(f"unknown wrapper {unknown[0]!r}; known: {', '.join(WRAPPERS)}")
    return names


def _range(kind: type, meta: Setting) -> click.ParamType:
    if meta.lo is None and meta.hi is None:
        return click.INT if kind is int else click.FLOAT
    if kind is int:
        lo = None if meta.lo is None else int(meta.lo) + (1 if meta.lo_open else 0)
        hi = None if meta.hi is None else int(meta.hi)
        return click.IntRange(lo, hi)
    return click.FloatRange(meta.lo, meta.hi, min_open=meta.lo_open)


def _plain(annotation) -> type:
    """The type a field holds when set: `float | None` -> float."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, type(int | None)) and len(args) == 1:
        return args[0]
    return annotation


def _kwargs(kind, default, meta: Setting) -> dict:
    """Click keyword arguments for one field by what it holds."""
    if kind is bool:
        return {"default": default, "show_default": True}
    if meta.choices is not None:
        return {"type": click.Choice(meta.choices), "default": default, "show_default": True}
    if kind in (int, float):
        shown = default is not None
        return {"type": _range(kind, meta), "default": default, "show_default": shown}
    if typing.get_origin(kind) is tuple and typing.get_args(kind)[0] is int:
        shown = ",".join(map(str, default))
        return {"default": shown, "show_default": True, "callback": _sizes}
    if kind is dict:
        return {"default": None, "callback": _json_object}
    if typing.get_origin(kind) is tuple:
        return {"default": None, "callback": _wrapper_names}
    return {"default": default, "show_default": default is not None}


def options_from(cls, names: tuple[str, ...] | None = None, **overrides) -> list:
    """Click options for cls's settings that have a flag (or only `names`, flag or not);
    overrides: per-field keyword arguments, e.g. bind={"default": ...}."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    metas = settings_of(cls)
    chosen = names if names is not None else [n for n, m in metas.items() if m.flag is not None]
    out = []
    for name in chosen:
        meta, field = metas[name], by_name[name]
        default = field.default
        if field.default_factory is not MISSING:
            default = field.default_factory()
        kind = _plain(hints[name])
        flag = meta.flag or "--" + name.replace("_", "-")
        kwargs = {"help": meta.help, **_kwargs(kind, default, meta)}
        if meta.required:
            kwargs.pop("default", None)  # click would take an explicit None as given
            kwargs.update(required=True, show_default=False)
        kwargs.update(overrides.get(name, {}))
        decls = (f"{flag}/--no-{flag[2:]}",) if kind is bool else (flag,)
        out.append(option(*decls, name, group=meta.group, **kwargs))
    return out


def apply(options: list):
    """Decorate a command function with options, in the order listed."""

    def decorate(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate
