"""ipywidgets players: thin wrappers that wire a Play button and a slider to the plain drawing
functions of `minifusion.viz.drawing` (which the tests call directly).

Each widget is an `ipywidgets.VBox` [HBox[Play, IntSlider], Image]. For use from code (and in
tests) it also carries `.play`, `.slider` and `.image`: setting `player.slider.value = 3` redraws
frame 3 without a browser. The Play button drives the slider through `jslink`, i.e. in the
browser, so the animation needs a live front end; the slider works anywhere.

ipywidgets is imported inside the functions, so `import minifusion.viz` stays cheap.
Videos are converted to uint8 once when the widget is built; pictures are drawn on demand and
cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from minifusion.checks import check_number
from minifusion.viz.convert import check_labels, to_bfhwc_uint8
from minifusion.viz.drawing import (
    compare_timeline,
    compare_times,
    draw_compare_frame,
    draw_denoising_step,
    png_bytes,
    render_frame_png,
)

_UINT8 = dict(layout="bfhwc", value_range=(0, 255))  # how the pre-converted frames are read back


def _player(count: int, fps: float, render: Callable[[int], bytes], description: str):
    import ipywidgets as widgets

    check_number("fps", fps, minimum=0, exclusive_minimum=True)
    cache: dict[int, bytes] = {}

    def picture(i: int) -> bytes:
        if i not in cache:
            cache[i] = render(i)
        return cache[i]

    play = widgets.Play(value=0, min=0, max=count - 1, step=1, interval=max(1, round(1000 / fps)))
    slider = widgets.IntSlider(value=0, min=0, max=count - 1, description=description)
    widgets.jslink((play, "value"), (slider, "value"))
    image = widgets.Image(value=picture(0), format="png")

    def on_change(change: dict) -> None:
        image.value = picture(change["new"])

    slider.observe(on_change, names="value")
    # A VBox stretches its children to the output's width; flex-start keeps the picture at its
    # own pixel size (scaled in Python) instead of blowing it up to fill JupyterLab's width.
    box = widgets.VBox([widgets.HBox([play, slider]), image], layout=widgets.Layout(align_items="flex-start"))
    box.play, box.slider, box.image = play, slider, image
    return box


def frame_player(
    video: Any,
    fps: float = 8,
    scale: float = 4,
    labels: Sequence[str] | None = None,
    *,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
):
    """Play / scrub through one video (a batch is tiled side by side).

    `labels`, one string per frame (e.g. "keyframe" / "interpolated"), is written under the
    frame. Pictures are `render_frame_png(video, index, scale, label)`.
    """
    frames = to_bfhwc_uint8(video, layout=layout, value_range=value_range, clip=clip, rgb=True)
    count = frames.shape[1]
    labels = check_labels(labels, count)

    def render(i: int) -> bytes:
        return render_frame_png(frames, i, scale=scale, label=labels[i] if labels else None, **_UINT8)

    return _player(count, fps, render, "frame")


def compare_player(
    rows: Mapping[str, Any],
    fps: float = 8,
    scale: float = 4,
    times: Mapping[str, Sequence[float]] | None = None,
    *,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
):
    """Several videos as rows ({"keyframes": k, "interpolated": v}) on one time slider.

    The slider runs over the union of the rows' frame times (`compare_times`: by default all
    rows span the same interval, so keyframe k of 8 sits at frame 4k of 29). Pictures are
    `draw_compare_frame(rows, index, times=times, scale=scale)`.
    """
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError(f"rows must be a non-empty dict {{name: video}}, got {type(rows).__name__}")
    videos = {
        str(k): to_bfhwc_uint8(v, layout=layout, value_range=value_range, clip=clip, rgb=True)
        for k, v in rows.items()
    }
    count = len(compare_timeline(compare_times({k: v.shape[1] for k, v in videos.items()}, times)))

    def render(i: int) -> bytes:
        return png_bytes(draw_compare_frame(videos, i, times=times, scale=scale, **_UINT8))

    return _player(count, fps, render, "time")


def denoising_scrubber(
    trajectory: Sequence[tuple[Any, Any, Any]],
    scale: float = 4,
    fps: float = 4,
    *,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
):
    """A slider over sampling steps showing x_t next to the predicted x0.

    `trajectory` is a list of (timestep, x_t, pred_x0) entries, as collected by a sampling
    loop (pred_x0 may be None). Pictures are `draw_denoising_step(trajectory, index, scale=scale)`.
    """
    if isinstance(trajectory, (str, bytes)) or not isinstance(trajectory, Sequence) or not trajectory:
        raise ValueError(f"trajectory must be a non-empty list of (timestep, x_t, pred_x0), got {trajectory!r:.80}")
    read = dict(layout=layout, value_range=value_range, clip=True, rgb=True)
    converted = []
    for i, entry in enumerate(trajectory):
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise ValueError(f"trajectory entry {i} must be (timestep, x_t, pred_x0), got {entry!r:.80}")
        t, x_t, x0 = entry
        converted.append(
            (t, to_bfhwc_uint8(x_t, **read), None if x0 is None else to_bfhwc_uint8(x0, **read))
        )

    def render(i: int) -> bytes:
        return png_bytes(draw_denoising_step(converted, i, scale=scale, **_UINT8))

    return _player(len(converted), fps, render, "step")


def widget_png(player: Any) -> np.ndarray:
    """The picture a player shows now, decoded to uint8 (H, W, 3) (handy in tests and scripts)."""
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(player.image.value)).convert("RGB"))
