"""Turn the package's video tensors into uint8 frames for display.

Two conventions meet here:
- models: torch tensors, video ``(C, F, H, W)`` or a batch ``(B, C, F, H, W)``, values in [-1, 1];
- pipeline output: numpy arrays, ``(F, H, W, C)`` or ``(B, F, H, W, C)``, values in [0, 1].

Nothing is guessed from the values. The layout and value range come from the arguments; when
they are left out, the defaults follow the type (torch -> channels first and [-1, 1], numpy ->
channels last and [0, 1]) and the rank (3 = image, 4 = one video, 5 = batch). A shape that does
not fit the layout, a channel count other than 1 (grey) or 3 (RGB), an unsupported dtype,
NaN/inf, or values far outside the declared range (0..255 data read as [-1, 1]) raise
``ValueError`` with the shape or range received. Values moderately outside the range (a
sample a little past +-1, a noisy x_t) are clipped, as any display would; a video in [-1, 1]
declared as [0, 1] is not caught and shows too dark.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from einops import rearrange

from minifusion.checks import check_number

# Every layout is read into (B, F, H, W, C); images become one video of one frame.
_TO_BFHWC = {
    "chw": "c h w -> 1 1 h w c",
    "hwc": "h w c -> 1 1 h w c",
    "cfhw": "c f h w -> 1 f h w c",
    "fhwc": "f h w c -> 1 f h w c",
    "bcfhw": "b c f h w -> b f h w c",
    "bfhwc": "b f h w c -> b f h w c",
}
LAYOUTS = tuple(_TO_BFHWC)
_DEFAULT_LAYOUT = {
    ("torch", 3): "chw", ("torch", 4): "cfhw", ("torch", 5): "bcfhw",
    ("numpy", 3): "hwc", ("numpy", 4): "fhwc", ("numpy", 5): "bfhwc",
}
_DEFAULT_RANGE = {"torch": (-1.0, 1.0), "numpy": (0.0, 1.0)}
# Values may lie outside the declared range by this many range widths before it is an error:
# room for a noisy x_t (|x| < 7 for a video with unit-variance noise), none for 0..255 data.
_RANGE_SLACK = 3.0


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")  # no torch import here: a tensor implies torch is loaded
    return torch is not None and isinstance(x, torch.Tensor)


def _as_numpy(video: Any) -> tuple[np.ndarray, str]:
    """Return (array, kind) with kind "torch" or "numpy"."""
    if _is_tensor(video):
        torch = sys.modules["torch"]
        t = video.detach().cpu()
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # bfloat16 / float16 have no (or a lossy) numpy twin
        return t.numpy(), "torch"
    if isinstance(video, np.ndarray):
        return video, "numpy"
    raise ValueError(
        f"video must be a torch.Tensor or a numpy.ndarray, got {type(video).__name__}"
    )


def _resolve_layout(shape: tuple[int, ...], kind: str, layout: str | None) -> str:
    if layout is None:
        layout = _DEFAULT_LAYOUT.get((kind, len(shape)))
        if layout is None:
            expected = "(C, H, W), (C, F, H, W) or (B, C, F, H, W)" if kind == "torch" else \
                "(H, W, C), (F, H, W, C) or (B, F, H, W, C)"
            raise ValueError(
                f"video of shape {shape} has rank {len(shape)}; a {kind} video must be {expected} "
                f"(or pass layout= one of {', '.join(repr(l) for l in LAYOUTS)})"
            )
        return layout
    if layout not in _TO_BFHWC:
        raise ValueError(
            f"layout {layout!r} is not one of {', '.join(repr(l) for l in LAYOUTS)}"
        )
    if len(shape) != len(layout):
        raise ValueError(
            f"layout {layout!r} needs a {len(layout)}-D array, got shape {shape}"
        )
    return layout


_FIRST_TO_LAST = {"chw": "hwc", "cfhw": "fhwc", "bcfhw": "bfhwc"}
_LAST_TO_FIRST = {v: k for k, v in _FIRST_TO_LAST.items()}


def _channel_hint(shape: tuple[int, ...], layout: str) -> str:
    if layout in _FIRST_TO_LAST and shape[-1] in (1, 3):
        return f"; for channels-last data pass layout={_FIRST_TO_LAST[layout]!r}"
    if layout in _LAST_TO_FIRST and shape[_LAST_TO_FIRST[layout].index("c")] in (1, 3):
        return f"; for channels-first data pass layout={_LAST_TO_FIRST[layout]!r}"
    return "; latents (4 channels) must be decoded first (or pick channels, e.g. x[:3])"


def _convert(
    video: Any,
    layout: str | None,
    value_range: tuple[float, float] | None,
    clip: bool,
    rgb: bool,
) -> tuple[np.ndarray, str]:
    """Return (uint8 frames (B, F, H, W, C), resolved layout)."""
    arr, kind = _as_numpy(video)
    shape = tuple(arr.shape)
    layout = _resolve_layout(shape, kind, layout)
    if 0 in shape:
        raise ValueError(f"video of shape {shape} has an empty axis")
    channels = shape[layout.index("c")]
    if channels not in (1, 3):
        raise ValueError(
            f"video of shape {shape} read as layout {layout!r} has {channels} channels; "
            f"only 1 (grey) or 3 (RGB) can be shown" + _channel_hint(shape, layout)
        )

    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
        if value_range is None:
            value_range = _DEFAULT_RANGE[kind]
    elif np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        if value_range is None:
            raise ValueError(
                f"video of dtype {arr.dtype} needs an explicit value_range, e.g. (0, 255) for uint8 "
                f"frames; floating point video defaults to (-1, 1) for torch and (0, 1) for numpy"
            )
        arr = arr.astype(np.float32)
    else:
        raise ValueError(
            f"video of dtype {arr.dtype} cannot be shown; use a floating point dtype "
            f"(or an integer dtype with value_range=(0, 255))"
        )

    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range {tuple(value_range)} must be (low, high) with low < high")
    if not np.isfinite(arr).all():
        raise ValueError(f"video of shape {shape} contains NaN or inf values")
    slack = _RANGE_SLACK * (hi - lo)
    vmin, vmax = float(arr.min()), float(arr.max())
    if not clip and (vmin < lo - slack or vmax > hi + slack):
        raise ValueError(
            f"video values span [{vmin:.3g}, {vmax:.3g}], far outside value_range ({lo:g}, {hi:g}); "
            f"pass the range the data is in (value_range=(-1, 1) for model tensors, (0, 1) for "
            f"pipeline output) or clip=True to show it clipped"
        )
    scaled = np.rint(np.clip((arr - lo) * (255.0 / (hi - lo)), 0.0, 255.0)).astype(np.uint8)
    frames = rearrange(scaled, _TO_BFHWC[layout])
    if rgb and frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return np.ascontiguousarray(frames), layout


def to_bfhwc_uint8(
    video: Any,
    *,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
    rgb: bool = False,
) -> np.ndarray:
    """Any supported video, batch or image -> uint8 array (B, F, H, W, C), always 5-D.

    See `to_uint8_frames` for the arguments; this is the form the drawing code works on.
    """
    return _convert(video, layout, value_range, clip, rgb)[0]


def to_uint8_frames(
    video: Any,
    *,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
    rgb: bool = False,
) -> np.ndarray:
    """Video (or image) -> uint8 frames for display.

    Args:
        video: torch tensor or numpy array. Default reading, by type and rank:
            torch (C, H, W) / (C, F, H, W) / (B, C, F, H, W) in [-1, 1];
            numpy (H, W, C) / (F, H, W, C) / (B, F, H, W, C) in [0, 1].
        layout: one of "chw", "hwc", "cfhw", "fhwc", "bcfhw", "bfhwc" to override the default.
        value_range: (low, high) the values live in; low maps to 0 and high to 255.
            Integer input (e.g. uint8 frames) must state it, e.g. (0, 255).
        clip: clip values however far outside value_range; without it, values are clipped
            too, but more than three range widths outside (e.g. 0..255 data read as [-1, 1])
            raise ValueError, as that is a wrong value_range.
        rgb: repeat a grey channel to three.

    Returns:
        uint8 (F, H, W, C) for one video or image (an image is one frame), (B, F, H, W, C)
        for a batch; C is 1 or 3.
    """
    frames, layout = _convert(video, layout, value_range, clip, rgb)
    return frames if layout.startswith("b") else frames[0]


def to_uint8_image(
    image: Any,
    *,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
    rgb: bool = False,
) -> np.ndarray:
    """One image -> uint8 (H, W, C).

    torch (C, H, W) in [-1, 1] or numpy (H, W, C) in [0, 1] by default; `layout` ("chw" or
    "hwc"), `value_range`, `clip` and `rgb` as in `to_uint8_frames`.
    """
    rank = image.dim() if _is_tensor(image) else np.ndim(image)
    if (layout or "") not in ("", "chw", "hwc") or rank != 3:
        raise ValueError(
            f"to_uint8_image takes one image (C, H, W) or (H, W, C), got shape "
            f"{tuple(np.shape(image)) if not _is_tensor(image) else tuple(image.shape)}"
            f"{f' with layout {layout!r}' if layout else ''}; use to_uint8_frames for video"
        )
    return to_bfhwc_uint8(image, layout=layout, value_range=value_range, clip=clip, rgb=rgb)[0, 0]


def upscale(frames: np.ndarray, scale: float) -> np.ndarray:
    """Resize uint8 frames (..., H, W, C) by `scale`.

    An integer scale >= 1 repeats pixels (nearest neighbour, exact: tiny 64x64 clips stay
    crisp); any other positive scale resizes with Pillow (box filter when shrinking).
    """
    check_number("scale", scale, minimum=0, exclusive_minimum=True)
    if float(scale).is_integer():
        s = int(scale)
        return frames if s == 1 else frames.repeat(s, axis=-3).repeat(s, axis=-2)
    from PIL import Image

    h, w, c = frames.shape[-3:]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.NEAREST
    flat = frames.reshape(-1, h, w, c)  # (N, H, W, C)
    out = [np.asarray(Image.fromarray(f[..., 0] if c == 1 else f).resize(size, resample)) for f in flat]
    return np.stack(out).reshape(*frames.shape[:-3], size[1], size[0], c)  # (..., H', W', C)


def tile_batch(
    frames: np.ndarray, *, ncols: int | None = None, gap: int = 2, gap_value: int = 255
) -> np.ndarray:
    """Tile a batch of videos (B, F, H, W, C) into one video (F, H', W', C).

    Videos go left to right, `ncols` per row (all in one row by default), `gap` pixels of
    `gap_value` between them. Videos must share F, H, W, C.
    """
    if frames.ndim != 5:
        raise ValueError(f"tile_batch needs (B, F, H, W, C) frames, got shape {frames.shape}")
    b, f, h, w, c = frames.shape
    ncols = b if ncols is None else ncols
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    ncols = min(ncols, b)
    nrows = -(-b // ncols)
    out = np.full(
        (f, nrows * h + (nrows - 1) * gap, ncols * w + (ncols - 1) * gap, c), gap_value, np.uint8
    )
    for i in range(b):
        r, col = divmod(i, ncols)
        y, x = r * (h + gap), col * (w + gap)
        out[:, y : y + h, x : x + w] = frames[i]
    return out


def as_display_video(
    video: Any,
    *,
    scale: float = 1,
    ncols: int | None = None,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
) -> np.ndarray:
    """Video, batch or image -> one RGB uint8 video (F, H, W, 3): scaled, batch tiled."""
    frames = to_bfhwc_uint8(video, layout=layout, value_range=value_range, clip=clip, rgb=True)
    return tile_batch(upscale(frames, scale), ncols=ncols)


def check_labels(labels: Sequence[str] | None, count: int, what: str = "labels") -> list[str] | None:
    """Validate one label per frame (or None)."""
    if labels is None:
        return None
    if isinstance(labels, str) or len(labels) != count:
        got = repr(labels) if isinstance(labels, str) else f"{len(labels)} entries"
        raise ValueError(f"{what} must be a sequence of {count} strings (one per frame), got {got}")
    return [str(l) for l in labels]
