"""Reconstruction metrics of decoded videos against ground truth: PSNR, SSIM, flicker.

FusionFrames (arXiv 2311.13073, Table 3) compares the image decoder with temporal video decoders
by PSNR/SSIM of reconstructed clips; a decoder that sees one frame at a time can also disagree
with itself from frame to frame, which per-frame scores barely notice, so the temporal
consistency is measured too:

- ``psnr``: per frame ``10 log10(L^2 / MSE)``, L the peak-to-peak range (2 for [-1, 1]);
- ``ssim``: structural similarity (Wang, Bovik, Sheikh and Simoncelli 2004, eq. 13) with their
  standard settings: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, computed on
  values mapped to [0, 1] (L = 1) over the "valid" window positions (no padding), per channel
  and averaged over pixels and channels;
- ``frame_difference``: mean |x_{t+1} - x_t| of a video (how much it changes per frame);
- ``flicker_ratio``: ``frame_difference`` of the reconstruction relative to the ground truth's
  (1 = as much change as the real clip; above 1 = the decoder adds frame-to-frame change);
- ``temporal_error``: mean |(r_{t+1} - r_t) - (x_{t+1} - x_t)|, the frame-to-frame change the
  reconstruction gets wrong (0 for a perfect one).

Videos are (B, C, F, H, W) (``psnr`` and ``ssim`` also take images (B, C, H, W)) in
``value_range`` ((-1, 1), the package's range, by default). With ``clamp=True`` (default) the
reconstruction is clamped to ``value_range`` first: what a viewer sees.

Taught in notebooks 10 and 12 (notebooks/10_video_decoder.ipynb, notebooks/12_evaluation.ipynb).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from minifusion.checks import check_number, positive_int

SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. 2004
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5


def _check_pair(reconstruction: torch.Tensor, target: torch.Tensor, *, ndims: tuple[int, ...]) -> None:
    for name, x in (("reconstruction", reconstruction), ("target", target)):
        if not torch.is_tensor(x) or x.ndim not in ndims:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            allowed = " or ".join({4: "images (B, C, H, W)", 5: "videos (B, C, F, H, W)"}[n] for n in ndims)
            raise ValueError(f"{name} must be {allowed}, got shape {shape}")
    if reconstruction.shape != target.shape:
        raise ValueError(f"reconstruction and target must have the same shape, got {tuple(reconstruction.shape)} "
                         f"and {tuple(target.shape)}")


def _check_range(value_range: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range {value_range!r} must be (low, high) with high > low")
    return lo, hi


def _prepare(reconstruction: torch.Tensor, target: torch.Tensor, value_range, clamp: bool):
    lo, hi = _check_range(value_range)
    r, t = reconstruction.detach().double(), target.detach().to(reconstruction.device).double()
    return (r.clamp(lo, hi) if clamp else r), t, lo, hi


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, F, C, H, W); images (B, C, H, W) stay as they are."""
    return rearrange(x, "b c f h w -> b f c h w") if x.ndim == 5 else x


# -- PSNR ----------------------------------------------------------------------------------------
def psnr(reconstruction: torch.Tensor, target: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0),
         clamp: bool = True) -> torch.Tensor:
    """PSNR in dB per frame: (B, F) for videos, (B,) for images; inf where a frame is reproduced exactly."""
    _check_pair(reconstruction, target, ndims=(4, 5))
    r, t, lo, hi = _prepare(reconstruction, target, value_range, clamp)
    mse = (_frames(r) - _frames(t)).pow(2).mean(dim=(-3, -2, -1))  # (B, F) or (B,)
    return (10 * torch.log10((hi - lo) ** 2 / mse)).float()  # mse 0 -> inf


