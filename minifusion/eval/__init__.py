"""Evaluation of generated videos (DESIGN.md section 7).

- ``pixel_metrics``: weight-free checks of decoded Moving Shapes videos - dominant colour,
  direction of motion of the shape's centroid, background flicker - used during keyframe
  training (DESIGN.md section 9: the loss says nothing about motion);
- ``video_metrics``: reconstruction quality against ground-truth frames - PSNR, SSIM, flicker
  ratio and temporal error - for interpolation and video decoders (FusionFrames Tables 2-3).
"""

from minifusion.eval.pixel_metrics import (
    background_color,
    background_flicker,
    centroid_trajectory,
    classify_colors,
    direction_name,
    displacement,
    dominant_color,
    foreground_mask,
    motion_direction,
    motion_report,
)
from minifusion.eval.video_metrics import (
    flicker_ratio,
    frame_difference,
    gaussian_window,
    reconstruction_report,
    ssim,
    ssim_map,
    temporal_error,
)
from minifusion.eval.video_metrics import psnr as video_psnr

__all__ = [
    "flicker_ratio", "frame_difference", "gaussian_window", "reconstruction_report", "ssim", "ssim_map",
    "temporal_error", "video_psnr",
    "background_color", "background_flicker", "centroid_trajectory", "classify_colors", "direction_name",
    "displacement", "dominant_color", "foreground_mask", "motion_direction", "motion_report",
]
