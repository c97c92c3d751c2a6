"""Continuous-time, anti-aliased rendering of Moving Shapes clips.

Every clip is rendered from a continuous-time trajectory. A clip is a set of
`ShapeTrack`s: each is a trajectory - centre, radius and angle as functions of time - so a
frame can be rendered at *any* float time. Keyframes at frame skip 4, the frames between
them and quarter frames all come from one motion, which is the ground truth the
interpolation model is trained and measured against.

Time unit: source frames. A clip starts at t = 0 and its frames are at
t = k * frame_skip for k = 0 .. num_frames - 1 (`ClipParams.times`), so it spans
`ClipParams.duration = (num_frames - 1) * frame_skip` source frames. Rendering outside
[0, duration] extrapolates the trajectory, but captions only promise what happens inside it.

Rendering uses signed distances in pixels: a circle is |p - c| - r; the other shapes are
unions of convex polygons, each the intersection of half-planes (max of plane distances),
the union the min over polygons. Coverage is clamp(0.5 - distance, 0, 1), i.e. a linear
ramp one pixel wide across the edge (anti-aliasing). Work is vectorised over frames and
restricted to a bounding box around the shape, which is what makes it fast.
Output video is (C, F, H, W), float32, in [-1, 1].

Taught in notebook 01 (notebooks/01_moving_shapes.ipynb).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from minifusion.checks import check_int
from minifusion.data.vocabulary import BACKGROUNDS, COLORS, SHAPES, check_choice

_STAR_INNER = math.sin(math.radians(18)) / math.sin(math.radians(54))  # regular pentagram {5/2}


def _regular(n: int, radius: float, phase_deg: float) -> np.ndarray:
    a = np.radians(phase_deg + 360.0 / n * np.arange(n))
    return radius * np.stack([np.cos(a), np.sin(a)], axis=1)


def _star_parts(outer: float) -> list[np.ndarray]:
    # tip_i at -90 + 72 i degrees (first tip points up), inner_k between tips k and k+1.
    # Triangle (tip_i, inner_{i+1}, inner_{i+3}) = spike i plus most of the central pentagon;
    # the five overlap inside, so their union has no interior seams.
    tips = _regular(5, outer, -90.0)
    inner = _regular(5, outer * _STAR_INNER, -90.0 + 36.0)
    return [np.stack([tips[i], inner[(i + 1) % 5], inner[(i + 3) % 5]]) for i in range(5)]


# Each shape in local units (1 = the track's radius), as convex polygons. The numbers make
# the shapes' areas similar (circle pi, square 3.1, triangle 2.2, star 2.1).
_PARTS: dict[str, list[np.ndarray]] = {
    "square": [np.array([[-0.88, -0.88], [0.88, -0.88], [0.88, 0.88], [-0.88, 0.88]])],
    "triangle": [_regular(3, 1.3, -90.0)],
    "star": _star_parts(1.4),
}


def _half_planes(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Outward unit normals (P, E, 2) and offsets (P, E): distance = n . p - h (> 0 outside)."""
    normals, offsets = [], []
    for poly in parts:
        edge = np.roll(poly, -1, axis=0) - poly
        n = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        h = (n * poly).sum(1)
        inside = poly.mean(0)
        sign = np.where((n @ inside) - h > 0, -1.0, 1.0)  # make every normal point outward
        normals.append(n * sign[:, None])
        offsets.append(h * sign)
    return np.stack(normals), np.stack(offsets)


_PLANES = {name: _half_planes(parts) for name, parts in _PARTS.items()}
_VERTICES = {name: np.concatenate(parts) for name, parts in _PARTS.items()}
# Largest distance from the centre to the outline, in local units.
OUTER_RADIUS: dict[str, float] = {"circle": 1.0} | {
    name: float(np.linalg.norm(v, axis=1).max()) for name, v in _VERTICES.items()
}


def shape_extent(shape: str, angle: float = 0.0) -> tuple[float, float, float, float]:
    """(left, right, top, bottom) reach of `shape` from its centre at `angle`, in local units (all >= 0)."""
    if shape == "circle":
        return (1.0, 1.0, 1.0, 1.0)
    c, s = math.cos(angle), math.sin(angle)
    v = _VERTICES[check_choice("shape", shape, SHAPES)]
    x, y = c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]
    return (float(-x.min()), float(x.max()), float(-y.min()), float(y.max()))


