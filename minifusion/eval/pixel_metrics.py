"""Pixel-level checks of decoded Moving Shapes videos: colour, motion direction, background flicker.

Appearance is learned long before motion, and the training loss says
nothing about either, so the keyframe stage measures its samples directly. These are plain
functions on decoded videos, no learned weights (the learned evaluator lives elsewhere in
``minifusion.eval``):

- ``foreground_mask``: pixels that differ from the background colour, estimated per frame as
  the per-channel median of the frame's one-pixel border (Moving Shapes backgrounds are plain);
- ``dominant_color``: the most common colour name (``minifusion.data.COLORS``) among the
  foreground's core pixels, classified by hue (white by low saturation), so anti-aliased edges
  and the light background do not pull the answer;
- ``centroid_trajectory``: per frame the foreground centroid, weighted by each pixel's
  difference from the background (sub-pixel accurate on anti-aliased edges);
- ``motion_direction``: the name of the nearest of the 8 directions of a least-squares line
  through the centroids, or "none" below a minimum displacement;
- ``background_flicker``: mean absolute change between consecutive frames of the pixels that
  are background in both frames (0 for a clip with a still background).

Videos are (B, C, F, H, W) (one video (C, F, H, W) also works; results then have no batch
entry) with C = 3 (RGB), in [-1, 1] by default (the package's range; pass
``value_range=(0, 1)`` for pipeline output). Thresholds and distances are in [0, 1] colour
units; positions are in frame units, (0, 0) the top-left corner, x right and y down, as in
``minifusion.data.vocabulary``.

Taught in notebook 08 (notebooks/08_keyframes.ipynb).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from minifusion.checks import check_number
from minifusion.data.vocabulary import COLORS, DIRECTIONS

FOREGROUND_THRESHOLD = 0.2  # a pixel is foreground when a channel differs from the background by more than this
WHITE_SATURATION = 0.3  # core pixels less saturated than this are "white" (the one unsaturated colour name)
MIN_DISPLACEMENT = 0.05  # frame units; smaller net motion of the centroid is "none"


def _to_unit(video: torch.Tensor, value_range: tuple[float, float]) -> tuple[torch.Tensor, bool]:
    """(B, 3, F, H, W) float in [0, 1] and whether the input was a single video."""
    if not isinstance(video, torch.Tensor):
        video = torch.as_tensor(np.asarray(video))
    single = video.ndim == 4
    if single:
        video = video[None]
    if video.ndim != 5 or video.shape[1] != 3:
        shape = tuple(video.shape[1:]) if single else tuple(video.shape)
        raise ValueError(f"video must be (B, 3, F, H, W) or (3, F, H, W) RGB, got shape {shape}")
    if video.shape[-1] < 3 or video.shape[-2] < 3:
        raise ValueError(f"frames must be at least 3x3 pixels, got shape {tuple(video.shape)}")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range {value_range!r} must be (low, high) with high > low")
    return (video.detach().float().cpu() - lo) / (hi - lo), single


def _check_threshold(threshold: float) -> None:
    check_number("threshold", threshold, minimum=0, maximum=1, exclusive_minimum=True, exclusive_maximum=True,
                 note="(colour units)")


def _unbatch(values, single: bool):
    return values[0] if single else values


def background_color(video: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Per-frame background colour (B, F, 3) in [0, 1]: the channel-wise median of the frame's border pixels."""
    x, single = _to_unit(video, value_range)
    return _unbatch(_background(x), single)


def _background(x: torch.Tensor) -> torch.Tensor:
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], dim=-1)  # (B, 3, F, N)
    return border.median(dim=-1).values.permute(0, 2, 1)  # (B, F, 3)


def _difference(x: torch.Tensor) -> torch.Tensor:
    """Largest per-channel |pixel - background| (B, F, H, W)."""
    bg = _background(x).permute(0, 2, 1)[..., None, None]  # (B, 3, F, 1, 1)
    return (x - bg).abs().amax(dim=1)


