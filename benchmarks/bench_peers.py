"""Peer video U-Nets, built with the default keyframe U-Net's widths and depth, for a side-by-side training step.

- diffusers' ``UNet3DConditionModel`` (ModelScope text-to-video's U-Net; ``pip install 'minifusion[bench]'``):
  ``block_out_channels`` and ``layers_per_block`` as ours, 8 GroupNorm groups as ours, text
  cross-attention of width ``cross_attention_dim`` in the two lower levels and none at the top (as
  ours: ``DownBlock3D`` / ``UpBlock3D`` there), ``sample_size`` as ours. diffusers'
  ``attention_head_dim`` is the number of *heads* (its documented naming slip) and must be one int
  for this class: we pass the widest level's width over our head width (128 / 32 = 4 heads), so its
  bottom level has our 32-channel heads. Its text input is the same tokens; it takes no padding mask.
  Its depth differs where diffusers' layout does: a middle block, ``layers_per_block + 1``
  residual blocks per up level, a temporal transformer at the input, a temporal conv after every
  residual block. MFU (FLOPs over time) is what makes the two comparable.
- video-diffusion-pytorch's ``Unet3D`` (Ho et al. 2022; lucidrains): ``dim`` = our first width,
  ``dim_mults`` = our widths over it, two residual blocks per level (fixed, = our ``layers_per_block``),
  heads of our 32 channels (``attn_heads`` = 128 / 32). It has no cross-attention: its text input is
  one vector per video (``cond_dim``), here the masked mean of the same tokens. It imports
  torchvision, whose build must match torch's; where the import fails the reason is reported.

Each builder returns ``(model, step)``: ``step()`` is one forward + backward of the MSE loss on the
batch of ``bench_unet.training_inputs``, as for ours; it raises ``PeerUnavailable(reason)``
when the package is missing or does not import.
"""

from __future__ import annotations

import importlib.metadata

import torch
import torch.nn.functional as F

VDP_NOT_INSTALLABLE = (
    "not installable with torch 2.13.0 CPU: it imports torchvision, whose only build for torch 2.13.0 on the "
    "registry (0.28.0) is a CUDA build; with the CPU torch, 'import torchvision' fails with 'RuntimeError: "
    "operator torchvision::nms does not exist' (its _C.so needs libc10_cuda.so). See docs/performance.md"
)


class PeerUnavailable(RuntimeError):
    """A peer that cannot run here; the message says why."""


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _heads(config) -> int:
    """Heads at the widest level with our head width (channels per head)."""
    return max(1, config.block_out_channels[-1] // config.attention_head_dim)


def _mse_step(model: torch.nn.Module, forward, target: torch.Tensor):
    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.mse_loss(forward(), target).backward()
    return step


def diffusers_unet3d(config, inputs: dict, *, device: str | torch.device = "cpu", seed: int = 0):
    """diffusers ``UNet3DConditionModel`` with ``config``'s (a ``KeyframeUNetConfig``) widths and depth."""
    if version("diffusers") is None:
        raise PeerUnavailable("not installed (pip install 'minifusion[bench]')")
    try:
        from diffusers import UNet3DConditionModel
    except Exception as e:  # noqa: BLE001  (any import failure is a reason to report, not a crash)
        raise PeerUnavailable(f"installed but does not import: {type(e).__name__}: {e}") from None
    levels = len(config.block_out_channels)
    attention = [i > 0 for i in range(levels)] if config.attention_levels is None else list(config.attention_levels)
    torch.manual_seed(seed)
    model = UNet3DConditionModel(
        sample_size=config.sample_size,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        down_block_types=tuple("CrossAttnDownBlock3D" if a else "DownBlock3D" for a in attention),
        up_block_types=tuple("CrossAttnUpBlock3D" if a else "UpBlock3D" for a in reversed(attention)),
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_groups,
        cross_attention_dim=config.cross_attention_dim,
        attention_head_dim=_heads(config),  # diffusers: the number of heads
    ).to(device).train()

    def forward() -> torch.Tensor:
        return model(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]).sample

    return model, _mse_step(model, forward, inputs["target"])


def vdp_unet3d(config, inputs: dict, *, device: str | torch.device = "cpu", seed: int = 0):
    """video-diffusion-pytorch ``Unet3D`` with ``config``'s widths; text as one pooled vector per video."""
    if version("video-diffusion-pytorch") is None:
        cpu_213 = torch.__version__.startswith("2.13.0") and torch.version.cuda is None
        raise PeerUnavailable(VDP_NOT_INSTALLABLE if cpu_213 else "not installed (pip install video-diffusion-pytorch)")
    try:
        from video_diffusion_pytorch import Unet3D
    except Exception as e:  # noqa: BLE001  (the torchvision mismatch raises RuntimeError, others ImportError)
        raise PeerUnavailable(f"installed but does not import: {type(e).__name__}: {e}") from None
    c0 = config.block_out_channels[0]
    if any(w % c0 for w in config.block_out_channels):
        raise PeerUnavailable(f"widths {config.block_out_channels} are not multiples of the first, as Unet3D needs")
    torch.manual_seed(seed)
    model = Unet3D(
        dim=c0,
        dim_mults=tuple(w // c0 for w in config.block_out_channels),
        channels=config.in_channels,
        out_dim=config.out_channels,
        cond_dim=config.cross_attention_dim,
        attn_heads=_heads(config),
        attn_dim_head=config.attention_head_dim,
    ).to(device).train()
    w = inputs["encoder_attention_mask"].to(inputs["encoder_hidden_states"].dtype)[..., None]  # (B, L, 1)
    pooled = (inputs["encoder_hidden_states"] * w).sum(1) / w.sum(1)  # (B, D): masked mean of the tokens

    def forward() -> torch.Tensor:
        return model(inputs["sample"], inputs["timestep"].float(), cond=pooled)

    return model, _mse_step(model, forward, inputs["target"])


PEERS = {  # name -> (builder, the package it comes from)
    "diffusers UNet3DConditionModel": (diffusers_unet3d, "diffusers"),
    "video-diffusion-pytorch Unet3D": (vdp_unet3d, "video-diffusion-pytorch"),
}
