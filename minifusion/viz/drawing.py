"""Plain drawing functions behind the notebook widgets: one frame in, one RGB uint8 picture out.

The widgets in `minifusion.viz.widgets` only wire sliders to these functions, so everything a
widget shows can be tested (and reused in scripts) without a browser:
- `draw_frame` / `render_frame_png`: frame `index` of a video (a batch is tiled side by side);
- `draw_compare_frame`: several videos of different lengths as rows, aligned by time, e.g.
  8 keyframes against the 29 frames interpolated from them (keyframe k sits at frame 4k);
- `draw_denoising_step`: x_t next to the predicted x0 at one step of a sampling trajectory.

Videos are read as in `minifusion.viz.convert.to_uint8_frames` (torch (C, F, H, W) in [-1, 1],
numpy (F, H, W, C) in [0, 1], or as `layout` / `value_range` say).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from einops import rearrange

from minifusion.checks import check_int
from minifusion.viz.convert import tile_batch, to_bfhwc_uint8, upscale

_EXACT = np.array([0, 160, 60], np.uint8)  # border of a row that has a frame at this time
_HELD = np.array([200, 200, 200], np.uint8)  # border of a row still showing an earlier frame
_STRIP = 16  # height in pixels of a text strip


@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=11)


def text_width(text: str) -> int:
    """Pixels a `text_strip` needs to show `text` whole (text plus its margins)."""
    return int(np.ceil(_font().getlength(text))) + 6


def text_strip(width: int, text: str, *, height: int = _STRIP) -> np.ndarray:
    """A white (height, width, 3) uint8 strip with `text` written in black at the left."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, height), (255, 255, 255))
    ImageDraw.Draw(strip).text((3, 2), text, fill=(0, 0, 0), font=_font())
    return np.asarray(strip)


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 (H, W, 3) or (H, W, 1) -> PNG file bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def check_index(index: Any, count: int, what: str = "frame") -> int:
    """An index into `count` items; negative or too large raises ValueError."""
    index = check_int(f"{what} index", index, numpy=True)
    if not 0 <= index < count:
        raise ValueError(f"{what} index {index} is out of range: allowed 0..{count - 1} ({count} {what}s)")
    return index


def _stack(parts: Sequence[np.ndarray], axis: int, gap: int = 2) -> np.ndarray:
    """Concatenate RGB pictures along axis 0 (rows) or 1 (columns), padding with white."""
    other = 1 - axis
    size = max(p.shape[other] for p in parts)
    padded = []
    for i, p in enumerate(parts):
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, size - p.shape[other])
        padded.append(np.pad(p, pad, constant_values=255))
        if gap and i < len(parts) - 1:
            shape = [0, 0, 3]
            shape[axis], shape[other] = gap, size
            padded.append(np.full(shape, 255, np.uint8))
    return np.concatenate(padded, axis=axis)


def _with_border(image: np.ndarray, color: np.ndarray, width: int = 3) -> np.ndarray:
    out = np.pad(image, ((width, width), (width, width), (0, 0)))
    out[:width], out[-width:], out[:, :width], out[:, -width:] = color, color, color, color
    return out


def _picture(frames: np.ndarray, index: int, scale: float, ncols: int | None = None) -> np.ndarray:
    """Frame `index` of uint8 (B, F, H, W, 3) frames, scaled, batch tiled -> (H', W', 3)."""
    return tile_batch(upscale(frames[:, index : index + 1], scale), ncols=ncols)[0]


def draw_frame(
    video: Any,
    index: int,
    *,
    scale: float = 4,
    label: str | None = None,
    ncols: int | None = None,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
) -> np.ndarray:
    """Frame `index` of a video as an RGB uint8 picture (H * scale (+ label strip), W * scale, 3).

    A batch is tiled side by side (`ncols` per row); `label` is written in a strip below.
    """
    frames = to_bfhwc_uint8(video, layout=layout, value_range=value_range, clip=clip, rgb=True)
    picture = _picture(frames, check_index(index, frames.shape[1]), scale, ncols)
    if label is not None:
        picture = np.concatenate([picture, text_strip(picture.shape[1], label)], axis=0)
    return picture


def render_frame_png(
    video: Any, index: int, scale: float = 4, label: str | None = None, **read: Any
) -> bytes:
    """`draw_frame` as PNG bytes (what the frame player's Image widget shows)."""
    return png_bytes(draw_frame(video, index, scale=scale, label=label, **read))


def compare_times(
    lengths: Mapping[str, int], times: Mapping[str, Sequence[float]] | None = None
) -> dict[str, np.ndarray]:
    """The time of every frame of every row.

    By default all rows span the same interval, measured in frames of the longest row: a row
    of n frames puts frame i at i * (N - 1) / (n - 1). For 8 keyframes and the 4 * 8 - 3 = 29
    frames interpolated from them this puts keyframe k at frame 4k. `times` overrides it with
    one strictly increasing sequence per row.
    """
    if not lengths:
        raise ValueError("rows must hold at least one video, got none")
    longest = max(lengths.values())
    if times is None:
        return {
            name: np.arange(n, dtype=np.float64) * ((longest - 1) / (n - 1) if n > 1 else 0.0)
            for name, n in lengths.items()
        }
    if set(times) != set(lengths):
        raise ValueError(f"times has rows {sorted(times)}, the videos have rows {sorted(lengths)}")
    out = {}
    for name, n in lengths.items():
        t = np.asarray(times[name], dtype=np.float64)
        if t.shape != (n,) or (n > 1 and not np.all(np.diff(t) > 0)):
            raise ValueError(
                f"times[{name!r}] must be {n} strictly increasing numbers (one per frame), "
                f"got {np.asarray(times[name]).tolist()}"
            )
        out[name] = t
    return out


