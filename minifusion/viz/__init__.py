"""Visualisation: uint8 conversion, GIF/MP4/HTML export, figures and notebook widgets.

Video comes in the package's two conventions: torch (C, F, H, W) or (B, C, F, H, W) in [-1, 1]
(models) and numpy (F, H, W, C) or (B, F, H, W, C) in [0, 1] (pipeline output); `layout=` and
`value_range=` say otherwise explicitly. Every widget is a thin wrapper over a plain drawing
function that returns a numpy picture, so everything shown can be tested headless.

Importing this package loads neither torch, matplotlib, ipywidgets nor IPython; each is
imported inside the functions that need it.
"""

from __future__ import annotations

from minifusion.viz.convert import (
    LAYOUTS,
    tile_batch,
    to_bfhwc_uint8,
    to_uint8_frames,
    to_uint8_image,
    upscale,
)
from minifusion.viz.drawing import (
    compare_frame_indices,
    compare_timeline,
    compare_times,
    draw_compare_frame,
    draw_denoising_step,
    draw_frame,
    png_bytes,
    render_frame_png,
)
from minifusion.viz.export import gif_bytes, save_gif, save_mp4, show_video, video_html
from minifusion.viz.figures import forward_noising_video, log_snr, plot_schedules, show_frames
from minifusion.viz.widgets import compare_player, denoising_scrubber, frame_player, widget_png

__all__ = [
    "LAYOUTS",
    "compare_frame_indices",
    "compare_player",
    "compare_times",
    "compare_timeline",
    "denoising_scrubber",
    "draw_compare_frame",
    "draw_denoising_step",
    "draw_frame",
    "forward_noising_video",
    "frame_player",
    "gif_bytes",
    "log_snr",
    "plot_schedules",
    "png_bytes",
    "render_frame_png",
    "save_gif",
    "save_mp4",
    "show_frames",
    "show_video",
    "tile_batch",
    "to_bfhwc_uint8",
    "to_uint8_frames",
    "to_uint8_image",
    "upscale",
    "video_html",
    "widget_png",
]
