"""A model's parameters and gradients as two flat buffers.

Weights travel as one flat vector and gradients come back as one. With every parameter a
view into one buffer (and every gradient a view into another), reading the weights, taking
a gradient, clipping its norm and an Adam step are each a few whole-vector operations,
not a loop over parameter tensors (and no torch.optim, whose first use imports
torch._dynamo: most of a second at start-up).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class FlatParameters:
    """`model`'s parameters moved into one buffer (`params`) and their gradients into
    another (`grads`); the model keeps working on views of both."""

    def __init__(self, model: nn.Module):
        self.model = model
        tensors = list(model.parameters())
        first = tensors[0]
        total = sum(p.numel() for p in tensors)
        self.params = torch.empty(total, dtype=first.dtype, device=first.device)
        self.grads = torch.zeros_like(self.params)
        offset = 0
        with torch.no_grad():
            for p in tensors:
                n = p.numel()
                self.params[offset : offset + n].copy_(p.reshape(-1))
                p.data = self.params[offset : offset + n].view_as(p)
                # Autograd accumulates into an existing .grad in place: the views stay.
                p.grad = self.grads[offset : offset + n].view_as(p)
                offset += n

    @property
    def size(self) -> int:
        return self.params.numel()

    def weights(self) -> np.ndarray:
        """A float32 copy of the weights, on the host."""
        return self.params.detach().to("cpu", torch.float32, copy=True).numpy()

    def load(self, flat: np.ndarray) -> None:
        _copy_into(self.params.detach(), flat)

    def gradient(self) -> np.ndarray:
        """The accumulated gradient as a float32 host array (a copy)."""
        return self.grads.to("cpu", torch.float32, copy=True).numpy()

    def set_gradient(self, flat: np.ndarray) -> None:
        _copy_into(self.grads, flat)

    def zero_grad(self) -> None:
        self.grads.zero_()

    def clip_grad_norm(self, max_norm: float) -> float:
        """Scale the gradient to at most `max_norm`; its norm before clipping (inf or NaN
        are returned unscaled, for the caller to refuse)."""
        norm = float(torch.linalg.vector_norm(self.grads))
        if norm > max_norm and np.isfinite(norm):
            self.grads.mul_(max_norm / (norm + 1e-6))
        return norm


def _copy_into(buffer: torch.Tensor, flat: np.ndarray) -> None:
    """`flat` (often a read-only view of a received frame) into `buffer`, converted."""
    if flat.size != buffer.numel():
        raise ValueError(f"{flat.size} values for {buffer.numel()} weights")
    if buffer.device.type == "cpu":
        np.copyto(buffer.numpy(), flat, casting="same_kind")
    else:
        buffer.copy_(torch.from_numpy(np.array(flat, dtype=np.float32)))


class FlatAdam:
    """Adam (Kingma and Ba; torch.optim.Adam's defaults: no weight decay, no amsgrad) on a
    FlatParameters' buffers: the seed's SharedAdam, one vector at a time."""

    def __init__(self, flat: FlatParameters, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.flat = flat
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.steps = 0
        self.exp_avg = torch.zeros_like(flat.params)
        self.exp_avg_sq = torch.zeros_like(flat.params)

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        g = self.flat.grads
        self.steps += 1
        self.exp_avg.lerp_(g, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        correction1 = 1 - b1**self.steps
        correction2 = 1 - b2**self.steps
        denom = (self.exp_avg_sq.sqrt() / correction2**0.5).add_(self.eps)
        self.flat.params.addcdiv_(self.exp_avg, denom, value=-self.lr / correction1)

    def state_dict(self) -> dict:
        """In torch.optim.Adam's layout (one flat parameter), so that tools reading a
        checkpoint's optimizer find the usual keys."""
        return {
            "state": {
                0: {
                    "step": torch.tensor(float(self.steps)),
                    "exp_avg": self.exp_avg.clone(),
                    "exp_avg_sq": self.exp_avg_sq.clone(),
                }
            },
            "param_groups": [
                {
                    "lr": self.lr,
                    "betas": self.betas,
                    "eps": self.eps,
                    "weight_decay": 0,
                    "amsgrad": False,
                    "params": [0],
                    "flat": True,
                }  # fmt: skip
            ],
        }

    def load_state_dict(self, state: dict) -> None:
        """This optimizer's state, or torch.optim.Adam's over the model's parameters in
        order (checkpoints written before the flat buffers)."""
        group = state["param_groups"][0]
        per_param = state["state"]
        n = len(group["params"])
        if n == 1 and group.get("flat"):
            avg, avg_sq = per_param[0]["exp_avg"], per_param[0]["exp_avg_sq"]
            steps = per_param[0]["step"]
        else:  # per parameter, in order; one that never had a gradient has no state
            sizes = [p.numel() for p in self.flat.model.parameters()]
            if len(sizes) != n:
                raise ValueError(f"optimizer state for {n} tensors, not {len(sizes)}")
            zeros = [{"exp_avg": torch.zeros(k), "exp_avg_sq": torch.zeros(k)} for k in sizes]
            rows = [per_param.get(key, zero) for key, zero in zip(group["params"], zeros)]
            avg = torch.cat([r["exp_avg"].reshape(-1).cpu() for r in rows])
            avg_sq = torch.cat([r["exp_avg_sq"].reshape(-1).cpu() for r in rows])
            steps = max((float(r["step"]) for r in rows if "step" in r), default=0)
        if avg.numel() != self.exp_avg.numel():
            raise ValueError(f"optimizer state for {avg.numel()} weights, not {self.flat.size}")
        self.exp_avg.copy_(avg.reshape(-1))  # copy_ moves it to the buffers' device
        self.exp_avg_sq.copy_(avg_sq.reshape(-1))
        self.steps = int(steps)
        self.lr = float(group["lr"])
        self.betas = tuple(float(b) for b in group["betas"])
        self.eps = float(group["eps"])
