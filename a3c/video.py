"""Record episodes of a run's checkpointed policy to an .mp4 or .gif."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from a3c.evaluate import EvaluateError, load_policy, run_episode

MIN_SIDE = 168  # tiny frames (MinAtar's 10x10) are scaled up to at least this


def to_rgb8(frame: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 frame, scaled up by a whole factor when it is tiny."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0.0, 1.0) * 255).astype(np.uint8)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    factor = -(-MIN_SIDE // min(frame.shape[:2]))
    if factor > 1:
        frame = frame.repeat(factor, axis=0).repeat(factor, axis=1)
    # H.264 wants even sides: pad by one edge row or column where needed.
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def record(
    run_dir: str, out: str, episodes: int, stochastic: bool, seed: int = 0, fps: int = 30
) -> list[tuple[float, int]]:
    """Play `episodes` episodes, write their frames to `out`; return (return, length) each."""
    suffix = Path(out).suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise EvaluateError(f"--video must end in .mp4 or .gif, not {suffix or 'nothing'}")
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise EvaluateError("--video needs imageio: pip install 'a3c-service[viz]'") from None
    # Off-screen rendering: no display, no audio device, no runtime dir needed.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env, model = load_policy(run_dir, render_mode="rgb_array")
    generator = torch.Generator().manual_seed(seed)
    results, frames = [], []
    try:
        for i in range(episodes):
            results.append(run_episode(env, model, generator, stochastic, seed + i, frames))
    except Exception as exc:  # rendering needs packages an env may lack (e.g. pygame)
        raise EvaluateError(f"cannot render {run_dir}'s env: {exc}") from None
    finally:
        env.close()
    frames = [to_rgb8(f) for f in frames if f is not None]
    if not frames:
        raise EvaluateError("the env rendered no frames")
    if suffix == ".gif":
        imageio.mimsave(out, frames, duration=1000 / fps, loop=0)
    else:
        with imageio.get_writer(out, fps=fps, macro_block_size=2) as writer:
            for frame in frames:
                writer.append_data(frame)
    return results
