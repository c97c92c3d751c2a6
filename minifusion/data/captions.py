"""Caption grammar of Moving Shapes: attributes -> caption and back.

The simplest form is exactly ``a {color} {shape} moves {direction}``;
the others add one or two words::

    a red circle moves right                     simplest form (most clips)
    a fast yellow triangle moves down            speed (slow, fast) or size (small, big) modifier
    a small blue star rotates                    rotates / grows / shrinks / bounces: no direction
    a green square bounces
    a red circle and a blue square move left     two shapes, same motion
    a red circle moves right on a light background

A caption only says what the clip shows: no "rotates" for a circle (`caption_for` refuses it),
and the direction of a bounce or the spin of a rotation is an attribute, not a caption word.

Taught in notebook 01 (notebooks/01_moving_shapes.ipynb).
"""

from __future__ import annotations

from minifusion.data.vocabulary import (
    BACKGROUND_NAMES,
    COLOR_NAMES,
    DIRECTION_NAMES,
    MOTIONS,
    NONE,
    ROTATABLE_SHAPES,
    ROTATION_SYMMETRY,
    SHAPES,
    SIZES,
    SPEEDS,
    check_choice,
)

_DEFAULT_BACKGROUND = "black"
_BACKGROUND_SUFFIX = " on a {} background"


def caption_for(
    *,
    color: str,
    shape: str,
    motion: str,
    direction: str = NONE,
    speed: str = "normal",
    size: str = "normal",
    background: str = _DEFAULT_BACKGROUND,
    color2: str = NONE,
    shape2: str = NONE,
    **_ignored: object,
) -> str:
    """Caption for a clip's attributes (extra keys such as `spin` or `times` are ignored).

    `direction` is required for "moves" and must be "none" for rotates/grows/shrinks; a second
    shape (`color2`, `shape2`) is only allowed with "moves". Raises ValueError for any value
    outside the vocabulary and for a combination the clip could not show.
    """
    check_choice("color", color, COLOR_NAMES)
    check_choice("shape", shape, SHAPES)
    check_choice("motion", motion, MOTIONS)
    check_choice("speed", speed, SPEEDS)
    check_choice("size", size, SIZES)
    check_choice("background", background, BACKGROUND_NAMES)
    if motion in ("moves", "bounces"):
        check_choice(f"direction for motion {motion!r}", direction, DIRECTION_NAMES)
    elif direction != NONE:
        raise ValueError(f"direction {direction!r} given for motion {motion!r}; it takes direction 'none'")
    if motion == "rotates" and ROTATION_SYMMETRY[shape] is None:
        raise ValueError(
            f"shape {shape!r} cannot visibly rotate; 'rotates' needs one of {', '.join(map(repr, ROTATABLE_SHAPES))}"
        )
    two = color2 != NONE or shape2 != NONE
    if two:
        check_choice("color2", color2, COLOR_NAMES)
        check_choice("shape2", shape2, SHAPES)
        if motion != "moves":
            raise ValueError(f"two shapes are only captioned with motion 'moves', got motion {motion!r}")
        if (color2, shape2) == (color, shape):
            raise ValueError(f"the two shapes must differ, got {color} {shape} twice")
        if speed != "normal" or size != "normal":
            raise ValueError(f"two-shape clips take speed and size 'normal', got speed {speed!r}, size {size!r}")
    modifiers = "".join(f"{m} " for m in (size, speed) if m != "normal")
    if two:
        text = f"a {color} {shape} and a {color2} {shape2} move {direction}"
    elif motion == "moves":
        text = f"a {modifiers}{color} {shape} moves {direction}"
    else:
        text = f"a {modifiers}{color} {shape} {motion}"
    if background != _DEFAULT_BACKGROUND:
        text += _BACKGROUND_SUFFIX.format(background)
    return text


def parse_caption(caption: str) -> dict[str, str]:
    """Inverse of `caption_for`: the attributes a caption states.

    Returns a dict with color, shape, motion, direction, speed, size, background, color2, shape2
    (direction is "none" where the caption does not state one, e.g. for "bounces"). Raises
    ValueError for text outside the grammar, naming the first word that does not fit.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}")
    out = {"direction": NONE, "speed": "normal", "size": "normal", "background": _DEFAULT_BACKGROUND,
           "color2": NONE, "shape2": NONE}
    words = caption.strip().split()
    if len(words) >= 4 and words[-4:-2] == ["on", "a"] and words[-1] == "background":
        out["background"] = check_choice("background", words[-2], BACKGROUND_NAMES)
        words = words[:-4]
    pos = 0

    def take(what: str, allowed: tuple[str, ...]) -> str:
        nonlocal pos
        if pos >= len(words):
            raise ValueError(f"caption {caption!r} ends where a {what} ({', '.join(allowed)}) should follow")
        word = words[pos]
        if word not in allowed:
            raise ValueError(f"caption {caption!r}: word {word!r} is not a {what} ({', '.join(allowed)})")
        pos += 1
        return word

    take("article", ("a",))
    if pos < len(words) and words[pos] in SIZES[1:]:
        out["size"] = take("size", SIZES[1:])
    if pos < len(words) and words[pos] in SPEEDS[1:]:
        out["speed"] = take("speed", SPEEDS[1:])
    out["color"] = take("color", COLOR_NAMES)
    out["shape"] = take("shape", SHAPES)
    verb = take("verb", ("and",) + MOTIONS)
    if verb == "and":
        take("article", ("a",))
        out["color2"] = take("color", COLOR_NAMES)
        out["shape2"] = take("shape", SHAPES)
        take("verb", ("move",))
        out["motion"] = "moves"
        out["direction"] = take("direction", DIRECTION_NAMES)
    else:
        out["motion"] = verb
        if verb == "moves":
            out["direction"] = take("direction", DIRECTION_NAMES)
    if pos != len(words):
        raise ValueError(f"caption {caption!r}: unexpected word {words[pos]!r} after the end of the grammar")
    # Only grammatical captions of showable clips pass: re-derive and compare.
    if out["motion"] == "bounces":
        caption_for(**{**out, "direction": "right"})
    else:
        caption_for(**out)
    return out
