"""Exponential moving average (EMA) of model weights.

Diffusion models are sampled with an EMA of their weights (Ho et al. 2020, appendix B: decay
0.9999; Song & Ermon 2020), which averages out the noise of the last optimiser steps. After
each optimiser step::

    shadow = d * shadow + (1 - d) * param

with ``d = decay``, or with warm-up ``d = min(decay, (1 + n) / (10 + n))`` for the n-th update
(n = 0, 1, ...), so early averages are not dominated by the random initial weights.
Only trainable parameters are averaged (frozen ones never change); the shadow is float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class EMA:
    """EMA of the trainable parameters of ``model``.

    Args:
        model: the module being trained (parameters are matched by name).
        decay: d in [0, 1).
        warmup: use ``min(decay, (1 + n) / (10 + n))`` for the n-th update.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay {decay!r} is not allowed; it must be in [0, 1)")
        self.decay, self.warmup = float(decay), bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().to(torch.float32).clone() for name, p in model.named_parameters() if p.requires_grad
        }

    def current_decay(self) -> float:
        """The decay the next ``update`` will use."""
        if self.warmup:
            return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        params = dict(model.named_parameters())
        for name, s in self.shadow.items():
            s.lerp_(params[name].detach().to(s.dtype), 1.0 - d)  # s + (1 - d) * (p - s) = d * s + (1 - d) * p
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's trainable parameters with the EMA weights."""
        params = dict(model.named_parameters())
        for name, s in self.shadow.items():
            params[name].copy_(s.to(device=params[name].device, dtype=params[name].dtype))

    @contextlib.contextmanager
    def average_parameters(self, model: nn.Module) -> Iterator[nn.Module]:
        """``with ema.average_parameters(model): sample(...)`` uses EMA weights, then restores the trained ones."""
        params = dict(model.named_parameters())
        backup = {name: params[name].detach().clone() for name in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, b in backup.items():
                    params[name].copy_(b)

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        unexpected = sorted(set(state["shadow"]) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(f"EMA state does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.decay, self.warmup = float(state["decay"]), bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
