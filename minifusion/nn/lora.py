"""LoRA: a frozen linear layer plus a trainable low-rank update.

LoRA (Hu et al. 2021, "Low-Rank Adaptation of Large Language Models", section 4.1) adapts a
pretrained weight W (out x in) without changing it: the layer computes

    y = W x + (alpha / r) * B A x,   A: (r x in), B: (out x r), r << min(in, out)

and trains only A and B. B starts at zero, so at init the layer *is* the pretrained one. Here it
lets the keyframe model adapt the frozen T2I U-Net's attention to the text by a few thousand
weights (docs/motion.md) while the T2I weights stay as they were; ``merged()`` folds the update back
into one ``nn.Linear`` for export. Names follow diffusers' ``LoRALinearLayer`` (``down`` = A,
``up`` = B, ``network_alpha``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from minifusion.checks import check_int, check_number


class LoRALinear(nn.Module):
    """``base(x) + (network_alpha / rank) * up(down(x))`` with ``base`` frozen and ``up`` zero at init.

    Args:
        base: the pretrained layer (kept, frozen: its weights get ``requires_grad=False``).
        rank: r, the width of the update (1 <= r <= min(in, out)).
        network_alpha: the update's scale numerator; None = ``rank`` (scale 1).
    """

    def __init__(self, base: nn.Linear, rank: int, network_alpha: float | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        limit = min(base.in_features, base.out_features)
        check_int("LoRA rank", rank, minimum=1, maximum=limit,
                  note=f"(the smaller side of the {base.out_features} x {base.in_features} weight)")
        if network_alpha is not None:
            check_number("network_alpha", network_alpha, minimum=0, exclusive_minimum=True, note="or None (= rank)")
        self.base = base.requires_grad_(False)
        w = base.weight
        self.down = nn.Linear(base.in_features, rank, bias=False, device=w.device, dtype=w.dtype)  # A
        self.up = nn.Linear(rank, base.out_features, bias=False, device=w.device, dtype=w.dtype)  # B
        nn.init.normal_(self.down.weight, std=1.0 / rank)
        nn.init.zeros_(self.up.weight)
        self.rank = rank
        self.scale = (rank if network_alpha is None else network_alpha) / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out)."""
        return self.base(x) + self.scale * self.up(self.down(x))

    def delta_weight(self) -> torch.Tensor:
        """The update as a full (out, in) matrix: scale * B @ A."""
        return self.scale * self.up.weight @ self.down.weight

    def merged(self) -> nn.Linear:
        """One ``nn.Linear`` computing the same function (W + scale * B A), for export."""
        layer = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                          device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        return layer


def add_lora(model: nn.Module, where: Callable[[str], bool], rank: int,
             network_alpha: float | None = None) -> list[str]:
    """Replace every ``nn.Linear`` of ``model`` whose qualified name passes ``where`` by a ``LoRALinear``.

    Returns the replaced names (sorted). Raises ``ValueError`` when none matches, so a filter
    that misses its layers cannot pass silently.
    """
    names = sorted(name for name, module in model.named_modules() if isinstance(module, nn.Linear) and where(name))
    if not names:
        raise ValueError("add_lora: no nn.Linear of the model matches the filter")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, network_alpha))
    return names


def merge_lora(model: nn.Module) -> int:
    """Fold every ``LoRALinear`` of ``model`` back into a plain ``nn.Linear``; returns how many."""
    names = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).merged())
    return len(names)
