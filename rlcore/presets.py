"""Per-env settings applied when a user names an env (rl-zoo's habit), from presets.json.

A preset matches an env by exact id first, then by id pattern (`ALE/*`), then by the
module its gymnasium entry point lives in (a family: every MuJoCo env, every Box2D env).
Its settings are hyperparameter values; whatever the user sets explicitly wins.

A user's own presets file (--preset-file, the same format; benchmarks/tune.py writes one)
is searched before the shipped one, by name and by env.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path

from rlcore.hyperparams import Hyperparams

PRESETS_FILE = Path(__file__).with_name("presets.json")
NONE = "none"


class PresetError(ValueError):
    """An unknown preset name, or a presets file that does not fit the hyperparameters."""


@dataclass(frozen=True)
class Preset:
    name: str
    settings: dict
    """Hyperparameter values by field name (JSON types: lists for tuples)."""
    chosen_by: str = ""
    """Which tuning run chose these values (a results file and its row)."""
    ids: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    entry_points: tuple[str, ...] = ()
    note: str = field(default="", compare=False)
    source: str = field(default="", compare=False)
    """The user's presets file it came from ("" for the shipped ones)."""


def _load(path: Path, source: str = "") -> list[Preset]:
    data = json.loads(path.read_text())
    known = {f.name for f in fields(Hyperparams)}
    presets = []
    for entry in data["presets"]:
        unknown = set(entry["settings"]) - known
        if unknown:
            raise PresetError(f"preset {entry['name']!r}: unknown settings {sorted(unknown)}")
        presets.append(
            Preset(
                name=entry["name"],
                settings=dict(entry["settings"]),
                chosen_by=entry.get("chosen_by", ""),
                ids=tuple(entry.get("ids", ())),
                patterns=tuple(entry.get("patterns", ())),
                entry_points=tuple(entry.get("entry_points", ())),
                note=entry.get("note", ""),
                source=source,
            )
        )
    names = [p.name for p in presets]
    if len(set(names)) != len(names) or NONE in names:
        raise PresetError("preset names must be unique and not 'none'")
    return presets


def load_file(path: str | Path) -> tuple[Preset, ...]:
    """A user's presets file; PresetError names what is wrong with it, in one line."""
    path = Path(path)
    try:
        presets = _load(path, source=str(path))
        for preset in presets:
            Hyperparams.from_dict({**Hyperparams().to_dict(), **preset.settings}).validate()
    except PresetError as exc:
        raise PresetError(f"{path}: {exc}") from None
    except OSError as exc:
        raise PresetError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PresetError(f"{path} is not a presets file: {type(exc).__name__}: {exc}") from None
    return tuple(presets)


@cache
def all_presets() -> tuple[Preset, ...]:
    return tuple(_load(PRESETS_FILE))


def by_name(name: str, own: tuple[Preset, ...] = ()) -> Preset:
    for preset in (*own, *all_presets()):
        if preset.name == name:
            return preset
    known = ", ".join(p.name for p in (*own, *all_presets()))
    raise PresetError(f"unknown preset {name!r}; known: {known}, or none")


def for_env(env_id: str, own: tuple[Preset, ...] = ()) -> Preset | None:
    """The most specific preset for `env_id`: exact id, then pattern, then family; at each
    step the user's own presets (`own`) before the shipped ones."""
    presets = (*own, *all_presets())
    for preset in presets:
        if env_id in preset.ids:
            return preset
    for preset in presets:
        if any(fnmatch.fnmatchcase(env_id, p) for p in preset.patterns):
            return preset
    entry = _entry_point(env_id)
    for preset in presets:
        if entry and any(entry.startswith(m) for m in preset.entry_points):
            return preset
    return None


def resolve(name: str | None, env_id: str, own: tuple[Preset, ...] = ()) -> Preset | None:
    """--preset: None picks by env id, 'none' turns presets off, any other is a name; `own`
    are the presets of a --preset-file, searched first."""
    if name is None or name == "":
        return for_env(env_id, own)
    if name == NONE:
        return None
    return by_name(name, own)


def _entry_point(env_id: str) -> str:
    import gymnasium as gym

    from rlcore.wrappers import register_families

    try:
        register_families(env_id)
        entry = gym.spec(env_id).entry_point
    except Exception:  # an unknown id has no family; the learner reports it later
        return ""
    return entry if isinstance(entry, str) else f"{entry.__module__}:{entry.__qualname__}"


def merge(preset: Preset | None, values: dict, given: set[str]) -> tuple[dict, dict | None]:
    """Hyperparameter values with the preset's applied where the user set nothing.

    values: every hyperparameter as the command line resolved it (defaults included);
    given: the names the user set explicitly (a flag or an A3C_* variable), which win.
    Returns the merged values and the record of what the preset did (None: no preset).
    """
    merged = dict(values)
    if preset is None:
        return merged, None
    applied, overridden = {}, []
    for name, value in preset.settings.items():
        if name in given:
            overridden.append(name)
            continue
        merged[name] = tuple(value) if isinstance(value, list) else value
        applied[name] = value
    record = {
        "name": preset.name,
        **({"file": preset.source} if preset.source else {}),
        "chosen_by": preset.chosen_by,
        "applied": applied,
        "overridden": sorted(overridden),
    }
    return merged, record