def foreground_mask(video: torch.Tensor, *, threshold: float = FOREGROUND_THRESHOLD,
                    value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """(B, F, H, W) bool: pixels where some channel differs from the frame's background by more than ``threshold``."""
    _check_threshold(threshold)
    x, single = _to_unit(video, value_range)
    return _unbatch(_difference(x) > threshold, single)


# -- colour --------------------------------------------------------------------------------------
def _hue_saturation(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hue in degrees [0, 360) and HSV saturation of colours (..., 3) in [0, 1]."""
    r, g, b = rgb.clamp(0, 1).unbind(-1)
    mx, mn = rgb.clamp(0, 1).amax(-1), rgb.clamp(0, 1).amin(-1)
    c = mx - mn
    safe = torch.where(c > 0, c, torch.ones_like(c))
    hue = torch.where(mx == r, ((g - b) / safe) % 6, torch.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(c > 0, hue * 60.0, torch.zeros_like(hue))
    return hue, torch.where(mx > 0, c / torch.where(mx > 0, mx, torch.ones_like(mx)), torch.zeros_like(mx))


_NAMES = tuple(COLORS)
_REF_HUE, _REF_SAT = _hue_saturation(torch.tensor([COLORS[n] for n in _NAMES], dtype=torch.float32))
_SATURATED = [i for i, s in enumerate(_REF_SAT.tolist()) if s >= WHITE_SATURATION]
_UNSATURATED = [i for i, s in enumerate(_REF_SAT.tolist()) if s < WHITE_SATURATION]  # "white"


def classify_colors(rgb: torch.Tensor) -> list[str]:
    """Colour names of pixels (N, 3) in [0, 1]: nearest hue among the saturated ``COLORS``, or the
    unsaturated one ("white") when the pixel's saturation is below ``WHITE_SATURATION``."""
    hue, sat = _hue_saturation(rgb)
    gap = (hue[:, None] - _REF_HUE[_SATURATED][None]).abs()  # (N, K)
    nearest = torch.tensor(_SATURATED)[torch.minimum(gap, 360.0 - gap).argmin(dim=1)]
    white = torch.full_like(nearest, _UNSATURATED[0]) if _UNSATURATED else nearest
    return [_NAMES[i] for i in torch.where(sat < WHITE_SATURATION, white, nearest).tolist()]


def dominant_color(video: torch.Tensor, *, threshold: float = FOREGROUND_THRESHOLD,
                   value_range: tuple[float, float] = (-1.0, 1.0)) -> list[str] | str:
    """The most common colour name among each video's core foreground pixels; "none" without foreground.

    Core pixels: foreground pixels at least half as different from the background as the
    video's 90th-percentile foreground pixel (drops anti-aliased edges, which mix in the background).
    """
    _check_threshold(threshold)
    x, single = _to_unit(video, value_range)
    diff = _difference(x)  # (B, F, H, W)
    names = []
    for b in range(x.shape[0]):
        mask = diff[b] > threshold
        if not mask.any():
            names.append("none")
            continue
        d = diff[b][mask]
        core = mask & (diff[b] >= 0.5 * torch.quantile(d, 0.9))
        pixels = x[b].permute(1, 2, 3, 0)[core]  # (N, 3)
        votes = classify_colors(pixels)
        names.append(max(_NAMES, key=votes.count))
    return _unbatch(names, single)


# -- motion --------------------------------------------------------------------------------------
def centroid_trajectory(video: torch.Tensor, *, threshold: float = FOREGROUND_THRESHOLD,
                        value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """(B, F, 2) foreground centroid (x, y) per frame in frame units (pixel centres at (i + 0.5) / W);
    NaN for frames without foreground. Pixels are weighted by their difference from the background."""
    _check_threshold(threshold)
    x, single = _to_unit(video, value_range)
    diff = _difference(x)  # (B, F, H, W)
    weight = torch.where(diff > threshold, diff, torch.zeros_like(diff))
    h, w = diff.shape[-2:]
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w  # (W,)
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h  # (H,)
    total = weight.sum(dim=(-2, -1))  # (B, F)
    cx = (weight.sum(dim=-2) * xs).sum(-1) / total
    cy = (weight.sum(dim=-1) * ys).sum(-1) / total
    out = torch.stack([cx, cy], dim=-1)  # (B, F, 2); 0 / 0 = NaN where there is no foreground
    return _unbatch(out, single)


def displacement(trajectory: torch.Tensor) -> torch.Tensor:
    """Net displacement (dx, dy) of trajectories (B, F, 2): the slope of a least-squares line through
    the finite points times the time they span (NaN with fewer than 2 finite points)."""
    out = torch.full((trajectory.shape[0], 2), math.nan)
    for b, points in enumerate(trajectory):
        ok = torch.isfinite(points).all(dim=-1)
        if ok.sum() < 2:
            continue
        t = torch.arange(points.shape[0], dtype=torch.float64)[ok]
        p = points[ok].double()
        tc = t - t.mean()
        slope = (tc[:, None] * (p - p.mean(0))).sum(0) / (tc * tc).sum()  # (2,)
        out[b] = (slope * (t.max() - t.min())).float()
    return out


def direction_name(dx: float, dy: float, *, min_displacement: float = MIN_DISPLACEMENT) -> str:
    """The nearest of the 8 ``DIRECTIONS`` to (dx, dy) (frame units, y down), or "none" if it is shorter
    than ``min_displacement`` or not finite."""
    if not (math.isfinite(dx) and math.isfinite(dy)) or math.hypot(dx, dy) < min_displacement:
        return "none"
    return max(DIRECTIONS, key=lambda n: DIRECTIONS[n][0] * dx + DIRECTIONS[n][1] * dy)  # largest cosine


def motion_direction(video: torch.Tensor, *, min_displacement: float = MIN_DISPLACEMENT,
                     threshold: float = FOREGROUND_THRESHOLD,
                     value_range: tuple[float, float] = (-1.0, 1.0)) -> list[str] | str:
    """Per video the direction name of the centroid's net displacement (see ``displacement``), or "none"."""
    if not min_displacement >= 0:
        raise ValueError(f"min_displacement {min_displacement!r} is not allowed; it must be >= 0 (frame units)")
    _check_threshold(threshold)
    x, single = _to_unit(video, value_range)
    shift = displacement(centroid_trajectory(x, threshold=threshold, value_range=(0.0, 1.0)))
    names = [direction_name(float(dx), float(dy), min_displacement=min_displacement) for dx, dy in shift.tolist()]
    return _unbatch(names, single)


# -- background --------------------------------------------------------------------------------
def background_flicker(video: torch.Tensor, *, threshold: float = FOREGROUND_THRESHOLD,
                       value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """(B,) mean |x_{f+1} - x_f| (colour units, all channels) over the pixels that are background in
    both frames f and f + 1, over all consecutive pairs; NaN if no pixel ever is."""
    _check_threshold(threshold)
    x, single = _to_unit(video, value_range)
    if x.shape[2] < 2:
        raise ValueError(f"background flicker needs at least 2 frames, got shape {tuple(x.shape)}")
    still = _difference(x) <= threshold  # (B, F, H, W)
    both = (still[:, 1:] & still[:, :-1])[:, None]  # (B, 1, F - 1, H, W)
    change = (x[:, :, 1:] - x[:, :, :-1]).abs() * both  # (B, 3, F - 1, H, W)
    count = both.sum(dim=(1, 2, 3, 4)) * x.shape[1]
    flicker = change.sum(dim=(1, 2, 3, 4)) / count  # 0 / 0 = NaN
    return _unbatch(flicker, single)


def motion_report(video: torch.Tensor, colors: list[str], directions: list[str], *,
                  value_range: tuple[float, float] = (-1.0, 1.0),
                  min_displacement: float = MIN_DISPLACEMENT) -> dict:
    """Summary of a batch against prompted colours and directions: ``color_accuracy``,
    ``direction_accuracy``, ``moving_fraction`` (direction not "none") and mean ``background_flicker``."""
    x, single = _to_unit(video, value_range)
    if single or len(colors) != x.shape[0] or len(directions) != x.shape[0]:
        raise ValueError(f"need one colour and one direction per video: {x.shape[0] if not single else 1} videos, "
                         f"{len(colors)} colours, {len(directions)} directions")
    unit = (0.0, 1.0)
    found_colors = dominant_color(x, value_range=unit)
    found_dirs = motion_direction(x, value_range=unit, min_displacement=min_displacement)
    flicker = background_flicker(x, value_range=unit)
    n = x.shape[0]
    return {
        "num_videos": n,
        "color_accuracy": sum(a == b for a, b in zip(found_colors, colors)) / n,
        "direction_accuracy": sum(a == b for a, b in zip(found_dirs, directions)) / n,
        "moving_fraction": sum(d != "none" for d in found_dirs) / n,
        "background_flicker": float(flicker.nanmean()) if torch.isfinite(flicker).any() else math.nan,
        "colors": found_colors,
        "directions": found_dirs,
    }


def psnr(reconstruction: torch.Tensor, target: torch.Tensor) -> float:
    """One peak signal-to-noise ratio in dB over all the pixels of frames in [-1, 1] (peak-to-peak 2): 10 log10(4 / MSE).

    The reconstruction is clamped to [-1, 1] first (what a viewer sees); MSE over all pixels.
    """
    mse = (reconstruction.clamp(-1, 1) - target).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(4 / mse)
