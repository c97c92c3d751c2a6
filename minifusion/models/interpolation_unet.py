"""FusionFrames interpolation U-Net: the three frames between two keyframes, in one pass.

FusionFrames (arXiv 2311.13073, section 3.2, Fig. 3) turns the T2I U-Net into an interpolator
that works on *pairs* of neighbouring keyframes. One latent per pair stacks along channels::

    [left keyframe (4) | noisy frame 1 (4) | noisy frame 2 (4) | noisy frame 3 (4) | right keyframe (4)]

= 20 channels in, and predicts the three middle frames (v-prediction), 12 channels out. One
pass maps K keyframes to 4K - 3 frames.

Initialisation from the T2I U-Net (``from_t2i``; the paper does not spell it out). A shared trunk
cannot tell three noisy slots apart by copying weights, so the default ``init="slots"`` gives
every noisy slot an input path and every output its own slot from step 0:

- ``conv_in`` is widened; each of the three noisy slots gets the T2I weights divided by 3, so
  the trunk sees the *mean* of the noisy slots through the T2I input conv (when the three slots
  hold one latent, this is exactly the T2I model on it); the keyframes start at zero weight;
- ``conv_out``'s weights and bias are repeated three times (one copy per predicted frame);
- each output k adds ``c_k(t) * (noisy slot k - mean of the slots)`` (``slot_deviation``), with
  c_k(t) a linear map of the time embedding starting at ``SLOT_SKIP_INIT``: the target
  v_k = sqrt(ab) eps_k - sqrt(1 - ab) x_k holds slot k's own noise, which the mean cannot give;
- each output also adds (``blend_path``, on by default) ``e_k(t) * (a_k - mean a) * (right - left)``
  with a_k = k / 4 its place between the keyframes (``blend_deviation``): a linear path from the
  keyframes to the object's shift from the middle frame; e starts at zero, so the init is unchanged;
- ``init="middle"``, the first design (kept for the ablation), gives only the middle slot
  (channels 8..11 of 20) the T2I weights and has no deviation path: the outer slots start with
  no input at all, and at 1500 steps their frames were still speckled while the middle was clean.

Common to both:

- a 3x1x1 temporal conv follows every conv of every residual block, merged as
  ``(1 - alpha) * spatial + alpha * (spatial + conv(spatial))`` with a learned scalar alpha
  starting at 0. Its time axis is the sequence of keyframe *pairs of one video*: input
  (B, 20, P, H, W) with P = K - 1 pairs, folded to (B*P, 20, H, W) for the spatial layers;
- embeddings of the frame skip ``s`` (distance in source frames between the two keyframes)
  and of the keyframes' perturbation level ``t_p`` ("conditional frame perturbation": noise
  added to the conditioning keyframes at training, 0 at inference) are added to the time
  embedding; their last layers are zero-initialised, so init equals T2I;
- no text: the cross-attention and the attention pooling see only ``null_encoder_hidden_states``,
  a learned (1, L, cross_attention_dim) parameter, zeros at init (a caller may copy the text
  encoder's null embedding into it).

Taught in notebook 09 (notebooks/09_interpolation.ipynb).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from minifusion.checks import positive_int
from minifusion.models.unet import UNet, UNetConfig, _Conditioning, widen_input_conv
from minifusion.nn import AlphaMergedTemporal, BottleneckResBlock, TemporalConv1d, TimestepEmbedding

NEW_PREFIXES = ("skip_embedding.", "perturbation_embedding.", "null_encoder_hidden_states", "conv_in.", "conv_out.",
                "slot_skip.", "blend_path.")
INITS = ("slots", "middle")
SLOT_SKIP_INIT = 0.5  # c(t) at init, for every t (the trained c(t) is a function of the time embedding)


@dataclass
class InterpolationUNetConfig(UNetConfig):
    in_channels: int = 20  # [left keyframe, frames_per_pair noisy latents, right keyframe] latents
    out_channels: int = 12  # frames_per_pair predicted latents
    frames_per_pair: int = 3  # frames generated between two keyframes
    null_context_length: int = 1  # tokens L of the learned null text embedding
    prediction_type: str = "v_prediction"  # training target (recorded)
    num_pairs: int = 7  # keyframe pairs used by example_inputs() (8 keyframes)
    slot_skip: bool = False  # each output adds c(t) * (its noisy slot - the slots' mean); see from_t2i(init="slots")
    blend_path: bool = False  # each output adds e(t) * (its place in the keyframe blend - the mean place); zero at init


class InterpolationUNet(UNet):
    """Predicts the ``frames_per_pair`` latents between each pair of keyframes (see module docstring)."""

    config_class = InterpolationUNetConfig

    def __init__(self, config: InterpolationUNetConfig | dict | None = None):
        super().__init__(config)
        cfg = self.config
        n = cfg.frames_per_pair
        if cfg.out_channels % positive_int("frames_per_pair", n):
            raise ValueError(f"frames_per_pair {n} does not divide out_channels {cfg.out_channels}")
        latent = cfg.out_channels // n
        if cfg.in_channels != latent * (n + 2):
            raise ValueError(
                f"in_channels {cfg.in_channels} must be {latent * (n + 2)}: two keyframes and {n} noisy "
                f"latents of {latent} channels"
            )
        c0, embed_dim = cfg.block_out_channels[0], self.time_embed_dim
        self.skip_embedding = TimestepEmbedding(c0 + c0 % 2, embed_dim, zero_init=True)
        self.perturbation_embedding = TimestepEmbedding(c0 + c0 % 2, embed_dim, zero_init=True)
        self.null_encoder_hidden_states = nn.Parameter(torch.zeros(1, cfg.null_context_length, cfg.cross_attention_dim))
        if cfg.slot_skip:  # c_k(t) per noisy slot, from the time embedding: zero weights, bias set by from_t2i
            self.slot_skip = nn.Linear(embed_dim, n)
            nn.init.zeros_(self.slot_skip.weight)
            nn.init.zeros_(self.slot_skip.bias)
        if cfg.blend_path:  # e_k(t) per output, from the time embedding: zero at init (the output is unchanged)
            self.blend_path = nn.Linear(embed_dim, n)
            nn.init.zeros_(self.blend_path.weight)
            nn.init.zeros_(self.blend_path.bias)
        for _, _, level in self.named_levels():
            for layer in level.layers:
                if isinstance(layer, BottleneckResBlock):
                    for i, width in enumerate(layer.conv_widths()):
                        conv = TemporalConv1d(width, norm_groups=cfg.norm_groups, zero_init=False)
                        layer.temporal_layers[str(i)] = AlphaMergedTemporal(conv)

    @property
    def latent_channels(self) -> int:
        return self.config.out_channels // self.config.frames_per_pair

    @property
    def inherited_input_channels(self) -> tuple[int, int]:
        """[start, stop) of the input channels that inherit the T2I input conv (the middle noisy frame)."""
        start = self.latent_channels * (1 + self.config.frames_per_pair // 2)
        return start, start + self.latent_channels

    # -- initialisation from the T2I model -----------------------------------------------------
    @classmethod
    def from_t2i(cls, unet: UNet, *, init: str = "slots", blend_path: bool | None = None,
                 **config_overrides) -> InterpolationUNet:
        """Copy ``unet``'s weights into an interpolator (module docstring: the two ``init`` designs).

        ``init="slots"``: every noisy slot gets the T2I input weights / n (the trunk sees their mean)
        and the per-slot deviation path starts at c = ``SLOT_SKIP_INIT``; ``"middle"``: only the middle
        slot gets them (the first design, kept for the ablation). conv_out is repeated per frame.
        """
        if init not in INITS:
            raise ValueError(f"init {init!r} must be one of {INITS}")
        blend_path = init == "slots" if blend_path is None else blend_path
        base = {f.name: getattr(unet.config, f.name) for f in dataclasses.fields(UNetConfig)}
        base.pop("prediction_type")
        n = config_overrides.get("frames_per_pair", 3)
        latent = unet.config.in_channels
        if unet.config.out_channels != latent:
            raise ValueError(f"the T2I U-Net must predict its input: in {latent}, out {unet.config.out_channels}")
        base.update(in_channels=latent * (n + 2), out_channels=latent * n, slot_skip=init == "slots",
                    blend_path=bool(blend_path))
        model = cls(cls.config_class(**{**base, **config_overrides}))
        param = next(unet.parameters())
        model.to(device=param.device, dtype=param.dtype)
        state = dict(unet.state_dict())
        weight = state["conv_in.weight"]  # (C0, 4, 3, 3)
        if init == "slots":  # [0 | W/n | W/n | W/n | 0]: the keyframes start at zero weight
            state["conv_in.weight"] = torch.cat([torch.zeros_like(weight), *[weight / n] * n,
                                                 torch.zeros_like(weight)], dim=1)
        else:
            start, _ = model.inherited_input_channels
            state["conv_in.weight"] = widen_input_conv(weight, model.config.in_channels, start)
        state["conv_out.weight"] = state["conv_out.weight"].repeat(n, 1, 1, 1)  # (n * 4, C0, 3, 3)
        state["conv_out.bias"] = state["conv_out.bias"].repeat(n)
        missing, unexpected = model.load_state_dict(state, strict=False)
        spatial_missing = [k for k in missing if not model.is_new_parameter(k)]  # conv_in/out were loaded
        if spatial_missing or unexpected:
            raise ValueError(f"T2I weights do not fit: missing {spatial_missing[:5]}, unexpected {unexpected[:5]}")
        if model.config.slot_skip:
            with torch.no_grad():
                model.slot_skip.bias.fill_(SLOT_SKIP_INIT)
        return model

    def is_new_parameter(self, name: str) -> bool:
        """Parameters not copied as they are from the T2I model: temporal convs, alphas, s / t_p
        embeddings, null text, and the reshaped conv_in / conv_out."""
        return ".temporal_layers." in name or name.startswith(NEW_PREFIXES)

    def temporal_parameters(self) -> list[nn.Parameter]:
        """The parameters that `freeze_spatial()` leaves trainable (see `is_new_parameter`)."""
        return [p for n, p in self.named_parameters() if self.is_new_parameter(n)]

    def freeze_spatial(self) -> InterpolationUNet:
        """Only the new parts stay trainable. (FusionFrames trains the whole interpolator; this is
        for experiments.)"""
        for name, p in self.named_parameters():
            p.requires_grad_(self.is_new_parameter(name))
        return self

    # -- forward -------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        *,
        frame_skip: torch.Tensor | float,
        perturbation_level: torch.Tensor | float = 0,
    ) -> torch.Tensor:
        """Predict v for the middle frames of every keyframe pair.

        Args:
            sample: (B, 20, P, H, W): per pair [left keyframe, 3 noisy latents, right keyframe]
                along channels, P pairs of one video along the third axis.
            timestep: a number or (B,) diffusion timesteps of the noisy latents.
            frame_skip: a number or (B,): source frames between the two keyframes of a pair.
            perturbation_level: a number or (B,): noise level t_p of the conditioning keyframes
                (0 at inference).

        Returns:
            (B, 12, P, H, W): the three predicted latents of each pair along channels.
        """
        self.check_sample(sample, video=True)
        b, _, p, _, _ = sample.shape
        t = self.batch_timesteps(timestep, b, sample.device)
        s = self.batch_values(frame_skip, "frame_skip", b, sample.device)
        tp = self.batch_values(perturbation_level, "perturbation_level", b, sample.device)
        context = self.null_encoder_hidden_states.repeat(b, 1, 1)  # (B, L, D); a copy, not a view of the parameter
        temb = self.embed(t, context) + self.skip_embedding(s) + self.perturbation_embedding(tp)  # (B, E)
        cond = _Conditioning(
            repeat(temb, "b e -> (b p) e", p=p), repeat(context, "b l d -> (b p) l d", p=p), None, num_frames=p
        )
        out = self.forward_folded(rearrange(sample, "b c p h w -> (b p) c h w"), cond)
        out = rearrange(out, "(b p) c h w -> b c p h w", p=p)  # (B, n * C, P, H, W)
        if self.config.slot_skip:
            out = out + self.slot_deviation(sample, temb)
        if self.config.blend_path:
            out = out + self.blend_deviation(sample, temb)
        return out

    def blend_deviation(self, sample: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """e_k(t) * (a_k - mean a) * (right - left), a_k = k / (n + 1): frame k's place in the blend of
        the two keyframes relative to the mean place, a linear path from the keyframes to each output
        (the object's shift from the middle frame). (B, 20, P, H, W), (B, E) -> (B, 12, P, H, W)."""
        n, c = self.config.frames_per_pair, self.latent_channels
        left, right = sample[:, :c], sample[:, c * (n + 1):]  # (B, C, P, H, W) each
        a = torch.arange(1, n + 1, device=sample.device, dtype=sample.dtype) / (n + 1)  # (n,)
        coef = self.blend_path(temb) * (a - a.mean())  # (B, n)
        dev = coef[:, :, None, None, None, None] * (right - left)[:, None]  # (B, n, C, P, H, W)
        return rearrange(dev, "b n c p h w -> b (n c) p h w")

    def slot_deviation(self, sample: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """c_k(t) * (noisy slot k - mean of the noisy slots): each output's own path from its slot.

        The trunk sees (at init) the mean of the noisy slots, so alone it gives every slot the same
        prediction; v_k = sqrt(ab) eps_k - sqrt(1 - ab) x_k holds slot k's own noise, which only this
        path carries from step 0. (B, 20, P, H, W), (B, E) -> (B, 12, P, H, W).
        """
        n, c = self.config.frames_per_pair, self.latent_channels
        noisy = rearrange(sample[:, c : c * (n + 1)], "b (n c) p h w -> b n c p h w", n=n)
        coef = self.slot_skip(temb)  # (B, n)
        dev = (noisy - noisy.mean(1, keepdim=True)) * coef[:, :, None, None, None, None]
        return rearrange(dev, "b n c p h w -> b (n c) p h w")

    def example_inputs(self) -> tuple[tuple, dict, int]:
        cfg = self.config
        prm = next(self.parameters())
        s, p = cfg.sample_size, cfg.num_pairs
        sample = torch.zeros(1, cfg.in_channels, p, s, s, device=prm.device, dtype=prm.dtype)
        # FLOPs per *generated* frame: frames_per_pair per pair.
        return (sample, torch.tensor([500.0], device=prm.device)), {"frame_skip": 4.0}, p * cfg.frames_per_pair
