"""Training configuration: one dataclass, validated on construction, saved as JSON in the run folder.

Batch vocabulary (used everywhere in ``minifusion.training``):

- ``batch_size``: samples per micro-batch, i.e. per forward/backward pass of the whole run; under
  ``torchrun`` with W processes each takes ``batch_size / W`` of them (``distributed``);
- ``grad_accum_steps``: micro-batches whose gradients are summed before one optimiser step;
- the *global batch* of one optimiser step is ``batch_size * grad_accum_steps`` samples, whatever
  the number of processes. Two runs with the same global batch and seed see the same samples with
  the same noise, so they agree up to float rounding (``minifusion.training.data_order``): one
  process or several, accumulated or not, resumed or not.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from minifusion.checks import check_int, check_number, check_one_of
from minifusion.json_files import read_json_object

MIXED_PRECISION_MODES: tuple[str, ...] = ("no", "bf16", "fp16", "auto")


@dataclass
class TrainingConfig:
    steps: int = 1000  # optimiser steps in the whole run
    batch_size: int = 8  # samples per micro-batch, split evenly over the processes of a torchrun
    grad_accum_steps: int = 1  # micro-batches accumulated per optimiser step
    lr: float = 1e-4  # peak learning rate of AdamW
    weight_decay: float = 0.0  # AdamW decoupled weight decay (matrices and kernels only, not biases/norms)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW moment decay rates
    adam_eps: float = 1e-8  # AdamW denominator epsilon
    warmup_steps: int = 0  # linear warm-up from lr / warmup_steps to lr over this many steps
    max_grad_norm: float = 1.0  # clip the global gradient norm to this (after unscaling); 0 = no clipping
    ema_decay: float = 0.999  # decay of the EMA weights; 0 = no EMA
    ema_warmup: bool = False  # use min(ema_decay, (1 + n) / (10 + n)) for the n-th update
    checkpoint_every: int = 500  # write a checkpoint every N steps (and at the end); 0 = only at the end
    keep_checkpoints: int = 3  # keep the newest K checkpoints, delete older ones
    log_every: int = 10  # write a row of mean loss to log.csv every N steps
    seed: int = 0  # seeds python, numpy, torch and every per-sample generator
    shuffle: bool = True  # visit the dataset in a fresh seeded permutation each epoch
    mixed_precision: str = "auto"  # "no" (fp32), "bf16", "fp16" (with a gradient scaler) or "auto"
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
    max_nan_skips: int = 5  # this many consecutive NaN/inf losses (or gradients) stop the run with an error
    num_workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    world_size: int = 1  # processes; leave at 1: the Trainer reads it from torch.distributed (torchrun)
    rank: int = 0  # this process's rank; leave at 0 (read from torch.distributed like world_size)
    find_unused_parameters: bool = False  # DDP: allow trainable parameters without a gradient in a micro-batch
    progress: bool = True  # show a tqdm progress bar
    plot_loss: bool = True  # redraw loss.png next to log.csv at every checkpoint and at the end
    extra: dict = field(default_factory=dict)  # free-form notes saved with the run (recipe name, ...)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum_steps", "max_nan_skips", "keep_checkpoints", "log_every",
                     "world_size"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_steps", "checkpoint_every", "seed", "num_workers", "rank"):
            check_int(name, getattr(self, name), minimum=0)
        check_number("lr", self.lr, minimum=0, exclusive_minimum=True, finite=False)
        for name in ("weight_decay", "max_grad_norm", "adam_eps"):
            check_number(name, getattr(self, name), minimum=0, finite=False)
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas {self.betas!r} is not allowed; it must be two numbers in [0, 1)")
        self.betas = (float(betas[0]), float(betas[1]))
        if not isinstance(self.ema_decay, (int, float)) or not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay {self.ema_decay!r} is not allowed; it must be in [0, 1) (0 = no EMA)")
        for name in ("find_unused_parameters",):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} {getattr(self, name)!r} is not allowed; it must be true or false")
        check_one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION_MODES)
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device {self.device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.rank >= self.world_size:
            raise ValueError(f"rank {self.rank} is not allowed; it must be in 0..{self.world_size - 1} "
                             f"(world_size {self.world_size})")

    # -- derived ---------------------------------------------------------------------------
    @property
    def global_batch_size(self) -> int:
        """Samples per optimiser step over all processes and micro-batches."""
        return self.batch_size * self.grad_accum_steps

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainingConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainingConfig keys {unknown}; allowed: {sorted(names)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def save(self, path: str | os.PathLike) -> Path:
        from minifusion.models.modeling_utils import atomic_write_bytes

        path = Path(path)
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainingConfig:
        """The config saved in ``path`` (``training_config.json``); a ValueError naming the file if it is broken."""
        return cls.from_dict(read_json_object(path, "training config"))

    def replace(self, **changes) -> TrainingConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
