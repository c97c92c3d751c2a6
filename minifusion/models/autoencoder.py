"""The latent autoencoder: 64x64x3 frames <-> 4x16x16 latents, MoVQ decoder, optional video decoder.

FusionFrames (arXiv 2311.13073, section 3.3) encodes frames with the MoVQ-GAN of Kandinsky
(Zheng et al. 2022): 8x downsampling, 4 latent channels, and *no quantisation at inference*:
the diffusion models work on the continuous encoder output. At toy scale this is a plain
autoencoder with 4x downsampling (64x64 -> 16x16) and a small L2 penalty on the latents
(``compute_loss``) that keeps their scale bounded - no codebook, no KL term, no GAN loss. The
decoder keeps MoVQ's idea: every norm is modulated per pixel by the latent (``SpatialNorm``).

Latent scaling (Rombach et al. 2022, section 4.3.2): ``encode`` returns ``scaling_factor * z``
and ``decode`` divides it out again, with ``scaling_factor = 1 / std(z)`` measured on data
(``estimate_scaling_factor``), so diffusion sees latents of unit variance.

Video decoder (FusionFrames Table 3): ``decoder_temporal`` = "conv1d" (3x1x1) or "conv3d"
(3x3x3 with shrink/restore), optionally with temporal attention, adds alpha-merged temporal
layers after the decoder blocks; at init the video decoder equals the image decoder frame by
frame. ``Autoencoder.from_image_autoencoder`` copies a trained image autoencoder into one.

Tensors: images (B, C, H, W) or video (B, C, F, H, W), frames in [-1, 1]; frames are folded into
the batch for the spatial layers (``rearrange(x, "b c f h w -> (b f) c h w")``).

Taught in notebooks 04 and 10 (notebooks/04_autoencoder.ipynb, notebooks/10_video_decoder.ipynb).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from minifusion.checks import check_int, check_number, check_one_of, positive_int
from minifusion.models.autoencoder_blocks import DECODER_TEMPORAL, Decoder, Encoder, TemporalStage
from minifusion.models.modeling_utils import ModelMixin, check_dtype


@dataclass
class AutoencoderConfig:
    in_channels: int = 3  # channels of a frame (RGB)
    out_channels: int = 3  # channels of a decoded frame
    latent_channels: int = 4  # channels of the latent
    block_out_channels: tuple[int, ...] = (16, 32, 64)  # width per level; downsampling = 2^(levels - 1)
    layers_per_block: int = 1  # ResNet blocks per level in the encoder and in the decoder
    norm_groups: int = 8  # GroupNorm groups (divide every width)
    scaling_factor: float = 1.0  # latents are multiplied by this in encode(); set by estimate_scaling_factor
    decoder_temporal: str = "none"  # "none" (image decoder), "conv1d" (3x1x1) or "conv3d" (3x3x3) layers
    decoder_temporal_attention: bool = False  # add temporal attention after each temporal conv
    temporal_attention_head_dim: int = 16  # width of a temporal attention head (divides every width)
    sample_size: int = 64  # frame height and width the model is built for (example inputs)


def _check_config(c: AutoencoderConfig) -> None:
    for name in ("in_channels", "out_channels", "latent_channels", "layers_per_block", "norm_groups",
                 "temporal_attention_head_dim", "sample_size"):
        positive_int(name, getattr(c, name))
    widths = c.block_out_channels
    if not isinstance(widths, tuple) or not widths:
        raise ValueError(f"block_out_channels must be a non-empty tuple of ints, got {widths!r}")
    for w in widths:
        positive_int("block_out_channels entry", w)
        if w % c.norm_groups:
            raise ValueError(f"norm_groups {c.norm_groups} does not divide block_out_channels {widths}")
        if c.decoder_temporal_attention and w % c.temporal_attention_head_dim:
            raise ValueError(
                f"temporal_attention_head_dim {c.temporal_attention_head_dim} does not divide "
                f"block_out_channels {widths}"
            )
    check_one_of("decoder_temporal", c.decoder_temporal, DECODER_TEMPORAL)
    if c.decoder_temporal_attention and c.decoder_temporal == "none":
        raise ValueError("decoder_temporal_attention=True needs decoder_temporal 'conv1d' or 'conv3d', got 'none'")
    check_number("scaling_factor", c.scaling_factor, minimum=0, exclusive_minimum=True)


def _check_chunking(chunk_size: int | None, chunk_overlap: int) -> None:
    if chunk_size is None:
        return
    positive_int("chunk_size", chunk_size)
    check_int("chunk_overlap", chunk_overlap, minimum=0, maximum=chunk_size - 1, note="(below chunk_size)")


def chunk_windows(num_frames: int, chunk_size: int, chunk_overlap: int) -> list[tuple[int, int, int]]:
    """Plan overlapping windows for chunked video decoding: a list of (start, keep_from, keep_to).

    Windows of ``chunk_size`` frames start every ``chunk_size - chunk_overlap`` frames; the last
    one ends at the last frame. Every frame is taken from the window in which it has the most
    context on both sides (ties: the earlier window); window ``k`` supplies the frames
    ``keep_from <= t < keep_to``. Windows that supply nothing are dropped.
    """
    positive_int("num_frames", num_frames)
    _check_chunking(chunk_size, chunk_overlap)
    if chunk_size >= num_frames:
        return [(0, 0, num_frames)]
    stride = chunk_size - chunk_overlap
    starts = list(range(0, num_frames - chunk_size, stride)) + [num_frames - chunk_size]
    context = lambda t, s: min(t - s, s + chunk_size - 1 - t)  # noqa: E731
    owner = [max((s for s in starts if s <= t < s + chunk_size), key=lambda s: (context(t, s), -s))
             for t in range(num_frames)]
    windows = []
    for s in starts:
        kept = [t for t in range(num_frames) if owner[t] == s]
        if kept:
            windows.append((s, kept[0], kept[-1] + 1))
    return windows


class Autoencoder(ModelMixin):
    """MoVQ-style autoencoder: frames (B, 3, [F,] 64, 64) in [-1, 1] <-> latents (B, 4, [F,] 16, 16).

    ``encode`` returns *scaled* latents (unit variance once ``scaling_factor`` is set) and
    ``decode`` takes scaled latents. ``forward(x)`` reconstructs x (same shape). Both accept
    images (B, C, H, W) and videos (B, C, F, H, W); H and W must be divisible by the downsampling
    factor (4 by default). A temporal decoder treats an image batch as 1-frame videos.
    """

    config_class = AutoencoderConfig

    def __init__(self, config: AutoencoderConfig | dict | None = None) -> None:
        super().__init__(config)
        c = self.config
        _check_config(c)
        self.encoder = Encoder(
            in_channels=c.in_channels, latent_channels=c.latent_channels, block_out_channels=c.block_out_channels,
            layers_per_block=c.layers_per_block, norm_groups=c.norm_groups,
        )
        self.decoder = Decoder(
            out_channels=c.out_channels, latent_channels=c.latent_channels, block_out_channels=c.block_out_channels,
            layers_per_block=c.layers_per_block, norm_groups=c.norm_groups, temporal=c.decoder_temporal,
            temporal_attention=c.decoder_temporal_attention, attention_head_dim=c.temporal_attention_head_dim,
        )

    # -- properties ---------------------------------------------------------------------------
    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    @property
    def is_temporal(self) -> bool:
        return self.config.decoder_temporal != "none"

    @property
    def scaling_factor(self) -> float:
        return float(self.config.scaling_factor)

    def set_scaling_factor(self, value: float) -> None:
        """Store the latent scale in the config (saved by ``save_pretrained``)."""
        check_number("scaling_factor", value, minimum=0, exclusive_minimum=True)
        self.config = dataclasses.replace(self.config, scaling_factor=float(value))

    # -- input checks -------------------------------------------------------------------------
    def _check_frames(self, x: torch.Tensor) -> None:
        c, s = self.config.in_channels, self.downsampling_factor
        if not torch.is_tensor(x) or x.ndim not in (4, 5) or x.shape[1] != c:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"Autoencoder expects frames (B, {c}, H, W) or (B, {c}, F, H, W), got shape {shape}")
        check_dtype("frames", x, self.dtype_of_weights(), " (frames are floats in [-1, 1])")
        if x.shape[-1] % s or x.shape[-2] % s:
            raise ValueError(f"frame height and width must be divisible by {s} (the downsampling factor), "
                             f"got shape {tuple(x.shape)}")

    def _check_latents(self, z: torch.Tensor) -> None:
        c = self.config.latent_channels
        if not torch.is_tensor(z) or z.ndim not in (4, 5) or z.shape[1] != c:
            shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"Autoencoder expects latents (B, {c}, h, w) or (B, {c}, F, h, w), got shape {shape}")
        check_dtype("latents", z, self.dtype_of_weights())

    def dtype_of_weights(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # -- raw (unscaled) paths -----------------------------------------------------------------
    def encode_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's own latents (no scaling_factor): (B, C, [F,] H, W) -> (B, 4, [F,] H/s, W/s)."""
        self._check_frames(x)
        if x.ndim == 4:
            return self.encoder(x)
        f = x.shape[2]
        z = self.encoder(rearrange(x, "b c f h w -> (b f) c h w"))
        return rearrange(z, "(b f) c h w -> b c f h w", f=f)

    def decode_unscaled(self, z: torch.Tensor) -> torch.Tensor:
        """Decode the encoder's own latents in one call; a video's temporal layers see all its frames."""
        self._check_latents(z)
        if z.ndim == 4:
            return self.decoder(z, num_frames=1 if self.is_temporal else None)
        f = z.shape[2]
        x = self.decoder(rearrange(z, "b c f h w -> (b f) c h w"), num_frames=f)
        return rearrange(x, "(b f) c h w -> b c f h w", f=f)

    # -- public API ---------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
        """Frames (B, 3, [F,] H, W) in [-1, 1] -> scaled latents (B, 4, [F,] H/4, W/4).

        ``chunk_size`` encodes that many frames (video) or images at a time; frames are encoded
        independently, so the result is the same as one call.
        """
        self._check_frames(x)
        _check_chunking(chunk_size, 0)
        dim = 2 if x.ndim == 5 else 0
        if chunk_size is None or chunk_size >= x.shape[dim]:
            return self.encode_unscaled(x) * self.config.scaling_factor
        parts = [self.encode_unscaled(part) for part in x.split(chunk_size, dim=dim)]
        return torch.cat(parts, dim=dim) * self.config.scaling_factor

    def decode(
        self, z: torch.Tensor, *, chunk_size: int | None = None, chunk_overlap: int | None = None
    ) -> torch.Tensor:
        """Scaled latents (B, 4, [F,] h, w) -> frames (B, 3, [F,] 4h, 4w), roughly in [-1, 1].

        ``chunk_size`` bounds memory by decoding that many frames at a time:

        - image decoder: frames are independent, so chunks give exactly the one-call result
          (``chunk_overlap`` is unused);
        - temporal decoder: its temporal layers (whose norms and attention span the whole clip)
          see one window of ``chunk_size`` frames. Windows overlap by ``chunk_overlap`` frames
          (default ``chunk_size // 4``) and each frame comes from the window where it has the most
          context (``chunk_windows``). So chunked decoding equals one call when ``chunk_size >= F``
          and otherwise equals decoding each window as its own clip - use the clip length the
          decoder was fine-tuned on (8 frames in FusionFrames).

        Image batches (4-D) are chunked along the batch.
        """
        self._check_latents(z)
        overlap = (chunk_size // 4 if chunk_size else 0) if chunk_overlap is None else chunk_overlap
        _check_chunking(chunk_size, overlap)
        z = z / self.config.scaling_factor
        dim = 2 if z.ndim == 5 else 0
        if chunk_size is None or chunk_size >= z.shape[dim]:
            return self.decode_unscaled(z)
        if z.ndim == 4 or not self.is_temporal:
            return torch.cat([self.decode_unscaled(part) for part in z.split(chunk_size, dim=dim)], dim=dim)
        parts = []
        for start, keep_from, keep_to in chunk_windows(z.shape[2], chunk_size, overlap):
            window = self.decode_unscaled(z[:, :, start : start + chunk_size])  # (B, 3, chunk, H, W)
            parts.append(window[:, :, keep_from - start : keep_to - start])
        return torch.cat(parts, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct frames: (B, 3, [F,] H, W) -> (B, 3, [F,] H, W)."""
        return self.decode_unscaled(self.encode_unscaled(x))

    def compute_loss(self, x: torch.Tensor, *, latent_weight: float = 1e-4) -> dict[str, torch.Tensor]:
        """Training loss: mean squared reconstruction error + ``latent_weight`` * mean(z^2).

        Returns a dict with "loss" (what to back-propagate), "mse", "latent_l2" and "reconstruction".
        """
        z = self.encode_unscaled(x)
        recon = self.decode_unscaled(z)
        mse = F.mse_loss(recon, x)
        latent_l2 = z.pow(2).mean()
        return {"loss": mse + latent_weight * latent_l2, "mse": mse, "latent_l2": latent_l2, "reconstruction": recon}

    @torch.no_grad()
    def estimate_scaling_factor(self, frames: torch.Tensor, *, chunk_size: int | None = 64) -> float:
        """1 / std of the unscaled latents of ``frames`` (images or videos in [-1, 1]).

        Store it with ``set_scaling_factor`` so ``encode`` returns unit-variance latents on the data.
        """
        self._check_frames(frames)
        dim = 2 if frames.ndim == 5 else 0
        size = chunk_size or frames.shape[dim]
        z = torch.cat([self.encode_unscaled(p).flatten() for p in frames.split(size, dim=dim)])
        std = z.double().std().item()
        if not math.isfinite(std) or std <= 0:
            raise ValueError(f"latents have standard deviation {std}; cannot derive a scaling factor")
        return 1.0 / std

    # -- video decoder fine-tuning ------------------------------------------------------------
    def temporal_stages(self) -> list[TemporalStage]:
        return [m for m in self.modules() if isinstance(m, TemporalStage)]

    def temporal_parameter_names(self) -> list[str]:
        ids = {id(p) for stage in self.temporal_stages() for p in stage.parameters()}
        return [n for n, p in self.named_parameters() if id(p) in ids]

    def trainable_temporal_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters of the decoder's temporal layers (convs, attention, alphas), for an optimiser."""
        return [p for stage in self.temporal_stages() for p in stage.parameters()]

    def freeze_encoder(self) -> Autoencoder:
        """Stop gradients into the encoder (latents stay those the diffusion models were trained on)."""
        self.encoder.requires_grad_(False)
        return self

    def freeze_spatial(self) -> Autoencoder:
        """Freeze everything except the temporal layers (FusionFrames fine-tunes only those)."""
        self.requires_grad_(False)
        for p in self.trainable_temporal_parameters():
            p.requires_grad_(True)
        return self

    @classmethod
    def from_image_autoencoder(
        cls,
        autoencoder: Autoencoder,
        *,
        decoder_temporal: str = "conv3d",
        decoder_temporal_attention: bool = True,
        temporal_attention_head_dim: int | None = None,
    ) -> Autoencoder:
        """A video-decoder autoencoder holding a copy of ``autoencoder``'s spatial weights.

        The new temporal layers start as the identity, so the result decodes like ``autoencoder``
        frame by frame. Temporal layers of the source (if any) are not copied.
        """
        if not isinstance(autoencoder, Autoencoder):
            raise ValueError(f"autoencoder must be an Autoencoder, got {type(autoencoder).__name__}")
        head_dim = temporal_attention_head_dim or autoencoder.config.temporal_attention_head_dim
        config = dataclasses.replace(
            autoencoder.config, decoder_temporal=decoder_temporal,
            decoder_temporal_attention=decoder_temporal_attention, temporal_attention_head_dim=head_dim,
        )
        model = cls(config)
        source_temporal = set(autoencoder.temporal_parameter_names())
        state = {k: v.detach().clone() for k, v in autoencoder.state_dict().items() if k not in source_temporal}
        missing, unexpected = model.load_state_dict(state, strict=False)
        new_temporal = set(model.temporal_parameter_names())
        if unexpected or set(missing) - new_temporal:
            raise ValueError(f"spatial weights do not match: missing {sorted(set(missing) - new_temporal)[:5]}, "
                             f"unexpected {unexpected[:5]}")
        ref = next(autoencoder.parameters())
        return model.to(device=ref.device, dtype=ref.dtype)

    def example_inputs(self) -> tuple[tuple, dict, int]:
        """A frame (1, 3, 64, 64), or for a temporal decoder an 8-frame clip (1, 3, 8, 64, 64)."""
        c, s = self.config.in_channels, self.config.sample_size
        frames = 8 if self.is_temporal else 1
        shape = (1, c, frames, s, s) if self.is_temporal else (1, c, s, s)
        ref = next(self.parameters())
        return (torch.zeros(shape, device=ref.device, dtype=ref.dtype),), {}, frames
