"""A task turns one micro-batch into a loss; the ``Trainer`` knows nothing else about the model.

Protocol: ``task.loss(model, batch, sample_indices, generators) -> scalar tensor``, where
``generators[j]`` belongs to the sample with global index ``sample_indices[j]``. The loss must
be the **mean over the samples** of the micro-batch (so accumulating A micro-batches of b equals
one batch of A * b), and every random choice must come from the sample's generator, in the same
order for every sample.

``DenoisingTask`` is the plain diffusion objective (Ho et al. 2020, eq. 14, with the epsilon,
v or x0 target of the scheduler's ``prediction_type``) and serves as the example for the
per-stage recipes. ``TinyDenoiser`` is a deliberately small model for tests and demos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from minifusion.models.modeling_utils import ModelMixin
from minifusion.training.randomness import per_sample_bernoulli, per_sample_noise, per_sample_randint


class DenoisingTask:
    """Diffusion loss: x_t = add_noise(x0, eps, t); MSE between model(x_t, t) and the scheduler's target.

    Args:
        scheduler: a ``minifusion.diffusion`` scheduler (``add_noise``, ``training_target``,
            ``num_train_timesteps``).
        sample_key: the batch entry holding x0, (B, C, F, H, W) or (B, C, H, W).
        condition_key: optional batch entry passed to the model as ``condition=`` (a tensor).
        condition_dropout: probability of zeroing a sample's condition (classifier-free guidance training).

    Per sample, in this order: timestep, noise, then (if conditioned) the dropout decision.
    """

    def __init__(self, scheduler, *, sample_key: str = "video", condition_key: str | None = None,
                 condition_dropout: float = 0.0) -> None:
        if not 0.0 <= condition_dropout <= 1.0:
            raise ValueError(f"condition_dropout {condition_dropout!r} is not allowed; it must be in [0, 1]")
        self.scheduler, self.sample_key = scheduler, sample_key
        self.condition_key, self.condition_dropout = condition_key, float(condition_dropout)

    def loss(self, model: nn.Module, batch: dict, sample_indices: list[int],
             generators: list[torch.Generator]) -> torch.Tensor:
        if self.sample_key not in batch:
            raise ValueError(f"batch has no entry {self.sample_key!r}; it has {sorted(batch)}")
        x0 = batch[self.sample_key]
        if x0.shape[0] != len(generators):
            raise ValueError(f"{self.sample_key} has batch size {x0.shape[0]} but {len(generators)} generators "
                             "were given")
        device = x0.device
        t = per_sample_randint(generators, 0, self.scheduler.num_train_timesteps, device=device)  # (B,)
        noise = per_sample_noise(generators, x0.shape[1:], device=device, dtype=x0.dtype)  # like x0
        kwargs = {}
        if self.condition_key is not None:
            cond = batch[self.condition_key]
            drop = per_sample_bernoulli(generators, self.condition_dropout, device=device)  # (B,) bool
            keep = (~drop).to(cond.dtype).reshape(-1, *([1] * (cond.ndim - 1)))
            kwargs["condition"] = cond * keep
        x_t = self.scheduler.add_noise(x0, noise, t)
        target = self.scheduler.training_target(x0, noise, t)
        prediction = model(x_t, t, **kwargs)
        # Mean over all elements = mean over samples of per-sample means (equal sizes).
        return F.mse_loss(prediction.float(), target.float())


@dataclass
class TinyDenoiserConfig:
    in_channels: int = 3  # channels of the sample
    hidden_channels: int = 16  # width of the per-pixel MLP
    condition_dim: int = 0  # size of an optional condition vector (0 = unconditional)
    num_train_timesteps: int = 1000  # timesteps are scaled by this before the sinusoid
    dropout: float = 0.0  # dropout on the hidden features (draws from the global torch RNG)


class TinyDenoiser(ModelMixin):
    """A per-pixel MLP with a timestep (and optional condition) embedding; works on (B, C, F, H, W) or (B, C, H, W).

    Not a useful video model: it exists so trainer tests run in milliseconds with real
    save/load, frozen parts (``freeze_input``) and conditioning.
    """

    config_class = TinyDenoiserConfig

    def __init__(self, config: TinyDenoiserConfig | dict | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.proj_in = nn.Linear(c.in_channels, c.hidden_channels)
        self.time_mlp = nn.Linear(2 * 8, c.hidden_channels)
        self.cond_proj = nn.Linear(c.condition_dim, c.hidden_channels) if c.condition_dim else None
        self.norm = nn.LayerNorm(c.hidden_channels)
        self.dropout = nn.Dropout(c.dropout)
        self.proj_out = nn.Linear(c.hidden_channels, c.in_channels)

    def timestep_features(self, timestep: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(-math.log(1000.0) * torch.arange(8, device=timestep.device) / 8)  # (8,)
        angles = timestep.float()[:, None] / self.config.num_train_timesteps * 1000.0 * freqs  # (B, 8)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, 16)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, *, condition: torch.Tensor | None = None):
        if sample.ndim not in (4, 5) or sample.shape[1] != self.config.in_channels:
            raise ValueError(f"sample has shape {tuple(sample.shape)}; expected (B, {self.config.in_channels}, "
                             "[F,] H, W)")
        spatial = sample.shape[2:]
        x = rearrange(sample, "b c ... -> b (...) c")  # (B, pixels, C)
        h = self.proj_in(x) + self.time_mlp(self.timestep_features(timestep))[:, None]  # (B, pixels, hidden)
        if self.cond_proj is not None and condition is not None:
            h = h + self.cond_proj(condition.float())[:, None]
        out = self.proj_out(self.dropout(F.silu(self.norm(h))))  # (B, pixels, C)
        return rearrange(out, "b n c -> b c n").reshape(sample.shape[0], -1, *spatial)

    def freeze_input(self) -> TinyDenoiser:
        """Freeze ``proj_in`` (to test that frozen parameters stay out of the optimiser)."""
        self.proj_in.requires_grad_(False)
        return self
