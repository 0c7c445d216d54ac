"""TensorBoard scalars of every metrics.jsonl record, written into the run directory.

Optional: without the `viz` group installed the learner says so once and goes on.
"""

from __future__ import annotations

import logging
import numbers

log = logging.getLogger(__name__)


def flatten(record: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) record as 'a/b' tags; None and text are left out."""
    out: dict[str, float] = {}
    for key, value in record.items():
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, tag + "/"))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[tag] = float(value)
    return out


class ScalarLog:
    """Scalars against env steps; a no-op when TensorBoard is not installed."""

    def __init__(self, log_dir: str, enabled: bool = True):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning(
                "TensorBoard is not installed (pip install 'a3c-service[viz]'): "
                "metrics go to metrics.jsonl only"
            )
            return
        self.writer = SummaryWriter(log_dir=log_dir, flush_secs=10)

    def write(self, record: dict) -> None:
        if self.writer is None:
            return
        step = int(record["env_steps"])
        for tag, value in flatten(record).items():
            self.writer.add_scalar(tag, value, global_step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
