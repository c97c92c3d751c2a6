"""benchmarks/bench_quality.py: its scoring agrees with rendered ground truth and catches wrong videos."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_quality  # noqa: E402

from minifusion.data import MovingShapes  # noqa: E402


def rendered(grid, num_frames=29, frame_skip=1):
    """Ground-truth videos in [0, 1] for grid entries: the caption's colour, shape and direction."""
    videos = []
    for g in grid:  # a clip with exactly these attributes, from a dataset restricted to them
        one = MovingShapes(split="heldout" if g["heldout"] else "train", num_frames=num_frames, size=64,
                           frame_skip=frame_skip, length=1, colors=[g["color"]], shapes=[g["shape"]],
                           motions=["moves"], directions=[g["direction"]], simple_fraction=1.0)
        assert one.clip_params(0).attributes["direction"] == g["direction"]
        videos.append((one[0]["video"] + 1) / 2)
    return torch.stack(videos)  # (N, 3, F, H, W)


@pytest.fixture(scope="module")
def grid():
    return bench_quality.prompt_grid(colors=("red", "blue", "white"), shapes=("circle", "square"))


def test_prompt_grid_covers_every_combination_and_marks_held_out_pairs():
    full = bench_quality.prompt_grid()
    assert len(full) == 7 * 4 * 4 and len({g["prompt"] for g in full}) == len(full)
    held = {(g["color"], g["shape"]) for g in full if g["heldout"]}
    assert held == {("red", "triangle"), ("green", "star"), ("blue", "circle"), ("yellow", "square")}


def test_rendered_clips_score_full_marks_and_reversed_ones_fail_direction(grid):
    videos = rendered(grid)
    report = bench_quality.score(videos, grid)
    assert report["all"]["color_accuracy"] == 1.0 and report["all"]["direction_accuracy"] == 1.0
    assert report["heldout_pairs"]["num_videos"] == 4  # blue circle x 4 directions
    reversed_report = bench_quality.score(videos.flip(2), grid)
    assert reversed_report["all"]["direction_accuracy"] == 0.0 and reversed_report["all"]["color_accuracy"] == 1.0


def test_steadiness_accepts_smooth_motion_and_catches_a_jump_back(grid):
    videos = rendered(grid[:4])
    directions = [g["direction"] for g in grid[:4]]
    assert bench_quality.steadiness(videos, directions, jump_pixels=1.0)["steady_fraction"] == 1.0
    jumped = videos.clone()
    jumped[:, :, 15:] = videos[:, :, 7:21]  # a seam: the object jumps back 8 frames
    assert bench_quality.steadiness(jumped, directions, jump_pixels=1.0)["steady_fraction"] == 0.0
