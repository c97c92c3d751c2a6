"""The motion benchmark: do generated videos show the prompted colour and shape, moving the prompted way, steadily?

Prompts ``a {color} {shape} moves {direction}`` over every (colour, shape) pair and all 8
directions, in an order whose every prefix of 8k prompts is balanced (``motion_prompts``): the 4
axis directions and the 4 diagonals alternate, each (pair, direction) once in the full set of
224. A model that drifts one way whatever the prompt scores at most one direction's share of a
balanced set (25% of the axis or of the diagonal prompts); random directions score 12.5%.

Per video, from the pixels (``pixel_metrics``, ``coherence``) and, for the shape, the shipped
attribute classifier (``AttributeClassifier``, 100% on held-out real clips):
colour, shape, direction, steady motion (one object in every frame, no jump, no step back,
moving), and ``all_right`` = colour, direction and steadiness together. ``summarise`` reports
axis and diagonal prompts apart, and seen and held-out (colour, shape) pairs apart.
"""

from __future__ import annotations

import math

import torch

from minifusion.checks import check_int
from minifusion.data.vocabulary import COLOR_NAMES, HELDOUT_COMBINATIONS, SHAPES
from minifusion.eval.coherence import steady_motion
from minifusion.eval.pixel_metrics import dominant_color

AXIS_DIRECTIONS = ("left", "right", "up", "down")
DIAGONAL_DIRECTIONS = ("up-left", "up-right", "down-left", "down-right")
PAIRS = tuple((COLOR_NAMES[i % len(COLOR_NAMES)], SHAPES[i % len(SHAPES)])  # 7 x 4 coprime: every pair once
              for i in range(len(COLOR_NAMES) * len(SHAPES)))
MAX_PROMPTS = 2 * len(PAIRS) * len(AXIS_DIRECTIONS)  # 224: every pair in every direction
CHECKS = ("color", "shape", "direction", "steady", "one_object", "all_right")


def motion_prompts(num_videos: int = MAX_PROMPTS) -> list[dict]:
    """The first ``num_videos`` prompts: ``{"prompt", "color", "shape", "direction", "group", "heldout"}``.

    Prompt j: group = axis (even j) or diagonal (odd j); k = j // 2; pair = ``PAIRS[k % 28]``;
    direction = the group's ``(k % 28 + k // 28) % 4``-th. Every prefix of 8n prompts has each of
    the 8 directions n times; the full 224 hold each pair in each direction once.
    """
    check_int("num_videos", num_videos, minimum=1, maximum=MAX_PROMPTS)
    out = []
    for j in range(num_videos):
        k = j // 2
        pair = k % len(PAIRS)
        group, directions = ("axis", AXIS_DIRECTIONS) if j % 2 == 0 else ("diagonal", DIAGONAL_DIRECTIONS)
        direction = directions[(pair + k // len(PAIRS)) % 4]
        color, shape = PAIRS[pair]
        out.append({"prompt": f"a {color} {shape} moves {direction}", "color": color, "shape": shape,
                    "direction": direction, "group": group, "heldout": (color, shape) in HELDOUT_COMBINATIONS})
    return out


def reference_videos(prompts: list[dict], *, num_frames: int = 29, seed: int = 0) -> torch.Tensor:
    """Ground truth for prompts: (N, 3, F, 64, 64) renders in [0, 1] of clips with exactly the prompt's colour,
    shape and direction, F frames evenly spaced over the 28 source frames a 29-frame video spans
    (113 frames = quarter frames). The benchmark's own check: these score 100%."""
    from minifusion.data import MovingShapes

    videos = []
    for j, p in enumerate(prompts):
        clips = MovingShapes(split="heldout" if p["heldout"] else "train", num_frames=29, frame_skip=1, size=64,
                             length=1, colors=[p["color"]], shapes=[p["shape"]], motions=["moves"],
                             directions=[p["direction"]], simple_fraction=1.0, backgrounds=("black",),
                             seed=seed + j)
        times = torch.linspace(0.0, 28.0, num_frames).tolist()
        videos.append((clips.render(0, times) + 1) / 2)
    return torch.stack(videos)


def score_videos(videos: torch.Tensor, prompts: list[dict], *, classifier=None,
                 value_range: tuple[float, float] = (0.0, 1.0)) -> list[dict]:
    """One row per video: the prompt's fields plus ``found_color``, ``found_shape`` (None without a
    ``classifier``), the ``coherence.steady_motion`` fields, and the booleans of ``CHECKS``."""
    if videos.ndim != 5 or videos.shape[0] != len(prompts):
        raise ValueError(f"need videos (N, 3, F, H, W) with N = {len(prompts)} prompts, got {tuple(videos.shape)}")
    colors = dominant_color(videos, value_range=value_range)
    shapes = classifier.predict(videos, value_range=value_range)["shape"] if classifier is not None else None
    steady = steady_motion(videos, [p["direction"] for p in prompts], value_range=value_range)
    rows = []
    for i, (p, s) in enumerate(zip(prompts, steady)):
        row = {**p, **s, "found_color": colors[i], "found_shape": shapes[i] if shapes else None}
        row["color_ok"] = colors[i] == p["color"]
        row["shape_ok"] = None if shapes is None else shapes[i] == p["shape"]
        row["all_right"] = row["color_ok"] and row["direction_ok"] and row["steady"]
        rows.append(row)
    return rows


def _share(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r[key] is not None]
    return sum(values) / len(values) if values else math.nan


def summarise(rows: list[dict]) -> dict:
    """Shares of ``CHECKS`` per group: {"axis"|"diagonal"|"all": {"all"|"seen"|"heldout": {...}}}."""
    keys = {"color": "color_ok", "shape": "shape_ok", "direction": "direction_ok", "steady": "steady",
            "one_object": "one_object", "all_right": "all_right"}
    out = {}
    for group in ("axis", "diagonal", "all"):
        in_group = [r for r in rows if group == "all" or r["group"] == group]
        out[group] = {}
        for pairs, subset in (("all", in_group), ("seen", [r for r in in_group if not r["heldout"]]),
                              ("heldout", [r for r in in_group if r["heldout"]])):
            out[group][pairs] = {"num_videos": len(subset), **{name: _share(subset, key) if subset else math.nan
                                                                for name, key in keys.items()}}
    return out


def format_summary(summary: dict, *, num_frames: int) -> str:
    """A plain-text table of ``summarise``'s output."""
    lines = [f"  {'prompts':<10} {'pairs':<8} {'videos':>6}  {'colour':>7} {'shape':>7} {'direction':>9} "
             f"{'steady':>7} {'1 object':>8} {'all 3':>7}   ({num_frames} frames; direction chance 12.5%, "
             "a constant drift at most 25%)"]
    for group in ("axis", "diagonal", "all"):
        for pairs in ("all", "seen", "heldout"):
            r = summary[group][pairs]
            if not r["num_videos"]:
                continue
            cells = " ".join(f"{r[k]:>{w}.1%}" if not math.isnan(r[k]) else f"{'-':>{w}}"
                             for k, w in (("color", 7), ("shape", 7), ("direction", 9), ("steady", 7),
                                          ("one_object", 8), ("all_right", 7)))
            lines.append(f"  {group:<10} {pairs:<8} {r['num_videos']:>6}  {cells}")
    return "\n".join(lines)


__all__ = ["AXIS_DIRECTIONS", "CHECKS", "DIAGONAL_DIRECTIONS", "MAX_PROMPTS", "PAIRS", "format_summary",
           "motion_prompts", "reference_videos", "score_videos", "summarise"]
