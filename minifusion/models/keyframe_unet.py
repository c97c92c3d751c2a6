"""Keyframe U-Net: the T2I U-Net plus temporal layers, in FusionFrames' four variants.

FusionFrames (arXiv 2311.13073, section 3.1, Table 1) freezes the text-to-image U-Net and trains
only added temporal parts. ``temporal`` picks how they are added:

- ``"conv1d_attn1d_layers"`` (mixed, "temporal layers"): a temporal 3x1x1 conv after each of the
  two 3x3 convs *inside* every residual block (at its hidden width), and a per-pixel temporal
  attention *inside* every self-attention block, right after the spatial attention;
- ``"conv1d_attn1d_blocks"`` (separate "temporal blocks", the released Kandinsky Video 1.0): a
  temporal 3x1x1 conv block after every residual block and a temporal attention block after
  every self-attention block;
- ``"conv3d_attn1d_blocks"``: as above, the conv block being 3x3x3 between width-shrinking linear
  layers (parameter count within 25% of the 3x1x1 block's);
- ``"conv1d_attn3d_blocks"``: as the released model, attention inside 2x2-pixel x all-frame
  windows instead of per pixel.

Every temporal part is a residual branch with a zero-initialised output layer, so at init the
model *is* the T2I U-Net applied to each frame.

Frame positions. Each frame's source position (index in the source video; floats allowed) goes
through a sinusoid + MLP (``frame_position_embedding``). Its output is added to the time
embedding (which already holds the pooled text) to give a per-frame embedding (B, F, E) that
conditions the GroupNorms of the temporal parts only. The spatial layers see the plain time
embedding, so they stay exactly the frozen T2I layers. (The paper adds the frame embedding to
the temporal blocks' conditioning; where exactly is not stated, this is our reading.)

Text for the temporal parts. With ``temporal_text_pooling`` (the default) the temporal parts also
get their own, trainable attention-pooled summary of the text tokens (``temporal_text_embedding``)
added to that per-frame embedding. The reason is measured, not assumed: our toy text encoder is
trained with the T2I model on single frames, where a direction word changes nothing, so it
learns to ignore it - with the shipped encoder, changing the direction word moves the U-Net's
frozen pooled text about 35x less than changing the colour (notebook 08, section 3). The frozen spatial
pooling then hands the temporal parts almost no direction signal and they cannot learn to
move as prompted. The paper's frozen encoder is a large pretrained language model that already
separates such words; a trainable pooling is the small-scale stand-in. It is a new (temporal)
parameter, so the spatial layers and the text encoder stay frozen.

Full spatio-temporal attention (``spatiotemporal_attention_size``, off by default). A departure
from the paper's four variants for the toy scale: at the low-resolution levels the temporal
attention becomes attention over every pixel of every keyframe, with a code of each token's frame
and pixel (``SpatioTemporalAttention``). The per-pixel parts cannot place or move an object (their
norm's text scale and shift is the same at every pixel); see docs/motion.md for the measurements.

Per-token text in the temporal parts (``temporal_text_attention_size``, off by default). Another
departure, "the words where motion is made": after each spatial cross-attention layer
at the low-resolution levels, a zero-initialised ``TemporalTextAttention`` whose queries know each
token's frame and pixel, so a direction word can say where the object is in each keyframe.

Shapes: ``sample`` (B, C, F, H, W) -> (B, C_out, F, H, W). Spatial layers run on the frames
folded into the batch, ``rearrange(x, "b c f h w -> (b f) c h w")``; temporal layers on the
video. Frames of different videos never mix.

Taught in notebooks 07 and 08 (notebooks/07_temporal_layers_vs_blocks.ipynb, notebooks/08_keyframes.ipynb).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from minifusion.checks import check_int
from minifusion.models.unet import UNet, UNetConfig, _Conditioning
from minifusion.nn import (
    AttentionBlock,
    AttentionPooling,
    BottleneckResBlock,
    FramePositionEmbedding,
    MotionBiasedAttention,
    SpatioTemporalAttention,
    TemporalAttention,
    TemporalConv1d,
    TemporalConv3d,
    TemporalResidual,
    TemporalTextAttention,
    WindowedTemporalAttention,
)

TEMPORAL_VARIANTS = ("conv1d_attn1d_layers", "conv1d_attn1d_blocks", "conv3d_attn1d_blocks", "conv1d_attn3d_blocks")
TEMPORAL_PREFIXES = ("temporal_blocks.", "frame_position_embedding.", "temporal_text_embedding.")


def check_temporal(temporal: str) -> None:
    if temporal not in TEMPORAL_VARIANTS:
        raise ValueError(f"temporal {temporal!r} is not one of " + ", ".join(map(repr, TEMPORAL_VARIANTS)))


def is_temporal_parameter(name: str) -> bool:
    """Names of temporal parts: temporal blocks, temporal layers inside blocks, the frame embedding."""
    return name.startswith(TEMPORAL_PREFIXES) or ".temporal_layers." in name


@dataclass
class KeyframeUNetConfig(UNetConfig):
    temporal: str = "conv1d_attn1d_blocks"  # one of TEMPORAL_VARIANTS
    temporal_head_dim: int | None = None  # channels per temporal-attention head; None = attention_head_dim
    attention_window: int = 2  # window side of "conv1d_attn3d_blocks" attention (window x window x F)
    num_frames: int = 8  # frames used by example_inputs()
    temporal_text_pooling: bool = True  # temporal parts get their own trainable pooled text (docstring)
    # the attention-variant's temporal attention becomes full spatio-temporal attention (SpatioTemporalAttention)
    # at the levels whose feature maps are at most this many pixels on a side; 0 = never (the paper's variants)
    spatiotemporal_attention_size: int = 0
    # a TemporalTextAttention (per-token text, queries that know frame and pixel) after every spatial
    # cross-attention layer at the levels at most this many pixels on a side; 0 = never (the paper's variants)
    temporal_text_attention_size: int = 0
    # the spatio-temporal attention gets a text-conditioned relative-position bias (MotionBiasedAttention)
    spatiotemporal_motion_bias: bool = False
    temporal_text_per_frame: bool = False  # each keyframe reads the text through its embedding (TemporalTextAttention)


class KeyframeUNet(UNet):
    """T2I U-Net + temporal parts; ``KeyframeUNet.from_t2i(unet, temporal=...)`` copies T2I weights."""

    config_class = KeyframeUNetConfig
    legacy_config_defaults = {"temporal_text_pooling": False}  # saved before the field existed

    def __init__(self, config: KeyframeUNetConfig | dict | None = None):
        super().__init__(config)
        cfg = self.config
        check_temporal(cfg.temporal)
        for name, what in (("spatiotemporal_attention_size", "full spatio-temporal attention"),
                           ("temporal_text_attention_size", "per-token text attention in the temporal parts")):
            check_int(name, getattr(cfg, name), minimum=0,
                      note=f"(0 = off; N = {what} at levels at most N pixels on a side)")
        for name in ("spatiotemporal_motion_bias", "temporal_text_per_frame"):
            if not isinstance(getattr(cfg, name), bool):
                raise ValueError(f"{name} {getattr(cfg, name)!r} is not allowed; it must be true or false")
        if cfg.spatiotemporal_motion_bias and not cfg.spatiotemporal_attention_size:
            raise ValueError("spatiotemporal_motion_bias needs spatiotemporal_attention_size > 0 (the bias is added "
                             "to the full spatio-temporal attention)")
        self.frame_position_embedding = FramePositionEmbedding(
            cfg.block_out_channels[0] + cfg.block_out_channels[0] % 2, self.time_embed_dim
        )
        if cfg.temporal_text_pooling:
            self.temporal_text_embedding = AttentionPooling(
                self.time_embed_dim, cfg.cross_attention_dim, head_dim=cfg.attention_head_dim
            )
        self._add_temporal_parts()

    # -- construction ------------------------------------------------------------------------
    def _conv(self, width: int) -> nn.Module:
        cfg, kind = self.config, self.config.temporal
        cls = TemporalConv3d if kind.startswith("conv3d") else TemporalConv1d
        return TemporalResidual(cls(width, norm_groups=cfg.norm_groups, embed_dim=self.time_embed_dim))

    def _attention(self, width: int, level: int = 0) -> nn.Module:  # level 0 = full resolution
        cfg = self.config
        kwargs = dict(head_dim=cfg.temporal_head_dim or cfg.attention_head_dim, norm_groups=cfg.norm_groups,
                      embed_dim=self.time_embed_dim)
        if cfg.spatiotemporal_attention_size and (cfg.sample_size >> level) <= cfg.spatiotemporal_attention_size:
            if cfg.spatiotemporal_motion_bias:
                return TemporalResidual(MotionBiasedAttention(width, cfg.cross_attention_dim, **kwargs))
            return TemporalResidual(SpatioTemporalAttention(width, **kwargs))
        if cfg.temporal == "conv1d_attn3d_blocks":
            return TemporalResidual(WindowedTemporalAttention(width, window=cfg.attention_window, **kwargs))
        return TemporalResidual(TemporalAttention(width, **kwargs))

    def _add_temporal_parts(self) -> None:
        inside = self.config.temporal == "conv1d_attn1d_layers"
        for key, index, level in self.named_levels():
            for j, layer in enumerate(level.layers):
                if isinstance(layer, BottleneckResBlock):
                    if inside:  # after each of the two 3x3 convs, at the hidden width
                        for i in (1, 2):
                            layer.temporal_layers[str(i)] = self._conv(layer.hidden_channels)
                    else:
                        self.temporal_blocks[f"{key}_{j}"] = self._conv(layer.out_channels)
                elif isinstance(layer, AttentionBlock) and not layer.is_cross_attention:
                    if inside:
                        layer.temporal_layers["attention"] = self._attention(layer.channels, index)
                    else:
                        self.temporal_blocks[f"{key}_{j}"] = self._attention(layer.channels, index)
                elif isinstance(layer, AttentionBlock) and self._has_text_attention(index):
                    self.temporal_blocks[f"{key}_{j}"] = self._text_attention(layer.channels)

    def _has_text_attention(self, level: int) -> bool:
        size = self.config.temporal_text_attention_size
        return bool(size) and (self.config.sample_size >> level) <= size

    def _text_attention(self, width: int) -> nn.Module:
        cfg = self.config
        return TemporalResidual(TemporalTextAttention(
            width, cfg.cross_attention_dim, head_dim=cfg.temporal_head_dim or cfg.attention_head_dim,
            norm_groups=cfg.norm_groups, embed_dim=self.time_embed_dim, frame_text=cfg.temporal_text_per_frame))

    @classmethod
    def from_t2i(cls, unet: UNet, temporal: str = "conv1d_attn1d_blocks", **config_overrides) -> KeyframeUNet:
        """A keyframe model whose spatial weights are a copy of ``unet``'s.

        ``config_overrides`` sets the new config fields (``temporal_head_dim``, ``num_frames``, ...).
        """
        check_temporal(temporal)
        base = {f.name: getattr(unet.config, f.name) for f in dataclasses.fields(UNetConfig)}
        model = cls(cls.config_class(**{**base, "temporal": temporal, **config_overrides}))
        param = next(unet.parameters())
        model.to(device=param.device, dtype=param.dtype)
        model.load_spatial_state_dict(model.adapt_t2i_state_dict(unet.state_dict()))
        return model

    def adapt_t2i_state_dict(self, state: dict) -> dict:
        """Hook for subclasses whose inputs differ from the T2I model's (e.g. widened conv_in)."""
        return dict(state)

    def load_spatial_state_dict(self, state: dict) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        spatial_missing = [k for k in missing if not self.is_new_parameter(k)]
        if spatial_missing or unexpected:
            raise ValueError(f"T2I weights do not fit: missing {spatial_missing[:5]}, unexpected {unexpected[:5]}")

    def is_new_parameter(self, name: str) -> bool:
        """Parameters the T2I model does not have (trainable after ``freeze_spatial()``)."""
        return is_temporal_parameter(name)

    # -- training helpers --------------------------------------------------------------------
    def temporal_parameters(self) -> list[nn.Parameter]:
        """The parameters that `freeze_spatial()` leaves trainable (see `is_new_parameter`)."""
        return [p for n, p in self.named_parameters() if self.is_new_parameter(n)]

    def freeze_spatial(self) -> KeyframeUNet:
        """Only the temporal parts (and frame-position embedding) stay trainable."""
        for name, p in self.named_parameters():
            p.requires_grad_(self.is_new_parameter(name))
        return self

    # -- forward -----------------------------------------------------------------------------
    def check_video_sample(self, sample: torch.Tensor) -> None:
        self.check_sample(sample, video=True)
        if self.config.temporal == "conv1d_attn3d_blocks":
            w, h = self.config.attention_window, sample.shape[-2:]
            for i, has_attention in enumerate(self.attention_levels):
                if has_attention and ((h[0] >> i) % w or (h[1] >> i) % w):
                    raise ValueError(
                        f"windowed temporal attention needs height and width / 2^{i} divisible by the window "
                        f"{w} at level {i}, got shape {tuple(sample.shape)}"
                    )

    @staticmethod
    def batch_frame_positions(frame_positions, batch: int, frames: int, device: torch.device) -> torch.Tensor:
        """None (0, 1, ..., F-1), (F,) or (B, F) -> (B, F) float positions."""
        if frame_positions is None:
            return torch.arange(frames, device=device, dtype=torch.float32).expand(batch, frames)
        pos = torch.as_tensor(frame_positions, device=device)
        if pos.ndim == 1:
            pos = pos.expand(batch, -1)
        if pos.shape != (batch, frames) or pos.dtype == torch.bool:
            raise ValueError(f"frame_positions must be (F,) or (B, F) = ({batch}, {frames}), got shape "
                             f"{tuple(torch.as_tensor(frame_positions).shape)}")
        return pos.to(torch.float32)

    def forward_video(
        self,
        sample: torch.Tensor,
        temb: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None,
        frame_positions: torch.Tensor | None,
    ) -> torch.Tensor:
        """sample (B, C, F, H, W), temb (B, E), context (B, L, D) -> (B, C_out, F, H, W)."""
        b, _, f, _, _ = sample.shape
        pos = self.batch_frame_positions(frame_positions, b, f, sample.device)
        temporal_emb = temb[:, None, :] + self.frame_position_embedding(pos).to(temb.dtype)  # (B, F, E)
        if self.config.temporal_text_pooling:
            temporal_emb = temporal_emb + self.temporal_text_embedding.pool(context, context_mask)[:, None, :]
        cond = _Conditioning(
            repeat(temb, "b e -> (b f) e", f=f),
            repeat(context, "b l d -> (b f) l d", f=f),
            None if context_mask is None else repeat(context_mask, "b l -> (b f) l", f=f),
            num_frames=f,
            temporal_emb=temporal_emb,
        )
        out = self.forward_folded(rearrange(sample, "b c f h w -> (b f) c h w"), cond)
        return rearrange(out, "(b f) c h w -> b c f h w", f=f)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        frame_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the training target for a batch of noisy keyframe latents.

        Args:
            sample: (B, in_channels, F, H, W) noisy keyframe latents.
            timestep: a number or (B,) diffusion timesteps (one per video).
            encoder_hidden_states: (B, L, cross_attention_dim) text tokens.
            encoder_attention_mask: (B, L), True / 1 = real token.
            frame_positions: (B, F) or (F,) source-frame index of each keyframe (e.g. 0, 4, 8, ...
                for keyframes every 4th source frame); None = 0, 1, ..., F-1.

        Returns:
            (B, out_channels, F, H, W).
        """
        self.check_video_sample(sample)
        b = sample.shape[0]
        self.check_text(encoder_hidden_states, b)
        t = self.batch_timesteps(timestep, b, sample.device)
        temb = self.embed(t, encoder_hidden_states, encoder_attention_mask)
        return self.forward_video(sample, temb, encoder_hidden_states, encoder_attention_mask, frame_positions)

    def example_inputs(self) -> tuple[tuple, dict, int]:
        cfg = self.config
        p = next(self.parameters())
        s, f = cfg.sample_size, cfg.num_frames
        sample = torch.zeros(1, cfg.in_channels, f, s, s, device=p.device, dtype=p.dtype)
        text = torch.zeros(1, cfg.text_length, cfg.cross_attention_dim, device=p.device, dtype=p.dtype)
        return (sample, torch.tensor([500.0], device=p.device), text), {}, f
