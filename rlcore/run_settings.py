"""What every actor of a run trains on: the mode, the env and its spaces, the hyperparameters
and the base seed.

The learner builds one and sends it in its welcome, beside how the link is used
(protocol.link); both write disjoint keys of the welcome's settings map, each reads back
its own. An actor reads a map that came over the network, so reading checks every type and
names the first setting that is missing or wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from rlcore.envs import EnvConfig, EnvSpec
from rlcore.hyperparams import Hyperparams

MODES = ("gradient", "data")
T = TypeVar("T")
SCALARS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict}


@dataclass(frozen=True)
class RunSettings:
    mode: str
    """gradient: actors send gradients; data: actors send rollouts."""
    env: EnvConfig
    spec: EnvSpec
    """The spaces the learner's env has: an actor's own env must match them."""
    hp: Hyperparams
    seed: int
    """The run's base seed: each actor derives its own from it and its index."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "env": self.env.to_dict(),
            "env_spec": self.spec.to_dict(),
            "hyperparams": self.hp.to_dict(),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: Any) -> RunSettings:
        """TypeError or ValueError, naming the setting, for a map that is not one."""
        return cls(
            mode=read(d, "mode", str),
            env=read_nested(d, "env", EnvConfig),
            spec=read_nested(d, "env_spec", EnvSpec),
            hp=read_nested(d, "hyperparams", Hyperparams),
            seed=read(d, "seed", int),
        )


def read(d: Any, name: str, kind: type[T]) -> T:
    """`d[name]`, which must be of `kind` (an int is a float; a bool is never a number)."""
    if not isinstance(d, dict):
        raise TypeError(f"settings must be a map, not {type(d).__name__}")
    if name not in d:
        raise ValueError(f"settings lack {name!r}")
    return check(name, d[name], kind)


def check(name: str, value: Any, kind: type[T]) -> T:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TypeError(f"setting {name!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


def read_nested(d: Any, name: str, cls: Any) -> Any:
    """The dataclass `cls` from the map `d[name]`, each field's type checked first: its own
    from_dict converts values (int("7")) where the network's map must already be right."""
    value = read(d, name, dict)
    for f in fields(cls):
        if f.name in value:
            _check_annotated(f"{name}.{f.name}", value[f.name], str(f.type))
    return _parse(name, value, cls.from_dict)


def _check_annotated(name: str, value: Any, annotation: str) -> None:
    """Checks the annotations settings use: scalars, `X | None` and `tuple[X, ...]`; any
    other is left to the class's own from_dict."""
    if annotation.endswith(" | None"):
        if value is None:
            return
        annotation = annotation.removesuffix(" | None")
    if annotation in SCALARS:
        check(name, value, SCALARS[annotation])
    elif annotation.startswith("tuple[") and annotation.endswith(", ...]"):
        item = annotation.removeprefix("tuple[").removesuffix(", ...]")
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"setting {name!r} must be a list, not {type(value).__name__}")
        for v in value:
            _check_annotated(f"{name}[]", v, item)


def _parse(name: str, value: dict, parse: Callable[[dict], T]) -> T:
    try:
        return parse(value)
    except KeyError as exc:
        raise ValueError(f"setting {name!r} lacks {exc}") from None
    except TypeError as exc:
        raise TypeError(f"setting {name!r}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"setting {name!r}: {exc}") from None
