"""From attributes to a clip: place shapes and choose trajectories that show the caption.

`make_params` turns attributes (colour, shape, motion, ...) into a
`ClipParams` whose motion is guaranteed to be visible within the clip's span
[0, (num_frames - 1) * frame_skip] source frames:

- "moves": straight line; the shape stays in the frame (if a fast, big shape cannot fit the
  whole way, at most 30% of its reach may leave the frame at the ends);
- "bounces": touches a wall exactly at an inner frame of the clip (never the first or
  last), reaching ~1 pixel past it, so the contact and the reversal are both on screen;
- "rotates": only shapes without full rotational symmetry, and by less than one symmetry
  period, so consecutive frames never alias;
- "grows" / "shrinks": the radius changes linearly by a factor of 1.5 to 3.

Speeds are relative to the clip's span (a "normal" move crosses 38% of the frame over the
clip), so a clip looks the same at any frame_skip; rendering it at other times (the frames
between keyframes) follows the same trajectory.

Taught in notebook 01 (notebooks/01_moving_shapes.ipynb).
"""

from __future__ import annotations

import math

import numpy as np

from minifusion.checks import check_int
from minifusion.data.captions import caption_for
from minifusion.data.render import OUTER_RADIUS, ClipParams, ShapeTrack, shape_extent
from minifusion.data.vocabulary import (
    DIRECTIONS,
    HELDOUT_COMBINATIONS,
    LOW_CONTRAST,
    NONE,
    ROTATION_SYMMETRY,
    SPINS,
    check_choice,
)

RADIUS = {"small": 0.08, "normal": 0.12, "big": 0.16}  # local unit of a shape, frame units
DISPLACEMENT = {"slow": 0.20, "normal": 0.38, "fast": 0.56}  # moves/bounces: path length over the clip
ROTATION = {"slow": 0.30, "normal": 0.50, "fast": 0.75}  # rotates: fraction of the symmetry period
GROWTH = {"slow": 1.5, "normal": 2.0, "fast": 3.0}  # grows/shrinks: end radius / start radius
JITTER = 0.1  # every amount above varies by +-10%; the speed classes never overlap
MAX_HIDDEN = 0.3  # the most of a moving shape's reach that may leave the frame
MIN_GAP = 0.03  # clearance between two shapes, frame units
WALL_OVERLAP = 0.012  # a bouncing shape reaches this far past the wall (~1 px at 64), so contact shows


def check_clip_length(num_frames: object, frame_skip: object) -> tuple[int, int]:
    """Validate the time grid of a clip: num_frames >= 2 and frame_skip >= 1, both ints."""
    return (check_int("num_frames", num_frames, minimum=2, numpy=True),
            check_int("frame_skip", frame_skip, minimum=1, numpy=True))


def make_params(
    *,
    color: str,
    shape: str,
    motion: str = "moves",
    direction: str | None = None,
    speed: str = "normal",
    size: str = "normal",
    spin: str | None = None,
    background: str = "black",
    color2: str | None = None,
    shape2: str | None = None,
    num_frames: int = 8,
    frame_skip: int = 4,
    seed: int | np.random.Generator = 0,
) -> ClipParams:
    """A clip with the given attributes; placement and small variations are drawn from `seed`.

    `direction` (moves/bounces) and `spin` (rotates) are drawn at random when None. Raises
    ValueError for values outside the vocabulary or combinations a clip cannot show.
    """
    num_frames, frame_skip = check_clip_length(num_frames, frame_skip)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if motion in ("moves", "bounces") and direction is None:
        direction = tuple(DIRECTIONS)[rng.integers(len(DIRECTIONS))]
    if motion == "rotates":
        spin = check_choice("spin", spin, SPINS) if spin is not None else SPINS[rng.integers(2)]
    elif spin not in (None, NONE):
        raise ValueError(f"spin {spin!r} given for motion {motion!r}; only 'rotates' takes a spin")
    attrs = {
        "color": color, "shape": shape, "motion": motion, "direction": direction or NONE,
        "speed": speed, "size": size, "spin": spin or NONE, "background": background,
        "num_objects": 1 if color2 is None and shape2 is None else 2,
        "color2": color2 or NONE, "shape2": shape2 or NONE,
    }
    caption = caption_for(**attrs)  # validates every value and the combination
    for c in (color, color2):
        if c in LOW_CONTRAST[background]:
            raise ValueError(f"color {c!r} barely shows on background {background!r}; pick a colour other than "
                             f"{', '.join(map(repr, sorted(LOW_CONTRAST[background])))}")
    if motion == "bounces" and num_frames < 3:
        raise ValueError(f"'bounces' needs num_frames >= 3 to show the wall contact, got {num_frames}")
    return _build(attrs, caption, rng, num_frames, frame_skip)