# -- SSIM ----------------------------------------------------------------------------------------
def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(size, size) float64 Gaussian weights summing to 1 (the SSIM window)."""
    if positive_int("window size", size, note="and odd") % 2 == 0:
        raise ValueError(f"window size {size} is not allowed; it must be odd")
    check_number("sigma", sigma, minimum=0, exclusive_minimum=True)
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]  # separable: outer product of the 1-D window


def ssim_map(reconstruction: torch.Tensor, target: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0),
             window_size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, k1: float = SSIM_K1, k2: float = SSIM_K2,
             clamp: bool = True) -> torch.Tensor:
    """Local SSIM of images (N, C, H, W) -> (N, C, H - window + 1, W - window + 1), float64."""
    _check_pair(reconstruction, target, ndims=(4,))
    r, t, lo, hi = _prepare(reconstruction, target, value_range, clamp)
    h, w = r.shape[-2:]
    if h < window_size or w < window_size:
        raise ValueError(f"frames of {h}x{w} pixels are smaller than the SSIM window ({window_size}x{window_size}), "
                         f"got shape {tuple(reconstruction.shape)}; pass a smaller odd window_size")
    x, y = (r - lo) / (hi - lo), (t - lo) / (hi - lo)  # [0, 1], so L = 1
    c = x.shape[1]
    kernel = gaussian_window(window_size, sigma).to(x.device)[None, None].repeat(c, 1, 1, 1)  # (C, 1, k, k)
    blur = lambda v: F.conv2d(v, kernel, groups=c)  # noqa: E731  per-channel weighted mean, "valid" positions
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(reconstruction: torch.Tensor, target: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0),
         window_size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, k1: float = SSIM_K1, k2: float = SSIM_K2,
         clamp: bool = True) -> torch.Tensor:
    """Mean SSIM per frame: (B, F) for videos, (B,) for images; 1 where a frame is reproduced exactly."""
    _check_pair(reconstruction, target, ndims=(4, 5))
    r, t = _frames(reconstruction), _frames(target)
    lead = r.shape[:-3]  # (B, F) or (B,)
    flat = lambda v: v.reshape(-1, *v.shape[-3:])  # noqa: E731  (N, C, H, W)
    local = ssim_map(flat(r), flat(t), value_range=value_range, window_size=window_size, sigma=sigma, k1=k1, k2=k2,
                     clamp=clamp)
    return local.mean(dim=(1, 2, 3)).reshape(lead).float()


# -- temporal consistency ------------------------------------------------------------------------
def _check_video(video: torch.Tensor, name: str = "video") -> None:
    if not torch.is_tensor(video) or video.ndim != 5:
        shape = tuple(video.shape) if torch.is_tensor(video) else type(video).__name__
        raise ValueError(f"{name} must be a video (B, C, F, H, W), got shape {shape}")
    if video.shape[2] < 2:
        raise ValueError(f"{name} needs at least 2 frames to measure change between frames, got shape "
                         f"{tuple(video.shape)}")


def frame_difference(video: torch.Tensor) -> torch.Tensor:
    """(B,) mean |x_{t+1} - x_t| over channels, consecutive frame pairs and pixels (value units)."""
    _check_video(video)
    v = video.detach().double()
    return (v[:, :, 1:] - v[:, :, :-1]).abs().mean(dim=(1, 2, 3, 4)).float()


def flicker_ratio(reconstruction: torch.Tensor, target: torch.Tensor, *,
                  value_range: tuple[float, float] = (-1.0, 1.0), clamp: bool = True) -> torch.Tensor:
    """(B,) ``frame_difference(reconstruction) / frame_difference(target)``: 1 = as much frame-to-frame change
    as the ground truth. NaN for a still target reproduced still, inf for a still target reproduced changing."""
    _check_pair(reconstruction, target, ndims=(5,))
    _check_video(target, "target")
    r, t, _, _ = _prepare(reconstruction, target, value_range, clamp)
    return (frame_difference(r).double() / frame_difference(t).double()).float()


def temporal_error(reconstruction: torch.Tensor, target: torch.Tensor, *,
                   value_range: tuple[float, float] = (-1.0, 1.0), clamp: bool = True) -> torch.Tensor:
    """(B,) mean |(r_{t+1} - r_t) - (x_{t+1} - x_t)|: the frame-to-frame change the reconstruction gets wrong."""
    _check_pair(reconstruction, target, ndims=(5,))
    _check_video(target, "target")
    r, t, _, _ = _prepare(reconstruction, target, value_range, clamp)
    dr, dt = r[:, :, 1:] - r[:, :, :-1], t[:, :, 1:] - t[:, :, :-1]  # (B, C, F - 1, H, W)
    return (dr - dt).abs().mean(dim=(1, 2, 3, 4)).float()


def reconstruction_report(reconstruction: torch.Tensor, target: torch.Tensor, *,
                          value_range: tuple[float, float] = (-1.0, 1.0), clamp: bool = True) -> dict[str, float]:
    """Summary of reconstructed videos (B, C, F, H, W) against ``target``, as plain floats.

    ``psnr_db`` and ``ssim``: means over all frames; ``flicker_ratio``: total frame-to-frame change
    of the reconstructions over the targets' (a ratio of sums, stable when some clip barely moves);
    ``temporal_error``: mean over videos; ``frame_difference`` / ``target_frame_difference``: the
    two sides of the ratio (means over videos).
    """
    _check_pair(reconstruction, target, ndims=(5,))
    _check_video(target, "target")
    r, t, _, _ = _prepare(reconstruction, target, value_range, clamp)
    kwargs = dict(value_range=value_range, clamp=False)  # already clamped
    diff_r, diff_t = frame_difference(r), frame_difference(t)
    total_t = float(diff_t.double().sum())
    return {
        "psnr_db": float(psnr(r, t, **kwargs).double().mean()),
        "ssim": float(ssim(r, t, **kwargs).double().mean()),
        "flicker_ratio": float(diff_r.double().sum()) / total_t if total_t > 0 else math.nan,
        "temporal_error": float(temporal_error(r, t, **kwargs).double().mean()),
        "frame_difference": float(diff_r.double().mean()),
        "target_frame_difference": float(diff_t.double().mean()),
        "num_videos": int(r.shape[0]),
        "num_frames": int(r.shape[2]),
    }


__all__ = ["frame_difference", "flicker_ratio", "gaussian_window", "psnr", "reconstruction_report", "ssim",
           "ssim_map", "temporal_error"]