def compare_timeline(row_times: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sorted union of all rows' frame times: the compare player's slider runs over these."""
    return np.unique(np.round(np.concatenate(list(row_times.values())), 9))


def compare_frame_indices(
    row_times: Mapping[str, np.ndarray], index: int
) -> tuple[float, dict[str, tuple[int, bool]]]:
    """At step `index` of the timeline: (time, {row: (frame shown, whether it is exactly then)}).

    A row shows its latest frame at or before the time (its first frame before it starts).
    """
    timeline = compare_timeline(row_times)
    now = float(timeline[check_index(index, len(timeline), "time")])
    shown = {}
    for name, t in row_times.items():
        i = max(int(np.searchsorted(t, now + 1e-9, side="right")) - 1, 0)
        shown[name] = (i, bool(abs(t[i] - now) < 1e-6))
    return now, shown


def _read_rows(rows: Mapping[str, Any], **read: Any) -> dict[str, np.ndarray]:
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError(f"rows must be a non-empty dict {{name: video}}, got {type(rows).__name__}")
    return {str(k): to_bfhwc_uint8(v, rgb=True, **read) for k, v in rows.items()}


def draw_compare_frame(
    rows: Mapping[str, Any],
    index: int,
    *,
    times: Mapping[str, Sequence[float]] | None = None,
    scale: float = 4,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
) -> np.ndarray:
    """Several videos as rows at one moment of a shared timeline -> RGB uint8 picture.

    `index` counts the union of all rows' frame times (see `compare_times`; with the default
    times and 8 keyframes against 29 frames, index i is frame i of the longer row). Each row
    shows its latest frame at or before that time: with a green border when it has a frame
    exactly then, with a grey one when it holds an earlier frame (e.g. between keyframes).
    """
    videos = _read_rows(rows, layout=layout, value_range=value_range, clip=clip)
    row_times = compare_times({k: v.shape[1] for k, v in videos.items()}, times)
    now, shown = compare_frame_indices(row_times, index)
    parts = []
    for name, frames in videos.items():
        i, exact = shown[name]
        picture = _with_border(_picture(frames, i, scale), _EXACT if exact else _HELD)
        label = f"{name} {i + 1}/{frames.shape[1]}{'' if exact else ' held'}"
        strip = text_strip(max(picture.shape[1], text_width(label)), label)  # the whole label, even on small frames
        parts.append(_stack([strip, picture], axis=0, gap=0))
    timeline = compare_timeline(row_times)
    title = f"time {now:g}  ({index + 1} of {len(timeline)})"
    header = text_strip(max(text_width(title), *(p.shape[1] for p in parts)), title)
    return _stack([header, *parts], axis=0, gap=4)


def _strip_of_frames(frames: np.ndarray, scale: float) -> np.ndarray:
    """uint8 (B, F, H, W, 3) -> one picture: frames left to right, batch top to bottom."""
    f = frames.shape[1]
    cells = rearrange(upscale(frames, scale), "b f h w c -> (b f) 1 h w c")
    return tile_batch(cells, ncols=f)[0]


def draw_denoising_step(
    trajectory: Sequence[tuple[Any, Any, Any]],
    index: int,
    *,
    scale: float = 4,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Step `index` of a sampling trajectory: x_t next to the predicted x0 -> RGB uint8 picture.

    `trajectory` is a list of (timestep, x_t, pred_x0) entries; x_t and pred_x0 are images
    (C, H, W) or videos (C, F, H, W) (or numpy / batched forms, see `to_uint8_frames`), and
    pred_x0 may be None. Both are clipped to the value range (x_t is noisy by nature). Images
    sit side by side; videos are shown as two rows of frames.
    """
    if isinstance(trajectory, (str, bytes)) or not isinstance(trajectory, Sequence) or not trajectory:
        raise ValueError(f"trajectory must be a non-empty list of (timestep, x_t, pred_x0), got {trajectory!r:.80}")
    entry = trajectory[check_index(index, len(trajectory), "step")]
    if not isinstance(entry, (tuple, list)) or len(entry) != 3:
        raise ValueError(f"trajectory entry {index} must be (timestep, x_t, pred_x0), got {entry!r:.80}")
    timestep, x_t, pred_x0 = entry
    timestep = timestep.item() if hasattr(timestep, "item") else timestep
    read = dict(layout=layout, value_range=value_range, clip=True, rgb=True)
    noisy_frames = to_bfhwc_uint8(x_t, **read)
    noisy = _strip_of_frames(noisy_frames, scale)
    if pred_x0 is None:
        clean = np.full_like(noisy, 128)  # no prediction at this step: a grey placeholder
    else:
        clean = _strip_of_frames(to_bfhwc_uint8(pred_x0, **read), scale)
    panels = [
        np.concatenate([text_strip(noisy.shape[1], f"x_t, t={timestep}"), noisy], axis=0),
        np.concatenate([text_strip(clean.shape[1], "predicted x0"), clean], axis=0),
    ]
    side_by_side = noisy_frames.shape[:2] == (1, 1)  # one image: side by side
    body = _stack(panels, axis=1 if side_by_side else 0, gap=6)
    header = text_strip(body.shape[1], f"step {index + 1}/{len(trajectory)}")
    return np.concatenate([header, body], axis=0)
