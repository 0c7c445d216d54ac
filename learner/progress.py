"""What the learner shows on its terminal: a live line on a tty, plain log lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, stream=None, plain_every: float = 5.0):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.every = 0.5 if self.live else plain_every
        self._last = time.monotonic()
        self._last_steps = 0

    def maybe_show(self, env_steps: int, line_fn) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        rate = (env_steps - self._last_steps) / (now - self._last)
        self._last, self._last_steps = now, env_steps
        self.show(line_fn(rate))

    def show(self, line: str) -> None:
        if self.live:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def progress_line(
    wall: float,
    steps: int,
    rate: float,
    episodes: int,
    mean: float | None,
    updates: int,
    actors: int,
) -> str:
    shown = "-" if mean is None else f"{mean:7.1f}"
    return (
        f"{wall:7.1f}s  steps {steps:>10,}  {rate:>8,.0f} steps/s  episodes {episodes:>7,}  "
        f"mean return {shown}  updates {updates:>7,}  actors {actors}"
    )
