"""Data: the Moving Shapes dataset, a loader for your own clip folders, sample export.

Video tensors are (C, F, H, W) per item, float32 in [-1, 1].
"""

from __future__ import annotations

from minifusion.data.captions import caption_for, parse_caption
from minifusion.data.clip_folder import ClipFolder
from minifusion.data.clips import make_params
from minifusion.data.export import SAMPLE_CLIPS, export_samples
from minifusion.data.moving_shapes import SPLITS, MovingShapes
from minifusion.data.render import OUTER_RADIUS, ClipParams, ShapeTrack, render_clip, shape_extent
from minifusion.data.vocabulary import (
    BACKGROUND_NAMES,
    BACKGROUNDS,
    COLOR_NAMES,
    COLORS,
    DIRECTION_NAMES,
    DIRECTIONS,
    HELDOUT_COMBINATIONS,
    MOTIONS,
    ROTATABLE_SHAPES,
    ROTATION_SYMMETRY,
    SHAPES,
    SIZES,
    SPEEDS,
    SPINS,
)

__all__ = [
    "BACKGROUNDS", "BACKGROUND_NAMES", "COLORS", "COLOR_NAMES", "DIRECTIONS", "DIRECTION_NAMES",
    "HELDOUT_COMBINATIONS", "MOTIONS", "OUTER_RADIUS", "ROTATABLE_SHAPES", "ROTATION_SYMMETRY", "SHAPES",
    "SIZES", "SPEEDS", "SPINS", "SPLITS",
    "ClipFolder", "ClipParams", "MovingShapes", "ShapeTrack",
    "caption_for", "export_samples", "make_params", "parse_caption", "render_clip", "shape_extent", "SAMPLE_CLIPS",
]
