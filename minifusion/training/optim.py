"""The optimiser and its learning-rate schedule: AdamW (Loshchilov and Hutter 2019) with a linear warm-up.

Weight decay applies to matrices and convolution kernels only, not to biases and normalisation
scales (decaying those only pulls them towards 0 without regularising anything); frozen parameters
(``requires_grad=False``) are left out, so the optimiser never holds state for them.
"""

from __future__ import annotations

import torch
from torch import nn

from minifusion.training.config import TrainingConfig


def warmup_lr(step: int, *, lr: float, warmup_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based): ``lr * min(1, (step + 1) / warmup_steps)``."""
    if warmup_steps <= 0:
        return lr
    return lr * min(1.0, (step + 1) / warmup_steps)


def build_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only; weight decay on matrices/kernels, not on biases and norms."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=config.betas,
                             eps=config.adam_eps)
