"""Evaluation of generated videos (DESIGN.md section 7).

- ``pixel_metrics``: weight-free checks of decoded Moving Shapes videos - dominant colour,
  direction of motion of the shape's centroid, background flicker - used during keyframe
  training (DESIGN.md section 9: the loss says nothing about motion).
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

__all__ = [
    "background_color", "background_flicker", "centroid_trajectory", "classify_colors", "direction_name",
    "displacement", "dominant_color", "foreground_mask", "motion_direction", "motion_report",
]