@dataclass(frozen=True)
class ShapeTrack:
    """One shape and its trajectory; lengths in frame units, time in source frames."""

    shape: str  # one of SHAPES
    color: str  # one of COLORS
    position: tuple[float, float]  # centre (x, y) at t = 0; (0, 0) top-left, y down
    velocity: tuple[float, float] = (0.0, 0.0)  # centre change per source frame
    radius: float = 0.12  # size at t = 0 (1 local unit; a circle's radius)
    growth: float = 0.0  # radius change per source frame
    angle: float = 0.0  # radians at t = 0; positive turns clockwise on screen
    angular_velocity: float = 0.0  # radians per source frame
    # Walls the centre reflects between, (xmin, xmax, ymin, ymax); None = moves freely.
    bounds: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        check_choice("shape", self.shape, SHAPES)
        check_choice("color", self.color, tuple(COLORS))

    def center_at(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(times, dtype=np.float64)
        x = self.position[0] + self.velocity[0] * t
        y = self.position[1] + self.velocity[1] * t
        if self.bounds is not None:
            xmin, xmax, ymin, ymax = self.bounds
            x, y = _reflect(x, xmin, xmax), _reflect(y, ymin, ymax)
        return x, y

    def radius_at(self, times: np.ndarray) -> np.ndarray:
        return self.radius + self.growth * np.asarray(times, dtype=np.float64)

    def angle_at(self, times: np.ndarray) -> np.ndarray:
        return self.angle + self.angular_velocity * np.asarray(times, dtype=np.float64)


def _reflect(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold an unbounded 1-D path into [lo, hi] as if it bounced off walls at both ends."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p, lo)
    u = np.mod(p - lo, 2.0 * span)
    return lo + span - np.abs(u - span)


@dataclass(frozen=True)
class ClipParams:
    """Everything that defines a clip: tracks, background, its time grid, caption and attributes."""

    objects: tuple[ShapeTrack, ...]
    background: str = "black"
    num_frames: int = 8
    frame_skip: float = 4
    caption: str = ""
    attributes: dict = field(default_factory=dict, compare=False)

    @property
    def duration(self) -> float:
        """Span of the clip in source frames: its last frame is at this time."""
        return (self.num_frames - 1) * self.frame_skip

    @property
    def times(self) -> np.ndarray:
        """The clip's own frame times, k * frame_skip (float64, length num_frames)."""
        return np.arange(self.num_frames, dtype=np.float64) * self.frame_skip


def _alpha(track: ShapeTrack, times: np.ndarray, size: int) -> np.ndarray:
    """Coverage in [0, 1] of one shape on the frame grid: (F, size, size) float32."""
    cx, cy = track.center_at(times)
    # Pixel-index coordinates: pixel j's centre is at x = (j + 0.5) / size.
    cx, cy = cx * size - 0.5, cy * size - 0.5
    r = track.radius_at(times) * size  # (F,) pixels
    if np.any(r < 0):
        raise ValueError(f"radius became negative ({r.min() / size:.3g}) at some of the requested times")
    reach = r * OUTER_RADIUS[track.shape] + 2.0  # beyond this, coverage is exactly 0
    box = int(math.ceil(2.0 * reach.max())) + 2
    # Box origin per frame; clamped into a padded canvas (clamping only happens when the
    # shape is wholly outside the frame, where the box then holds zeros anyway).
    x0 = np.clip(np.floor(cx - reach.max()), -box, size).astype(np.int64)
    y0 = np.clip(np.floor(cy - reach.max()), -box, size).astype(np.int64)
    ramp = np.arange(box, dtype=np.float64)
    xs = (x0[:, None] + ramp) - cx[:, None]  # (F, box) offsets from the centre
    ys = (y0[:, None] + ramp) - cy[:, None]
    if track.shape == "circle":
        dist = np.sqrt(xs[:, None, :] ** 2 + ys[:, :, None] ** 2) - r[:, None, None]  # (F, box, box)
    else:
        normals, offsets = _PLANES[track.shape]  # (P, E, 2), (P, E)
        theta = track.angle_at(times)
        c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]  # (F, 1, 1)
        mx = c * normals[None, ..., 0] - s * normals[None, ..., 1]  # rotated normals, (F, P, E)
        my = s * normals[None, ..., 0] + c * normals[None, ..., 1]
        h = r[:, None, None] * offsets[None]  # (F, P, E)
        # plane distance for every (frame, polygon, edge, row, col): (F, P, E, box, box)
        dist = (mx[..., None, None] * xs[:, None, None, None, :]).astype(np.float32) + (
            my[..., None, None] * ys[:, None, None, :, None] - h[..., None, None]
        ).astype(np.float32)
        dist = dist.max(axis=2).min(axis=1)  # intersect edges, unite polygons: (F, box, box)
    alpha = np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32, copy=False)
    canvas = np.zeros((len(times), size + 2 * box, size + 2 * box), dtype=np.float32)
    for f in range(len(times)):
        canvas[f, y0[f] + box : y0[f] + 2 * box, x0[f] + box : x0[f] + 2 * box] = alpha[f]
    return canvas[:, box : box + size, box : box + size]


def render_clip(params: ClipParams, times: np.ndarray | list[float] | None = None, size: int = 64) -> torch.Tensor:
    """Render `params` at `times` (source frames; default `params.times`) as a (3, F, size, size)
    float32 tensor in [-1, 1]. Shapes are drawn in order, later ones on top."""
    if times is None:
        times = params.times
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)):
        raise ValueError(f"times must be a non-empty 1-D sequence of finite numbers, got shape {times.shape}")
    size = check_int("size", size, minimum=1, numpy=True)
    bg = np.asarray(BACKGROUNDS[check_choice("background", params.background, BACKGROUNDS)], np.float32) * 2 - 1
    video = np.empty((3, len(times), size, size), dtype=np.float32)
    video[:] = bg[:, None, None, None]
    for track in params.objects:
        alpha = _alpha(track, times, size)[None]  # (1, F, H, W)
        rgb = np.asarray(COLORS[track.color], np.float32)[:, None, None, None] * 2 - 1
        video += (rgb - video) * alpha
    return torch.from_numpy(video)