def _jitter(rng: np.random.Generator) -> float:
    return float(rng.uniform(1.0 - JITTER, 1.0 + JITTER))


def _start_range(reach_lo: float, reach_hi: float, travel: float) -> tuple[float, float]:
    """Start positions on one axis that keep the shape in the frame over a travel of `travel`."""
    excess = abs(travel) + reach_lo + reach_hi - 1.0
    hidden = max(0.0, excess / (reach_lo + reach_hi))
    if hidden > MAX_HIDDEN:
        raise ValueError(f"a shape of reach {reach_lo + reach_hi:.2f} cannot travel {abs(travel):.2f} of the frame "
                         f"and stay mostly visible")
    lo, hi = reach_lo * (1.0 - hidden), 1.0 - reach_hi * (1.0 - hidden)
    return lo - min(0.0, travel), hi - max(0.0, travel)


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi)) if hi > lo else 0.5 * (lo + hi)


def _build(attrs: dict, caption: str, rng: np.random.Generator, num_frames: int, frame_skip: int) -> ClipParams:
    duration = float((num_frames - 1) * frame_skip)
    motion, speed = attrs["motion"], attrs["speed"]
    radius = RADIUS[attrs["size"]] * _jitter(rng)
    extra = {"wall": NONE, "contact_time": -1.0}
    if motion == "moves":
        shapes = [(attrs["color"], attrs["shape"])]
        if attrs["num_objects"] == 2:
            shapes.append((attrs["color2"], attrs["shape2"]))
        objects = _place_moving(rng, shapes, radius, attrs["direction"], DISPLACEMENT[speed] * _jitter(rng), duration)
    elif motion == "bounces":
        track, extra = _place_bouncing(rng, attrs, radius, DISPLACEMENT[speed] * _jitter(rng), num_frames, frame_skip)
        objects = [track]
    elif motion == "rotates":
        reach = OUTER_RADIUS[attrs["shape"]] * radius
        period = 2.0 * math.pi / ROTATION_SYMMETRY[attrs["shape"]]
        turn = ROTATION[speed] * _jitter(rng) * period * (1.0 if attrs["spin"] == "clockwise" else -1.0)
        objects = [ShapeTrack(
            shape=attrs["shape"], color=attrs["color"], radius=radius,
            position=(_uniform(rng, reach, 1 - reach), _uniform(rng, reach, 1 - reach)),
            angle=float(rng.uniform(0.0, period)), angular_velocity=turn / duration,
        )]
    else:  # grows / shrinks
        ratio = GROWTH[speed] * _jitter(rng)
        r0, r1 = radius / math.sqrt(ratio), radius * math.sqrt(ratio)
        if motion == "shrinks":
            r0, r1 = r1, r0
        left, right, top, bottom = (e * max(r0, r1) for e in shape_extent(attrs["shape"]))
        objects = [ShapeTrack(
            shape=attrs["shape"], color=attrs["color"], radius=r0, growth=(r1 - r0) / duration,
            position=(_uniform(rng, left, 1 - right), _uniform(rng, top, 1 - bottom)),
        )]
    heldout = any((o.color, o.shape) in HELDOUT_COMBINATIONS for o in objects)
    attributes = {**attrs, **extra, "heldout": heldout}
    return ClipParams(objects=tuple(objects), background=attrs["background"], num_frames=num_frames,
                      frame_skip=frame_skip, caption=caption, attributes=attributes)


