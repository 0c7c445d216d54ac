"""Every setting of a learner run, in one dataclass written to config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from rlcore.hyperparams import Hyperparams
from rlcore.run_settings import MODES
from rlcore.setting import check_settings, setting

if TYPE_CHECKING:  # the CLI reads this module's defaults without loading gymnasium
    from rlcore.envs import EnvConfig

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
    """Every setting of a learner run. Each field declares its option (rlcore.setting)."""

    mode: str = setting(
        help="gradient: actors send gradients; data: actors send experience.",
        group="run",
        choices=MODES,
    )
    run_dir: str = setting(help="Run directory [default: runs/ENV-MODE-TIME].", group="run")
    env_id: str = setting(
        "CartPole-v1",
        help="Gymnasium env id, or module:Id for your own.",
        group="run",
        flag="--env",
    )
    env_kwargs: dict = setting(
        help="JSON keyword arguments of gymnasium.make, e.g. '{\"g\": 9.81}'.",
        group="run",
        factory=dict,
    )
    wrappers: tuple[str, ...] = setting(
        (),
        help="Comma-separated env wrappers: mask-velocity, channels-first, atari, "
        "atari-episodic-life (ALE/ ids get atari and MinAtar/ ids channels-first by default).",
        group="run",
    )
    bind: str = setting(
        "tcp://127.0.0.1:5555",
        help="Address actors connect to. Loopback by default.",
        group="run",
        flag=None,
    )
    target_return: float | None = setting(
        None,
        help="Stop when mean_return_100 reaches it [default: the env's threshold].",
        group="run",
    )
    max_env_steps: int | None = setting(None, help="Env-step budget.", group="run", lo=1)
    max_seconds: float | None = setting(
        None, help="Wall-time budget.", group="run", lo=0, lo_open=True
    )
    seed: int = setting(0, help="Base seed of the run (each actor derives its own).")
    hp: Hyperparams = field(default_factory=Hyperparams)
    max_staleness: int = setting(
        20, help="Drop work computed on weights more than this many updates old.", lo=1
    )
    checkpoint_every: float = setting(
        60.0, help="Seconds between checkpoints.", group="run", lo=0, lo_open=True
    )
    resume: bool = setting(False, help="Continue from the run directory's checkpoint.", group="run")
    max_outstanding: int = setting(
        2,
        help="Work messages an actor may always have in flight before it waits for a reply.",
        group="wire",
        lo=1,
        flag=None,
    )
    # Each actor's grant is also at most max_staleness / connected actors; actors measure
    # their round trip and use what covers it, within the grant.
    max_credit: int = setting(
        16,
        help="Most work messages an actor keeps in flight to cover a long round trip "
        "(2 turns pacing off).",
        group="wire",
        lo=1,
    )
    wire_compress: str = setting(
        "zstd",
        help="Lossless codec for frames (uint8 and bool arrays) on the wire "
        "(lz4 needs the lz4 extra).",
        group="wire",
        choices=("zstd", "lz4", "none"),
    )
    # A narrow Gaussian's importance ratios feel the rounding of the weights an actor acts
    # with: Pendulum-v1's data mode solved 4/4 seeds with float32 weights, 3/4 with bfloat16
    # (benchmarks/results/wire_dtype.json).
    wire_dtype: str = setting(
        AUTO_DTYPE,
        help="Weights and gradients on the wire (the learner's copy stays "
        "float32): 16-bit halves their bytes; auto is bfloat16 for discrete actions, float32 "
        "for continuous.",
        group="wire",
        choices=(AUTO_DTYPE, "float32", "bfloat16", "float16"),
    )
    frame_once: bool = setting(
        True, help="Data mode, stacked frames: each new frame travels once.", group="wire"
    )
    weights_lag: int = setting(
        0,
        help="Send an actor new weights only when its copy is more than this many "
        "versions old (version-only replies otherwise).",
        group="wire",
        lo=0,
    )
    heartbeat_interval: float = setting(
        1.0,
        help="Seconds between an idle actor's heartbeats.",
        group="wire",
        lo=0,
        lo_open=True,
        flag=None,
    )
    heartbeat_timeout: float = setting(
        10.0,
        help="Seconds of silence after which an actor counts as gone (and actors reconnect).",
        group="wire",
        lo=1,
    )
    metrics_every: float = setting(
        5.0, help="Seconds between metrics.jsonl records.", group="run", lo=0.1
    )
    metrics_port: int | None = setting(
        None,
        help="Serve Prometheus metrics over HTTP on this port, all interfaces "
        "(0: any free port) [default: off].",
        group="run",
        lo=0,
        hi=65535,
    )
    tensorboard: bool = setting(
        True,
        help="TensorBoard scalars in the run directory (needs the viz extra).",
        group="run",
    )
    stop_grace: float = setting(
        1.5,
        help="Seconds spent telling actors to stop before the learner exits.",
        group="run",
        lo=0,
        flag=None,
    )
    torch_threads: int = setting(
        1, help="Torch threads of the learner.", group="run", lo=1, flag=None
    )
    device: str = setting(
        "cpu",
        help="Learner device: cpu, cuda, cuda:1, mps (data mode learns there).",
        group="run",
    )
    keys_dir: str | None = setting(
        None,
        help="CURVE keys (a3c keygen): encrypt, and accept only the authorized actors.",
        group="wire",
        flag=None,
    )
    authorized_dir: str | None = setting(
        None,
        help="Public keys of the actors to accept [default: KEYS_DIR/authorized]; "
        "re-read when it changes.",
        group="wire",
        flag=None,
    )
    # libzmq cuts off a peer that sends a larger message.
    max_message_bytes: int | None = setting(
        None,
        help="A peer that sends a larger message is disconnected [default: twice the "
        "largest work message of this run's settings, at least 1 MiB].",
        group="wire",
        lo=4096,
        flag=None,
    )
    insecure: bool = setting(
        False,
        help="Allow a non-loopback --bind without --keys-dir: every peer that reaches "
        "it may join, unencrypted (only on a network you trust).",
        group="run",
    )
    preset: dict | None = None
    """The preset applied: its name, the run that chose it, the values it set and the ones
    the user overrode (None: no preset)."""

    def validate(self) -> None:
        check_settings(self)
        self.hp.validate()
        _check_device(self.device)
        from protocol.wire import WireFormat

        # raises ValueError naming a bad value (auto resolves to a valid one either way)
        WireFormat(self.wire_compress, wire_floats(self.wire_dtype, discrete_actions=True))
        if self.max_credit < self.max_outstanding:
            raise ValueError("max-credit must be >= max-outstanding")
        if not 0 <= self.weights_lag < self.max_staleness:
            raise ValueError(
                "weights-lag must be in [0, max-staleness): work on weights that old is dropped"
            )

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
