"""Sinusoidal embeddings of scalars: diffusion timesteps, frame positions, frame skips.

The sinusoid is the Transformer's positional encoding (Vaswani et al. 2017, section 3.5) applied
to a real number v instead of an integer position:

    emb(v)[i]        = sin(v * w_i),   emb(v)[half + i] = cos(v * w_i),   w_i = max_period^(-i / half)

so nearby values get similar codes and any value, integer or not, has one. A two-layer MLP
(linear, SiLU, linear) turns the code into a learned embedding (DDPM, Ho et al. 2020, appendix B;
diffusers' ``Timesteps`` + ``TimestepEmbedding``).

FusionFrames (arXiv 2311.13073, section 3.1) embeds each keyframe's position in the source video
the same way, so the temporal layers know how far apart frames are; positions may be fractional
(targets between source frames).

Taught in notebook 05 (notebooks/05_unet_blocks.ipynb).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minifusion.checks import check_int


def sinusoidal_embedding(values: torch.Tensor, dim: int, *, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal code of real ``values`` of any shape (...,) -> (..., dim), float32.

    Frequencies are computed in float64 (then stored as float32) so large timesteps stay exact.
    """
    if check_int("dim", dim, minimum=2, note="and even") % 2:
        raise ValueError(f"dim {dim} is not allowed; it must be even")
    if not torch.is_tensor(values):
        values = torch.as_tensor(values)
    if values.is_complex() or values.dtype == torch.bool:
        raise ValueError(f"values must be a real tensor, got dtype {values.dtype}")
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float64, device=values.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent).to(torch.float32)  # (half,)
    angles = values.to(torch.float32)[..., None] * freqs  # (..., half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (..., dim)


class TimestepEmbedding(nn.Module):
    """Sinusoidal code + MLP: real values (...,) -> embeddings (..., embed_dim).

    Args:
        num_channels: width of the sinusoidal code (even).
        embed_dim: output width.
        max_period: longest wavelength of the code.
        zero_init: zero the last linear layer so the embedding is 0 at init (for conditioning
            added to an existing embedding without changing the model's output).
    """

    def __init__(self, num_channels: int, embed_dim: int, *, max_period: float = 10000.0, zero_init: bool = False):
        super().__init__()
        if check_int("num_channels", num_channels, minimum=2, note="and even") % 2:
            raise ValueError(f"num_channels {num_channels} is not allowed; it must be even")
        self.num_channels = num_channels
        self.max_period = max_period
        self.linear_1 = nn.Linear(num_channels, embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(embed_dim, embed_dim)
        if zero_init:
            nn.init.zeros_(self.linear_2.weight)
            nn.init.zeros_(self.linear_2.bias)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        code = sinusoidal_embedding(values, self.num_channels, max_period=self.max_period)
        code = code.to(self.linear_1.weight.dtype)
        return self.linear_2(self.act(self.linear_1(code)))


class FramePositionEmbedding(TimestepEmbedding):
    """Embedding of each frame's source position: (B, F) floats -> (B, F, embed_dim).

    Positions are source-frame indices (keyframe i of a clip sampled every s frames sits at
    i * s); fractional positions are allowed.
    """

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(positions) or positions.ndim != 2:
            shape = tuple(positions.shape) if torch.is_tensor(positions) else type(positions).__name__
            raise ValueError(f"frame positions must be a (B, F) tensor, got shape {shape}")
        return super().forward(positions)
