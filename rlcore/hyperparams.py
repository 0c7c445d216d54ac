"""Hyperparameters of the algorithm, one documented dataclass.

The learner owns them and sends them to actors in the handshake, so actors need nothing
but the learner's address.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from rlcore.setting import check_settings, setting


@dataclass(frozen=True)
class Hyperparams:
    # The original design used lr 1e-4; it learns CartPole far slower.
    lr: float = setting(1e-3, help="Adam learning rate.", lo=0, lo_open=True)
    rollout_len: int = setting(
        20, help="Env steps per env in one rollout (the n of n-step returns).", lo=1, hi=10_000
    )
    num_envs: int = setting(
        4, help="Envs per actor, stepped with batched inference.", lo=1, hi=4096
    )
    gamma: float = setting(0.99, help="Discount factor.", lo=0, hi=1)
    gae_lambda: float = setting(
        1.0,
        help="Lambda of advantages and value targets: 1 is A3C's n-step returns; lower cuts "
        "their variance at the cost of bias (GAE; V-trace's lambda in data mode).",
        lo=0,
        hi=1,
    )
    # Keeps value targets near 1 in size.
    reward_scale: float = setting(1.0, help="Multiplies rewards in the loss.", lo=0, lo_open=True)
    entropy_coef: float = setting(0.01, help="Weight of the entropy bonus.", lo=0)
    value_coef: float = setting(0.5, help="Weight of the value loss.", lo=0)
    max_grad_norm: float = setting(
        40.0,
        help="Gradient-norm clip the learner applies before every update.",
        lo=0,
        lo_open=True,
    )
    # Image observations use a fixed CNN instead.
    hidden: tuple[int, ...] = setting((64, 64), help="Hidden layer sizes of the MLP, e.g. 64,64.")
    recurrent: bool = setting(
        False,
        help="An LSTM core: the policy remembers within an episode (state carried "
        "across rollouts).",
    )
    lstm_size: int = setting(128, help="LSTM units with --recurrent.", lo=1, hi=65536)
    log_std_init: float = setting(
        0.0, help="Continuous actions: initial log std of the Gaussian policy (learned after)."
    )
    # The env clips what it gets, so a mean that drifts far past a bound sees the same
    # clipped action whatever it does next: no learning signal brings it back.
    bounded_mean: bool = setting(
        False, help="Continuous actions: squash the Gaussian's mean into the action box (tanh)."
    )
    rho_bar: float = setting(
        1.0,
        help="V-trace importance-weight clip of the value targets (data mode).",
        lo=0,
        lo_open=True,
        flag=None,
    )
    c_bar: float = setting(
        1.0, help="V-trace trace-cutting clip (data mode).", lo=0, lo_open=True, flag=None
    )
    reward_clip: float = setting(
        0.0,
        help="Clip rewards (after scaling) to [-C, C] in the loss (0: off); reported "
        "returns stay unclipped.",
        lo=0,
    )
    normalize_obs: bool = setting(
        False,
        help="Normalize observations by running statistics the learner merges from "
        "all actors and sends with the weights.",
    )
    obs_clip: float = setting(
        10.0,
        help="Normalized observations are clipped to [-C, C].",
        lo=0,
        lo_open=True,
        flag=None,
    )
    # SB3's VecNormalize, with the same learner-merged statistics in both modes.
    normalize_reward: bool = setting(
        False, help="Divide rewards in the loss by the running std of discounted returns."
    )
    lr_decay: bool = setting(
        False, help="Decay the learning rate linearly to 0 over --max-env-steps."
    )
    # Adam's step does not grow with the batch, so without this rule data mode moves its
    # weights less per env step than gradient mode, which makes one update per rollout.
    batch_lr_scale: float = setting(
        4.0,
        help="Data mode: an update from k rollouts steps with lr*k**P, at most lr times "
        "this (1: off).",
        lo=1,
    )
    # 0.5 is the square-root rule for adaptive optimizers: the batch's gradient is less noisy,
    # not larger.
    batch_lr_power: float = setting(
        0.5,
        help="P of that rule: 0.5 the square-root rule, 1 as far per env step as gradient mode.",
        lo=0,
        hi=1,
    )
    # More updates at less batching: measured with small networks on a CPU learner. Bounded,
    # because many actors sending at once would otherwise turn one batched update into as
    # many small ones as there are rollouts, and give up the batching a busy learner needs.
    split_batches: bool = setting(
        False,
        help="Data mode: split each round's rollouts into up to --split-max updates, each "
        "on the newest weights, instead of one update per round.",
    )
    split_max: int = setting(
        4,
        help="Data mode with --split-batches: at most this many updates per round; the "
        "rollouts are shared evenly among them and the batch rule applies to each.",
        lo=1,
        hi=256,
    )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Hyperparams:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown hyperparameters {sorted(unknown)}")
        values = dict(d)
        if "hidden" in values:
            values["hidden"] = tuple(int(h) for h in values["hidden"])
        hp = cls(**values)
        hp.validate()
        return hp

    def validate(self) -> None:
        check_settings(self)
        if not all(0 < h <= 65536 for h in self.hidden) or not self.hidden:
            raise ValueError("hidden sizes must be in [1, 65536]")
