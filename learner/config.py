"""Every setting of a learner run, in one dataclass written to config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from rlcore.hyperparams import Hyperparams

if TYPE_CHECKING:  # the CLI reads this module's defaults without loading gymnasium
    from rlcore.envs import EnvConfig

MODES = ("gradient", "data")
AUTO_DTYPE = "auto"


def wire_floats(wire_dtype: str, discrete_actions: bool) -> str:
    """The float format weights and gradients travel in, `auto` resolved by the action
    space: Pendulum-v1's data mode, 4 seeds, solved every seed with float32 weights and 3
    of 4 with bfloat16 (benchmarks/results/wire_dtype.json)."""
    if wire_dtype != AUTO_DTYPE:
        return wire_dtype
    return "bfloat16" if discrete_actions else "float32"


@dataclass
class LearnerConfig:
    mode: str
    env_id: str
    run_dir: str
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments of gymnasium.make (--env-kwargs JSON)."""
    wrappers: tuple[str, ...] = ()
    """Env wrappers by name (rlcore.wrappers.WRAPPERS), after the family's defaults."""
    bind: str = "tcp://127.0.0.1:5555"
    target_return: float | None = None
    """Stop when mean_return_100 reaches this. None: the env's own reward threshold, if any."""
    max_env_steps: int | None = None
    max_seconds: float | None = None
    seed: int = 0
    hp: Hyperparams = field(default_factory=Hyperparams)
    max_staleness: int = 20
    """Drop work computed on weights more than this many updates old."""
    checkpoint_every: float = 60.0
    resume: bool = False
    max_outstanding: int = 2
    """Work messages an actor may always have in flight before it waits for a reply."""
    max_credit: int = 16
    """Most work messages an actor may keep in flight to cover a long round trip; each
    actor's grant is also at most max_staleness / connected actors (actors measure their
    round trip and use what covers it, within the grant)."""
    wire_compress: str = "zstd"
    """Codec for uint8 and bool arrays on the wire: none, lz4 or zstd."""
    wire_dtype: str = "auto"
    """Weights and gradients on the wire: float32, bfloat16 or float16; auto is bfloat16
    for discrete actions and float32 for continuous ones (a narrow Gaussian's importance
    ratios feel the rounding of the weights an actor acts with). The learner's weights and
    optimizer state stay float32."""
    frame_once: bool = True
    """Data mode, stacked uint8 frames: each new frame travels once (rlcore.framestack)."""
    weights_lag: int = 0
    """A reply carries weights only when the actor's copy is more than this many versions
    old; otherwise it is a version-only reply (0: whenever newer weights exist)."""
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 10.0
    """An actor unheard of for this long no longer counts as connected."""
    metrics_every: float = 5.0
    tensorboard: bool = True
    """Also write every metrics record as TensorBoard scalars into the run directory."""
    stop_grace: float = 1.5
    """Seconds spent telling actors to stop before the learner exits."""
    torch_threads: int = 1
    device: str = "cpu"
    """Where the learner's model lives (data mode computes the loss there)."""
    keys_dir: str | None = None
    authorized_dir: str | None = None
    """The authorized actors' public keys [default: KEYS_DIR/authorized]."""
    """CURVE: encrypt all traffic and accept only actors whose keys are authorized here."""
    max_message_bytes: int | None = None
    """libzmq cuts off a peer that sends a larger message. None: twice the largest work
    message this run's actors can send (learner.validation.max_work_bytes), at least 1 MiB."""
    insecure: bool = False
    """Allow a non-loopback --bind without keys (a network where every peer is trusted)."""
    preset: dict | None = None
    """The preset applied: its name, the run that chose it, the values it set and the ones
    the user overrode (None: no preset)."""

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        self.hp.validate()
        _check_device(self.device)
        positive = {
            "max_staleness": self.max_staleness,
            "checkpoint_every": self.checkpoint_every,
            "max_outstanding": self.max_outstanding,
            "heartbeat_timeout": self.heartbeat_timeout,
            "metrics_every": self.metrics_every,
            "torch_threads": self.torch_threads,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be > 0")
        from protocol.wire import WireFormat

        # raises ValueError naming a bad value (auto resolves to a valid one either way)
        WireFormat(self.wire_compress, wire_floats(self.wire_dtype, discrete_actions=True))
        if self.max_credit < self.max_outstanding:
            raise ValueError("max-credit must be >= max-outstanding")
        if not 0 <= self.weights_lag < self.max_staleness:
            raise ValueError(
                "weights-lag must be in [0, max-staleness): work on weights that old is dropped"
            )
        for name in ("max_env_steps", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be > 0")

    @property
    def env(self) -> EnvConfig:
        from rlcore.envs import EnvConfig

        return EnvConfig(self.env_id, dict(self.env_kwargs), tuple(self.wrappers))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hp"] = self.hp.to_dict()
        d["wrappers"] = list(self.wrappers)
        return d


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no CUDA device")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")


DEFAULTS = {f.name: f.default for f in fields(LearnerConfig)}
"""Each setting's default, for the command line to show and use (one source)."""
