"""Text-to-image U-Net in the style of Kandinsky 3.0 (the image model FusionFrames starts from).

FusionFrames (arXiv 2311.13073, section 3) builds its video models on Kandinsky 3.0's U-Net
(Arkhipkin et al. 2023). Its features, kept here at toy scale:

- bottleneck residual blocks (convs 1, 3, 3, 1, half-width hidden), ``minifusion.nn.resnet``;
- every GroupNorm is conditional: scale and shift from the time embedding through a
  zero-initialised linear layer;
- the time embedding is a sinusoid + MLP *plus an attention-pooled summary of the text*;
- self-attention and text cross-attention blocks only below the top (full-resolution) level;
- one skip connection per level (concatenated at the start of the matching up level); the
  bottom level has no resampling and plays the role of the middle block.

Layout for ``block_out_channels = (32, 64, 128)`` and 16x16 latents::

    conv_in 4->32 | down 0 (16x16): res          | skip | downsample
                  | down 1 (8x8):   res, self, cross | skip | downsample
                  | down 2 (4x4):   res, self, cross
                  | up 2   (4x4):   res, self, cross                 | upsample
                  | up 1   (8x8):   cat skip, res, self, cross       | upsample
                  | up 0   (16x16): cat skip, res                    | norm, SiLU, conv_out 32->4

(each "res[, self, cross]" repeated ``layers_per_block`` times.)

Shapes: ``sample`` (B, C, H, W) images, or videos (B, C, F, H, W) whose frames are folded into
the batch (the text is repeated per frame); the output has the input's shape.
``prediction_type`` is only recorded: the network output is the same tensor whatever the
training target (epsilon, v or x0) was.

Taught in notebooks 05 and 06 (notebooks/05_unet_blocks.ipynb, notebooks/06_text_to_image.ipynb).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from minifusion.checks import check_one_of, positive_int
from minifusion.models.modeling_utils import ModelMixin, check_dtype
from minifusion.nn import (
    AttentionBlock,
    AttentionPooling,
    BottleneckResBlock,
    Downsample,
    TimestepEmbedding,
    Upsample,
    apply_to_frames,
    group_norm,
)

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass
class UNetConfig:
    in_channels: int = 4  # channels of the input latents
    out_channels: int = 4  # channels of the prediction
    block_out_channels: tuple[int, ...] = (32, 64, 128)  # width of each level, top (full resolution) first
    layers_per_block: int = 2  # residual blocks per level (each followed by attention below the top)
    attention_levels: tuple[bool, ...] | None = None  # per level; None = all but the top (Kandinsky 3.0)
    cross_attention_dim: int = 128  # width of the text tokens (encoder_hidden_states)
    attention_head_dim: int = 32  # channels per attention head (the number of heads is width // this)
    time_embed_dim: int | None = None  # time-embedding width; None = 4 * block_out_channels[0]
    norm_groups: int = 8  # GroupNorm groups (must divide every width and half of it)
    compression_ratio: int = 2  # residual-block hidden width = width // compression_ratio
    expansion_ratio: int = 4  # attention-block feed-forward width = width * expansion_ratio
    prediction_type: str = "epsilon"  # training target, recorded: "epsilon", "v_prediction" or "sample"
    sample_size: int = 16  # latent height = width used by example_inputs()
    text_length: int = 8  # text tokens used by example_inputs()


def _call(fn, *args):
    return fn(*args)


class _Level(nn.Module):
    """One resolution of the U-Net: a list of layers and an optional resampler at the end."""

    def __init__(self, layers: list[nn.Module], resample: nn.Module | None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.resample = resample if resample is not None else nn.Identity()


@dataclass
class _Conditioning:
    """What every layer may need, for N = B * num_frames folded images."""

    time_embed: torch.Tensor  # (N, E)
    context: torch.Tensor | None  # (N, L, D)
    context_mask: torch.Tensor | None  # (N, L)
    num_frames: int = 1
    temporal_emb: torch.Tensor | None = None  # (B, E) or (B, F, E), for temporal layers


class UNet(ModelMixin):
    """Kandinsky 3.0-style text-to-image U-Net (see the module docstring for the layout).

    ``UNet()`` builds the toy default (about 5M parameters); ``UNet(UNetConfig(...))`` any other.
    """

    config_class = UNetConfig

    def __init__(self, config: UNetConfig | dict | None = None):
        super().__init__(config)
        cfg = self.config
        self._check_config(cfg)
        widths = tuple(cfg.block_out_channels)
        attention = self.attention_levels
        embed_dim = self.time_embed_dim
        c0 = widths[0]

        self.conv_in = nn.Conv2d(cfg.in_channels, c0, 3, padding=1)
        self.time_embedding = TimestepEmbedding(c0 + c0 % 2, embed_dim)
        self.add_time_condition = AttentionPooling(embed_dim, cfg.cross_attention_dim, head_dim=cfg.attention_head_dim)

        def res(cin: int, cout: int) -> BottleneckResBlock:
            return BottleneckResBlock(
                cin, cout, embed_dim=embed_dim, norm_groups=cfg.norm_groups, compression_ratio=cfg.compression_ratio
            )

        def attn(width: int, context_dim: int | None) -> AttentionBlock:
            return AttentionBlock(
                width, embed_dim=embed_dim, context_dim=context_dim, head_dim=cfg.attention_head_dim,
                norm_groups=cfg.norm_groups, expansion_ratio=cfg.expansion_ratio,
            )

        def level_layers(cin: int, cout: int, with_attention: bool) -> list[nn.Module]:
            layers: list[nn.Module] = []
            for j in range(cfg.layers_per_block):
                layers.append(res(cin if j == 0 else cout, cout))
                if with_attention:
                    layers += [attn(cout, None), attn(cout, cfg.cross_attention_dim)]
            return layers

        last = len(widths) - 1
        self.down_blocks = nn.ModuleList()
        cin = c0
        for i, width in enumerate(widths):
            self.down_blocks.append(_Level(level_layers(cin, width, attention[i]), Downsample(width) if i < last else None))
            cin = width
        self.up_blocks = nn.ModuleList()  # bottom level first
        for i in reversed(range(len(widths))):
            skip = widths[i] if i < last else 0
            below = widths[i + 1] if i < last else widths[i]
            self.up_blocks.append(
                _Level(level_layers(below + skip, widths[i], attention[i]), Upsample(widths[i]) if i > 0 else None)
            )
        self.conv_norm_out = group_norm(cfg.norm_groups, c0)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(c0, cfg.out_channels, 3, padding=1)
        # Video models put temporal blocks here, keyed "down_i_j" / "up_i_j" (level i, after layer j);
        # empty for the image model, so its weights are exactly the T2I weights.
        self.temporal_blocks = nn.ModuleDict()
        self.gradient_checkpointing = False  # enable_gradient_checkpointing(): recompute each layer in backward

    # -- configuration -----------------------------------------------------------------------
    @staticmethod
    def _check_config(cfg: UNetConfig) -> None:
        check_one_of("prediction_type", cfg.prediction_type, PREDICTION_TYPES)
        widths = cfg.block_out_channels
        if not isinstance(widths, tuple) or not widths:
            raise ValueError(f"block_out_channels must be a non-empty tuple of ints, got {widths!r}")
        for name in ("in_channels", "out_channels", "layers_per_block", "cross_attention_dim",
                     "attention_head_dim", "norm_groups", "compression_ratio", "expansion_ratio",
                     "sample_size", "text_length"):
            positive_int(name, getattr(cfg, name))
        for w in widths:
            positive_int("block_out_channels entry", w)
        if cfg.attention_levels is not None and len(cfg.attention_levels) != len(widths):
            raise ValueError(
                f"attention_levels {cfg.attention_levels!r} must have one entry per level ({len(widths)})"
            )

    @property
    def attention_levels(self) -> tuple[bool, ...]:
        n = len(self.config.block_out_channels)
        levels = self.config.attention_levels
        return tuple(bool(a) for a in levels) if levels is not None else tuple(i > 0 for i in range(n))

    @property
    def time_embed_dim(self) -> int:
        return self.config.time_embed_dim or 4 * self.config.block_out_channels[0]

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def named_levels(self):
        """(key prefix, level index, _Level) for every level, down path then up path."""
        n = len(self.config.block_out_channels)
        for i, level in enumerate(self.down_blocks):
            yield f"down_{i}", i, level
        for k, level in enumerate(self.up_blocks):
            yield f"up_{n - 1 - k}", n - 1 - k, level

    # -- input checks ------------------------------------------------------------------------
    def check_sample(self, sample: torch.Tensor, *, video: bool | None = None) -> None:
        """Rank, channels and spatial size (divisible by the down-sampling factor)."""
        ranks = {None: (4, 5), True: (5,), False: (4,)}[video]
        names = {4: "(B, C, H, W)", 5: "(B, C, F, H, W)"}
        if not torch.is_tensor(sample) or sample.ndim not in ranks:
            shape = tuple(sample.shape) if torch.is_tensor(sample) else type(sample).__name__
            raise ValueError(f"sample must be {' or '.join(names[r] for r in ranks)}, got shape {shape}")
        check_dtype("sample", sample, self.conv_in.weight.dtype)
        if sample.shape[1] != self.config.in_channels:
            raise ValueError(
                f"sample has {sample.shape[1]} channels, the model takes {self.config.in_channels}: "
                f"got shape {tuple(sample.shape)}"
            )
        f = self.downsample_factor
        if sample.shape[-1] % f or sample.shape[-2] % f:
            raise ValueError(
                f"height and width must be divisible by the down-sampling factor {f}, got shape {tuple(sample.shape)}"
            )

    @staticmethod
    def batch_values(value, name: str, batch: int, device: torch.device) -> torch.Tensor:
        """One number per video: a number, 0-d tensor or (B,) tensor -> (B,) float32 tensor."""
        v = torch.as_tensor(value, device=device)
        if v.ndim == 0:
            v = v.expand(batch)
        if v.shape != (batch,) or v.dtype == torch.bool or v.is_complex():
            raise ValueError(f"{name} must be a real number or a ({batch},) tensor, got shape {tuple(v.shape)}")
        v = v.to(torch.float32)
        if v.device.type != "meta" and not bool(torch.isfinite(v).all()):  # meta: shapes only (FLOP counts)
            raise ValueError(f"{name} must be finite, got {v.tolist()}")
        return v

    def batch_timesteps(self, timestep, batch: int, device: torch.device) -> torch.Tensor:
        return self.batch_values(timestep, "timestep", batch, device)

    def check_text(self, encoder_hidden_states: torch.Tensor, batch: int) -> None:
        d = self.config.cross_attention_dim
        if not torch.is_tensor(encoder_hidden_states) or encoder_hidden_states.ndim != 3 or \
                encoder_hidden_states.shape[0] != batch or encoder_hidden_states.shape[2] != d:
            shape = tuple(encoder_hidden_states.shape) if torch.is_tensor(encoder_hidden_states) else None
            raise ValueError(f"encoder_hidden_states must be (B, L, {d}) with B = {batch}, got shape {shape}")

    # -- forward -----------------------------------------------------------------------------
    def embed(
        self,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B,) timesteps + text (B, L, D) -> time embedding with the pooled text, (B, E)."""
        temb = self.time_embedding(timestep).to(encoder_hidden_states.dtype)
        return self.add_time_condition(temb, encoder_hidden_states, encoder_attention_mask)

    def _run_layer(self, layer: nn.Module, h: torch.Tensor, cond: _Conditioning) -> torch.Tensor:
        frames = {"num_frames": cond.num_frames, "temporal_emb": cond.temporal_emb}
        if isinstance(layer, BottleneckResBlock):
            return layer(h, cond.time_embed, **frames)
        return layer(h, cond.time_embed, cond.context, cond.context_mask, **frames)

    def _run_level(self, key: str, level: _Level, h: torch.Tensor, cond: _Conditioning) -> torch.Tensor:
        run = self.run_checkpointed if self.gradient_checkpointing and torch.is_grad_enabled() else _call
        for j, layer in enumerate(level.layers):
            h = run(self._run_layer, layer, h, cond)
            if f"{key}_{j}" in self.temporal_blocks:  # video models: a temporal block after this layer
                block = self.temporal_blocks[f"{key}_{j}"]
                text = ()
                if getattr(block, "takes_text", False):  # per-token text for this temporal part: (B, L, D)
                    f = cond.num_frames
                    text = (cond.context[::f], None if cond.context_mask is None else cond.context_mask[::f])
                h = run(apply_to_frames, block, h, cond.num_frames, cond.temporal_emb, *text)
        return h

    def forward_folded(self, h: torch.Tensor, cond: _Conditioning) -> torch.Tensor:
        """The network on (N, C_in, H, W) with N = B * frames -> (N, C_out, H, W)."""
        h = self.conv_in(h)
        skips = []
        levels = list(self.named_levels())
        n = len(self.down_blocks)
        for key, i, level in levels[:n]:
            h = self._run_level(key, level, h, cond)
            if i < n - 1:
                skips.append(h)
            h = level.resample(h)
        for key, i, level in levels[n:]:
            if i < n - 1:
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run_level(key, level, h, cond)
            h = level.resample(h)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the training target for noisy latents.

        Args:
            sample: (B, in_channels, H, W) images or (B, in_channels, F, H, W) videos (frames run
                independently); H and W divisible by 2 ** (levels - 1).
            timestep: a number or (B,) diffusion timesteps (floats allowed).
            encoder_hidden_states: (B, L, cross_attention_dim) text tokens.
            encoder_attention_mask: (B, L), True / 1 for real tokens, False / 0 for padding.

        Returns:
            (B, out_channels, H, W), or (B, out_channels, F, H, W) for videos.
        """
        self.check_sample(sample)
        batch = sample.shape[0]
        self.check_text(encoder_hidden_states, batch)
        t = self.batch_timesteps(timestep, batch, sample.device)
        temb = self.embed(t, encoder_hidden_states, encoder_attention_mask)  # (B, E)
        if sample.ndim == 4:
            cond = _Conditioning(temb, encoder_hidden_states, encoder_attention_mask)
            return self.forward_folded(sample, cond)
        frames = sample.shape[2]
        cond = _Conditioning(
            repeat(temb, "b e -> (b f) e", f=frames),
            repeat(encoder_hidden_states, "b l d -> (b f) l d", f=frames),
            None if encoder_attention_mask is None else repeat(encoder_attention_mask, "b l -> (b f) l", f=frames),
        )
        out = self.forward_folded(rearrange(sample, "b c f h w -> (b f) c h w"), cond)
        return rearrange(out, "(b f) c h w -> b c f h w", f=frames)

    def example_inputs(self) -> tuple[tuple, dict, int]:
        cfg = self.config
        p = next(self.parameters())
        sample = torch.zeros(1, cfg.in_channels, cfg.sample_size, cfg.sample_size, device=p.device, dtype=p.dtype)
        text = torch.zeros(1, cfg.text_length, cfg.cross_attention_dim, device=p.device, dtype=p.dtype)
        return (sample, torch.tensor([500.0], device=p.device), text), {}, 1


def widen_input_conv(weight: torch.Tensor, in_channels: int, offset: int) -> torch.Tensor:
    """Conv weight (out, c, k, k) -> (out, in_channels, k, k): zeros, old weight at [offset, offset + c).

    How a T2I U-Net's input conv is reused by a model with extra input channels: the new
    channels start with zero weight, so at init they do not change the output.
    """
    out, c = weight.shape[:2]
    if offset < 0 or offset + c > in_channels:
        raise ValueError(f"cannot place {c} input channels at offset {offset} of {in_channels}")
    wide = weight.new_zeros(out, in_channels, *weight.shape[2:])
    wide[:, offset : offset + c] = weight
    return wide
