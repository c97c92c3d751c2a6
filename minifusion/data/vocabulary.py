"""The Moving Shapes vocabulary: colours, shapes, motions, directions and the held-out split.

Later stages (the word tokenizer, the attribute classifier used for
evaluation) read these constants, so the words here are the whole language of the toy data.

Coordinates used throughout `minifusion.data`: frame units, (0, 0) is the top-left corner
of the frame and (1, 1) the bottom-right; x grows to the right and y grows *down*, like image
rows. "up" therefore means decreasing y, and a positive rotation angle turns clockwise on screen.

Taught in notebook 01 (notebooks/01_moving_shapes.ipynb).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# Named colours as RGB in [0, 1] (mapped to [-1, 1] when rendered). Every colour, size and speed
# word starts with a consonant, so the article is always "a" (no "an orange").
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.20, 0.35, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.80),
    "cyan": (0.10, 0.80, 0.85),
    "white": (0.95, 0.95, 0.95),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
# Order of rotational symmetry (a turn by 360/n degrees looks the same); None = any angle.
# A shape with None never "rotates" in a caption: the clip could not show it.
ROTATION_SYMMETRY: dict[str, int | None] = {"circle": None, "square": 4, "triangle": 3, "star": 5}
ROTATABLE_SHAPES: tuple[str, ...] = tuple(s for s in SHAPES if ROTATION_SYMMETRY[s] is not None)

_D = 1.0 / math.sqrt(2.0)
# Unit vectors in frame coordinates (y down).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-left": (-_D, -_D),
    "up-right": (_D, -_D),
    "down-left": (-_D, _D),
    "down-right": (_D, _D),
}
DIRECTION_NAMES: tuple[str, ...] = tuple(DIRECTIONS)

MOTIONS: tuple[str, ...] = ("moves", "bounces", "rotates", "grows", "shrinks")
SPEEDS: tuple[str, ...] = ("normal", "slow", "fast")  # "normal" is never written in a caption
SIZES: tuple[str, ...] = ("normal", "small", "big")  # likewise
SPINS: tuple[str, ...] = ("clockwise", "counterclockwise")  # attribute of "rotates", not captioned

# Plain backgrounds; a light one drops the colours that would barely show on it.
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "black": (0.0, 0.0, 0.0),
    "light": (0.88, 0.88, 0.84),
}
BACKGROUND_NAMES: tuple[str, ...] = tuple(BACKGROUNDS)
LOW_CONTRAST: dict[str, frozenset[str]] = {
    "black": frozenset(),
    "light": frozenset({"white", "yellow"}),
}

# Value used in attribute dicts where an attribute does not apply (keeps batches collatable).
NONE = "none"

# (colour, shape) pairs that only the "heldout" split shows: every colour, shape and direction
# still appears in training, only these pairings do not (compositional generalisation).
HELDOUT_COMBINATIONS: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("green", "star"), ("blue", "circle"), ("yellow", "square")}
)


def check_choice(what: str, value: object, allowed: Iterable[str]) -> str:
    """Return `value` if it is one of `allowed`, else raise a ValueError naming both."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(repr(a) for a in allowed)}")
    return value


def check_choices(what: str, values: Iterable[str] | None, allowed: Iterable[str]) -> tuple[str, ...] | None:
    """Validate an optional filter list (None = everything); an empty list is an error."""
    if values is None:
        return None
    if isinstance(values, str):
        raise ValueError(f"{what} must be a list of names, got the string {values!r}; write [{values!r}]")
    values = tuple(values)
    if not values:
        raise ValueError(f"{what} is empty; give at least one of {', '.join(repr(a) for a in allowed)}")
    for v in values:
        check_choice(what[:-1] if what.endswith("s") else what, v, allowed)
    return values
