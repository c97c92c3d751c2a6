"""Export video as GIF (Pillow only), MP4 (optional imageio + ffmpeg) or an HTML animation.

Input is any video the package makes: torch (C, F, H, W) / (B, C, F, H, W) in [-1, 1] or numpy
(F, H, W, C) / (B, F, H, W, C) in [0, 1] (see `minifusion.viz.convert`); a batch is tiled side by
side into one animation (`ncols` per row).

GIF notes: colours are reduced to an adaptive 256-colour palette per frame (exact for the flat
colours of Moving Shapes, within a few levels for gradients); Pillow merges identical consecutive
frames into one longer frame, so a clip that stands still reads back with fewer frames; frame
delays are stored in hundredths of a second and browsers slow anything under 20 ms down, so
`fps` must be at most 50.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from minifusion.checks import check_int, check_number
from minifusion.viz.convert import as_display_video, upscale

_MAX_GIF_FPS = 50


def _check_fps(fps: float, limit: float | None) -> None:
    check_number("fps", fps, minimum=0, exclusive_minimum=True)
    if limit is not None and fps > limit:
        raise ValueError(
            f"fps {fps} is above {limit}: GIF delays under 20 ms are slowed down by browsers"
        )


def _check_out_path(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ValueError(f"path {str(path)!r} must end in {suffix!r}, got suffix {path.suffix!r}")
    if not path.parent.is_dir():
        raise ValueError(f"folder {str(path.parent)!r} of path {str(path)!r} does not exist")
    return path


def _encode_gif(frames: np.ndarray, fps: float, loop: int | None) -> bytes:
    """uint8 RGB frames (F, H, W, 3) -> GIF bytes."""
    from PIL import Image

    if loop is not None:
        check_int("loop", loop, minimum=0, note="(0 = forever) or None (play once)")
    # Adaptive palette per frame; Pillow's default for RGB input may fall back to a web palette.
    images = [
        Image.fromarray(f).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        for f in frames
    ]
    options: dict[str, Any] = {"duration": max(1, round(1000 / fps)), "disposal": 1}
    if loop is not None:
        options["loop"] = loop
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], **options)
    return buffer.getvalue()


def gif_bytes(
    video: Any,
    fps: float = 8,
    scale: float = 1,
    loop: int | None = 0,
    *,
    ncols: int | None = None,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
) -> bytes:
    """Encode a video (or batch, tiled) as an animated GIF in memory. Arguments as `save_gif`."""
    _check_fps(fps, _MAX_GIF_FPS)
    frames = as_display_video(
        video, scale=scale, ncols=ncols, layout=layout, value_range=value_range, clip=clip
    )
    return _encode_gif(frames, fps, loop)


def save_gif(
    video: Any,
    path: str | Path,
    fps: float = 8,
    scale: float = 1,
    loop: int | None = 0,
    *,
    ncols: int | None = None,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
) -> Path:
    """Write a video as an animated GIF with Pillow (no ffmpeg) and return the path.

    Args:
        video: one video or a batch (tiled side by side, `ncols` per row); see `to_uint8_frames`.
        path: file ending in ".gif"; its folder must exist (ValueError otherwise).
        fps: frames per second, at most 50.
        scale: an integer repeats pixels (nearest neighbour: 64x64 clips stay crisp); a
            fraction shrinks the frames.
        loop: 0 loops forever, n repeats n times, None plays once.
        layout, value_range, clip: how to read `video` (see `to_uint8_frames`).
    """
    path = _check_out_path(path, ".gif")
    data = gif_bytes(
        video, fps, scale, loop, ncols=ncols, layout=layout, value_range=value_range, clip=clip
    )
    path.write_bytes(data)
    return path


def save_mp4(
    video: Any,
    path: str | Path,
    fps: float = 8,
    scale: float = 1,
    *,
    ncols: int | None = None,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
) -> Path:
    """Write a video as H.264 MP4 and return the path; needs the optional imageio + imageio-ffmpeg.

    Frames are padded with white to even sizes (yuv420p needs them). Arguments as `save_gif`.
    """
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes MP4 with)
    except ImportError as error:
        raise ImportError(
            "save_mp4 needs the optional packages imageio and imageio-ffmpeg "
            "(pip install 'minifusion[video]'); save_gif needs only Pillow"
        ) from error
    _check_fps(fps, None)
    path = _check_out_path(path, ".mp4")
    frames = as_display_video(
        video, scale=scale, ncols=ncols, layout=layout, value_range=value_range, clip=clip
    )
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    with imageio.get_writer(
        path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
        macro_block_size=1,
    ) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def video_html(
    video: Any,
    fps: float = 8,
    scale: float = 2,
    *,
    loop: int | None = 0,
    ncols: int | None = None,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
) -> str:
    """An HTML `<img>` holding the video as a base64 GIF: no JavaScript, so it plays in
    JupyterLab, in exported HTML and in GitHub's notebook viewer.

    To keep notebooks small the GIF is stored at the frames' own resolution and `scale` >= 1
    only sets the displayed width and height (the browser enlarges it, pixelated where CSS is
    honoured); a `scale` < 1 shrinks the stored frames themselves. A 29-frame 64x64 clip of
    flat shapes is about 4 kB of HTML, one with gradient backgrounds about 60 kB; noise
    (x_t at large t) compresses worst.
    """
    _check_fps(fps, _MAX_GIF_FPS)
    check_number("scale", scale, minimum=0, exclusive_minimum=True)
    frames = as_display_video(
        video, scale=1, ncols=ncols, layout=layout, value_range=value_range, clip=clip
    )
    if scale < 1:
        frames = upscale(frames, scale)
    _, h, w, _ = frames.shape
    display_scale = max(scale, 1)
    encoded = base64.b64encode(_encode_gif(frames, fps, loop)).decode("ascii")
    return (
        f'<img src="data:image/gif;base64,{encoded}" '
        f'width="{round(w * display_scale)}" height="{round(h * display_scale)}" '
        f'style="image-rendering: pixelated; image-rendering: crisp-edges" alt="video">'
    )


def show_video(video: Any, fps: float = 8, scale: float = 2, **kwargs: Any):
    """`video_html` wrapped in `IPython.display.HTML`, to display in a notebook cell."""
    from IPython.display import HTML

    return HTML(video_html(video, fps=fps, scale=scale, **kwargs))
