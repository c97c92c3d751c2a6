"""Masked frame interpolation (MFI) U-Net: the baseline FusionFrames compares against.

Video LDM (Blattmann et al. 2023, section 3.1.1) interpolates by running a video U-Net on
*every* frame of the up-sampled sequence: known frames are given as extra input channels with
a mask, and the model fills in the rest. FusionFrames (arXiv 2311.13073, Table 2) reports its
own pair-wise interpolator as more than 3x faster and better than this baseline.

Per frame, channels in = [noisy latent (4) | known-frame latent or zeros (4) | mask (1)] = 9,
out = 4 (v-prediction). For K keyframes one pass runs on 4K - 3 frames, mask 1 at frames
0, 4, 8, ... Temporal layers as in the keyframe model's blocks (``temporal`` variant, default
the released "conv1d_attn1d_blocks"), frame positions as there (source-frame index per frame,
e.g. 0, 1, 2, ... when keyframes are 4 frames apart and 3 frames are inserted), an embedding
of the known frames' perturbation level (zero-initialised, as in the FusionFrames
interpolator), and no text: a learned null embedding (1, L, D), zeros at init.

Initialisation from the T2I U-Net: ``conv_in`` widened with zero weights; the T2I weights go to
the noisy-latent channels (0..3), so at init the model equals the T2I U-Net on the noisy latents,
frame by frame.

Taught in notebook 09 (notebooks/09_interpolation.ipynb).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minifusion.models.keyframe_unet import KeyframeUNet, KeyframeUNetConfig, is_temporal_parameter
from minifusion.models.unet import UNet, widen_input_conv
from minifusion.nn import TimestepEmbedding

NEW_PREFIXES = ("perturbation_embedding.", "null_encoder_hidden_states", "conv_in.")


@dataclass
class MaskedInterpolationUNetConfig(KeyframeUNetConfig):
    in_channels: int = 9  # [noisy latent, known latent or zeros, mask]
    out_channels: int = 4  # predicted latent
    null_context_length: int = 1  # tokens L of the learned null text embedding
    prediction_type: str = "v_prediction"  # training target (recorded)
    num_frames: int = 29  # frames used by example_inputs() (8 keyframes -> 4 * 8 - 3)


class MaskedInterpolationUNet(KeyframeUNet):
    """Video U-Net run on all frames with known frames + mask as extra channels."""

    config_class = MaskedInterpolationUNetConfig

    def __init__(self, config: MaskedInterpolationUNetConfig | dict | None = None):
        super().__init__(config)
        cfg = self.config
        if cfg.in_channels != 2 * cfg.out_channels + 1:
            raise ValueError(
                f"in_channels {cfg.in_channels} must be 2 * out_channels + 1 = {2 * cfg.out_channels + 1} "
                "(noisy latent, known latent, mask)"
            )
        c0 = cfg.block_out_channels[0]
        self.perturbation_embedding = TimestepEmbedding(c0 + c0 % 2, self.time_embed_dim, zero_init=True)
        self.null_encoder_hidden_states = nn.Parameter(torch.zeros(1, cfg.null_context_length, cfg.cross_attention_dim))

    @classmethod
    def from_t2i(cls, unet: UNet, temporal: str = "conv1d_attn1d_blocks", **config_overrides) -> MaskedInterpolationUNet:
        """Copy ``unet``'s weights; the input conv is widened from 4 to 9 channels with zeros."""
        latent = unet.config.in_channels
        if unet.config.out_channels != latent:
            raise ValueError(f"the T2I U-Net must predict its input: in {latent}, out {unet.config.out_channels}")
        overrides = {"in_channels": 2 * latent + 1, "out_channels": latent, "prediction_type": "v_prediction"}
        return super().from_t2i(unet, temporal, **{**overrides, **config_overrides})

    def adapt_t2i_state_dict(self, state: dict) -> dict:
        state = dict(state)
        state["conv_in.weight"] = widen_input_conv(state["conv_in.weight"], self.config.in_channels, 0)
        return state

    def is_new_parameter(self, name: str) -> bool:
        """Temporal parts, t_p embedding, null text and the widened conv_in (which must learn to read
        the known frames and the mask, so it stays trainable after ``freeze_spatial()``)."""
        return is_temporal_parameter(name) or name.startswith(NEW_PREFIXES)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        *,
        frame_positions: torch.Tensor | None = None,
        perturbation_level: torch.Tensor | float = 0,
    ) -> torch.Tensor:
        """Predict v for every frame of the up-sampled sequence.

        Args:
            sample: (B, 9, F, H, W): [noisy latent, known latent or zeros, mask] per frame.
            timestep: a number or (B,) diffusion timesteps.
            frame_positions: (B, F) or (F,) source-frame index of every frame; None = 0..F-1.
            perturbation_level: a number or (B,): noise level of the known frames (0 at inference).

        Returns:
            (B, 4, F, H, W).
        """
        self.check_video_sample(sample)
        b = sample.shape[0]
        t = self.batch_timesteps(timestep, b, sample.device)
        tp = self.batch_values(perturbation_level, "perturbation_level", b, sample.device)
        context = self.null_encoder_hidden_states.repeat(b, 1, 1)  # (B, L, D); a copy, not a view of the parameter
        temb = self.embed(t, context) + self.perturbation_embedding(tp)  # (B, E)
        return self.forward_video(sample, temb, context, None, frame_positions)

    def example_inputs(self) -> tuple[tuple, dict, int]:
        cfg = self.config
        p = next(self.parameters())
        s, f = cfg.sample_size, cfg.num_frames
        sample = torch.zeros(1, cfg.in_channels, f, s, s, device=p.device, dtype=p.dtype)
        return (sample, torch.tensor([500.0], device=p.device)), {}, f
