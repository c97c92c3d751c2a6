"""Steady motion, from the pixels: one object in every frame, moving without jumps or steps back.

Where an object ended up is not enough: a circle that sits still, vanishes and reappears to the
right has "moved right" by its net displacement. A video of a prompt ``... moves {direction}``
is **steady** when, from its decoded pixels:

1. every frame holds exactly one object: one connected region of foreground pixels (8-connected,
   ``pixel_metrics.foreground_mask``) of at least ``min_area`` pixels - nothing vanishes, splits
   or duplicates (a blend of two positions shows as two half-strength objects);
2. no frame-to-frame step of the centroid is larger than the motion can explain: each step is at
   most ``jump_factor`` times the mean speed (net displacement / (F - 1)) plus ``jump_pixels``;
3. no step goes backwards against the net direction by more than ``back_pixels``;
4. it moves: the net displacement (``pixel_metrics.displacement``) is at least the minimum of
   ``pixel_metrics.direction_name``.

Whether it moves the *prompted* way is a separate check (``direction_ok``: the nearest of the 8
directions to the net displacement); a benchmark counts a video right when colour, direction
and steadiness all are. Moving Shapes objects move at constant velocity, so rendered clips pass
at any frame rate; shuffled frames fail 2-3, reversed frames fail the direction, a frozen frame
fails 4 and the direction ("none").
Videos are (B, 3, F, H, W) in ``value_range``; distances are in pixels of the frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from minifusion.checks import check_number, positive_int
from minifusion.data.vocabulary import DIRECTIONS
from minifusion.eval.pixel_metrics import (
    FOREGROUND_THRESHOLD,
    _check_threshold,
    _difference,
    _to_unit,
    centroid_trajectory,
    direction_name,
    displacement,
)

MIN_AREA = 8  # pixels; smaller foreground specks are not objects
JUMP_FACTOR = 3.0  # a step may be this many times the mean speed ...
JUMP_PIXELS = 1.0  # ... plus this much (centroid noise of anti-aliased edges)
BACK_PIXELS = 1.0  # the largest allowed step against the net direction


def label_components(mask: torch.Tensor) -> torch.Tensor:
    """8-connected components of boolean images (N, H, W): (N, H, W) int64 labels, 0 = background.

    Each foreground pixel starts with its own label (flat index + 1); labels spread to the 8
    neighbours by a 3x3 max-pool, kept on foreground pixels, until nothing changes, so every
    component ends with the largest label in it.
    """
    n, h, w = mask.shape
    m = mask.float()[:, None]  # (N, 1, H, W)
    labels = m * torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w)
    while True:
        spread = F.max_pool2d(labels, 3, stride=1, padding=1) * m
        if torch.equal(spread, labels):
            return labels[:, 0].long()
        labels = spread


def count_objects(video: torch.Tensor, *, min_area: int = MIN_AREA, threshold: float = FOREGROUND_THRESHOLD,
                  value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """(B, F) number of foreground components of at least ``min_area`` pixels in each frame."""
    _check_threshold(threshold)
    positive_int("min_area", min_area, note="(pixels)")
    x, single = _to_unit(video, value_range)
    b, _, f, h, w = x.shape
    labels = label_components((_difference(x) > threshold).reshape(b * f, h, w)).reshape(b * f, h * w)
    image = torch.arange(b * f)[:, None].expand_as(labels)
    area = torch.bincount((image * (h * w + 1) + labels).flatten(), minlength=b * f * (h * w + 1))
    area = area.view(b * f, h * w + 1)[:, 1:]  # drop label 0 (background)
    counts = (area >= min_area).sum(1).view(b, f)
    return counts[0] if single else counts


def steady_motion(video: torch.Tensor, directions: list[str], *, min_area: int = MIN_AREA,
                  jump_factor: float = JUMP_FACTOR, jump_pixels: float = JUMP_PIXELS,
                  back_pixels: float = BACK_PIXELS, threshold: float = FOREGROUND_THRESHOLD,
                  value_range: tuple[float, float] = (-1.0, 1.0)) -> list[dict]:
    """Per video (one prompted direction each): the checks of the module docstring.

    Returns one dict per video: ``found_direction``, ``direction_ok``, ``one_object`` (every frame),
    ``frames_without_one_object``, ``largest_step_px``, ``allowed_step_px``, ``jump_ok``,
    ``largest_backward_step_px``, ``back_ok``, ``moving`` and ``steady`` (one object, no jump, no
    step back, moving).
    """
    x, single = _to_unit(video, value_range)
    if single:
        raise ValueError("steady_motion takes a batch (B, 3, F, H, W) and one direction per video")
    if len(directions) != x.shape[0]:
        raise ValueError(f"need one direction per video: {x.shape[0]} videos, {len(directions)} directions")
    bad = sorted({d for d in directions if d not in DIRECTIONS})
    if bad:
        raise ValueError(f"directions {bad} are not among {', '.join(DIRECTIONS)}")
    if x.shape[2] < 2:
        raise ValueError(f"steady motion needs at least 2 frames, got shape {tuple(x.shape)}")
    for name, v in (("jump_factor", jump_factor), ("jump_pixels", jump_pixels), ("back_pixels", back_pixels)):
        check_number(name, v, minimum=0, finite=False)  # inf: no limit
    unit = (0.0, 1.0)
    size = x.shape[-1]
    counts = count_objects(x, min_area=min_area, threshold=threshold, value_range=unit)  # (B, F)
    trajectory = centroid_trajectory(x, threshold=threshold, value_range=unit) * size  # (B, F, 2) pixels
    shift = displacement(trajectory / size)  # (B, 2) frame units
    rows = []
    for b, want in enumerate(directions):
        dx, dy = shift[b].tolist()
        found = direction_name(dx, dy)
        steps = trajectory[b, 1:] - trajectory[b, :-1]  # (F - 1, 2)
        finite = torch.isfinite(steps).all(-1)
        lengths = steps[finite].norm(dim=-1)
        net = math.hypot(dx, dy) * size if math.isfinite(dx) else 0.0
        allowed = jump_factor * net / (x.shape[2] - 1) + jump_pixels
        along = (steps[finite] @ (shift[b] / shift[b].norm())) if net > 0 else torch.zeros(0)
        largest = float(lengths.max()) if lengths.numel() else math.inf
        back = float((-along).max()) if along.numel() else math.inf
        one = int((counts[b] != 1).sum())
        row = {"found_direction": found, "direction_ok": found == want, "one_object": one == 0,
               "frames_without_one_object": one, "largest_step_px": largest, "allowed_step_px": allowed,
               "jump_ok": largest <= allowed, "largest_backward_step_px": back, "back_ok": back <= back_pixels}
        row["moving"] = found != "none"
        row["steady"] = row["moving"] and row["one_object"] and row["jump_ok"] and row["back_ok"]
        rows.append(row)
    return rows


__all__ = ["BACK_PIXELS", "JUMP_FACTOR", "JUMP_PIXELS", "MIN_AREA", "count_objects", "label_components",
           "steady_motion"]