def _place_moving(rng: np.random.Generator, shapes: list[tuple[str, str]], radius: float, direction: str,
                  distance: float, duration: float) -> list[ShapeTrack]:
    """One or two shapes on parallel straight paths (same velocity), inside the frame, not touching."""
    dx, dy = DIRECTIONS[direction]
    travel = (distance * dx, distance * dy)
    radii = [radius] + [RADIUS["normal"] * _jitter(rng) for _ in shapes[1:]]
    ranges = []
    for (_, shape), r in zip(shapes, radii):
        left, right, top, bottom = (e * r for e in shape_extent(shape))
        ranges.append((_start_range(left, right, travel[0]), _start_range(top, bottom, travel[1])))
    for _ in range(1000):
        starts = [(_uniform(rng, *rx), _uniform(rng, *ry)) for rx, ry in ranges]
        if len(starts) == 1:
            break
        gap = math.dist(starts[0], starts[1]) - sum(OUTER_RADIUS[s] * r for (_, s), r in zip(shapes, radii))
        if gap >= MIN_GAP:
            break
    else:
        raise ValueError(f"could not place {shapes} moving {direction} without overlap")
    velocity = (travel[0] / duration, travel[1] / duration)
    return [ShapeTrack(shape=s, color=c, position=p, velocity=velocity, radius=r)
            for (c, s), p, r in zip(shapes, starts, radii)]


def _place_bouncing(rng: np.random.Generator, attrs: dict, radius: float, distance: float, num_frames: int,
                    frame_skip: int) -> tuple[ShapeTrack, dict]:
    """A shape that touches a wall exactly at an inner frame k (1 <= k <= num_frames - 2)."""
    left, right, top, bottom = (e * radius for e in shape_extent(attrs["shape"]))
    lows = (left - WALL_OVERLAP, top - WALL_OVERLAP)  # centre limits = wall contact
    highs = (1.0 - right + WALL_OVERLAP, 1.0 - bottom + WALL_OVERLAP)
    dx, dy = DIRECTIONS[attrs["direction"]]
    travel = (distance * dx, distance * dy)
    axes = [a for a in (0, 1) if travel[a] != 0.0]
    axis = axes[rng.integers(len(axes))]
    width = highs[axis] - lows[axis]
    last = num_frames - 1
    inner = list(range(1, last))
    middle = [k for k in inner if 0.2 <= k / last <= 0.8] or inner
    frames = [k for k in middle if abs(travel[axis]) * max(k / last, 1 - k / last) <= width]
    if not frames:
        raise ValueError(f"a {attrs['size']} {attrs['shape']} at speed {attrs['speed']!r} cannot bounce once "
                         f"within {num_frames} frames")
    k = frames[rng.integers(len(frames))]
    wall_pos = highs[axis] if travel[axis] > 0 else lows[axis]
    start = [0.0, 0.0]
    start[axis] = wall_pos - travel[axis] * k / last  # unfolded path reaches the wall at frame k
    other = 1 - axis
    lo, hi = lows[other] - min(0.0, travel[other]), highs[other] - max(0.0, travel[other])
    start[other] = _uniform(rng, lo, hi) if hi >= lo else _uniform(rng, lows[other], highs[other])
    duration = float(last * frame_skip)
    track = ShapeTrack(shape=attrs["shape"], color=attrs["color"], radius=radius, position=(start[0], start[1]),
                       velocity=(travel[0] / duration, travel[1] / duration),
                       bounds=(lows[0], highs[0], lows[1], highs[1]))
    wall = (("left", "right"), ("top", "bottom"))[axis][int(travel[axis] > 0)]
    return track, {"wall": wall, "contact_time": float(k * frame_skip)}
