"""Hyperparameters of the algorithm, one documented dataclass.

The learner owns them and sends them to actors in the handshake, so actors need nothing
but the learner's address.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Hyperparams:
    lr: float = 1e-3
    """Adam learning rate (the original design used 1e-4; it learns CartPole far slower)."""
    rollout_len: int = 20
    """Env steps per env in one rollout (the n of the n-step returns)."""
    num_envs: int = 4
    """Envs stepped together by each actor, with one batched forward pass per step."""
    gamma: float = 0.99
    gae_lambda: float = 1.0
    """Lambda of the advantage estimates and value targets: 1 is A3C's n-step returns; below 1
    (GAE, and V-trace's lambda in data mode) lowers their variance at the cost of bias."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this in the loss (keeps value targets near 1 in size)."""
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    max_grad_norm: float = 40.0
    """Gradient-norm clip applied by the learner before every update (as the original)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the MLP actor-critic (image observations use a fixed CNN)."""
    recurrent: bool = False
    """An LSTM core after the encoder; its state is carried across rollouts."""
    lstm_size: int = 128
    log_std_init: float = 0.0
    """Continuous actions: the Gaussian's initial log standard deviation (learned after)."""
    bounded_mean: bool = False
    """Continuous actions: the Gaussian's mean is squashed into the action box by tanh. The
    env clips what it gets, so a mean that drifts far past a bound sees the same clipped
    action whatever it does next: no learning signal brings it back."""
    rho_bar: float = 1.0
    """V-trace importance-weight clip for the value targets (data mode)."""
    c_bar: float = 1.0
    """V-trace trace-cutting clip (data mode)."""
    reward_clip: float = 0.0
    """Rewards (after reward_scale) are clipped to [-reward_clip, reward_clip] in the loss;
    0 turns clipping off. Reported returns are never clipped."""
    normalize_obs: bool = False
    """Observations are normalized by running mean and variance inside the network; the
    learner merges the moments every actor saw and sends the statistics with the weights."""
    obs_clip: float = 10.0
    """Normalized observations are clipped to [-obs_clip, obs_clip]."""
    normalize_reward: bool = False
    """Rewards are divided by the running std of discounted returns in the loss (SB3's
    VecNormalize), with the same learner-merged statistics in both modes."""
    lr_decay: bool = False
    """The learning rate falls linearly to 0 over the env-step budget (--max-env-steps)."""
    batch_lr_scale: float = 4.0
    """Data mode: an update learned from k rollouts at once steps with lr * k**batch_lr_power,
    at most lr * batch_lr_scale (1 turns it off). Adam's step does not grow with the batch, so
    without it data mode moves its weights less per env step than gradient mode, which makes
    one update per rollout."""
    batch_lr_power: float = 0.5
    """The exponent of that rule: 0.5 is the square-root rule for adaptive optimizers (the
    batch's gradient is less noisy, not larger); 1 moves as far per env step as gradient mode's
    k updates would."""
    split_batches: bool = False
    """Data mode: learn the rollouts that arrive together one at a time (k updates of one
    rollout each, the same count and size of steps as gradient mode's k gradients, each on
    the newest weights) instead of as one batch; the batch rule then never applies. More
    updates at less batching: measured with small networks on a CPU learner; a GPU learner
    with many actors needs the batching it gives up."""

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
        checks = [
            (self.lr > 0, "lr must be > 0"),
            (1 <= self.rollout_len <= 10_000, "rollout_len must be in [1, 10000]"),
            (1 <= self.num_envs <= 4096, "num_envs must be in [1, 4096]"),
            (0 <= self.gamma <= 1, "gamma must be in [0, 1]"),
            (0 <= self.gae_lambda <= 1, "gae_lambda must be in [0, 1]"),
            (self.reward_scale > 0, "reward_scale must be > 0"),
            (self.entropy_coef >= 0, "entropy_coef must be >= 0"),
            (self.max_grad_norm > 0, "max_grad_norm must be > 0"),
            (all(0 < h <= 65536 for h in self.hidden), "hidden sizes must be in [1, 65536]"),
            (1 <= self.lstm_size <= 65536, "lstm_size must be in [1, 65536]"),
            (self.rho_bar > 0 and self.c_bar > 0, "rho_bar and c_bar must be > 0"),
            (self.reward_clip >= 0, "reward_clip must be >= 0"),
            (self.obs_clip > 0, "obs_clip must be > 0"),
            (self.batch_lr_scale >= 1, "batch_lr_scale must be >= 1"),
            (0 <= self.batch_lr_power <= 1, "batch_lr_power must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
