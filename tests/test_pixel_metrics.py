"""Pixel metrics measure real Moving Shapes clips correctly: colour, direction, still backgrounds."""

from __future__ import annotations

import math

import pytest
import torch

from minifusion.data import COLORS, DIRECTIONS, SHAPES, MovingShapes, make_params, render_clip
from minifusion.data.vocabulary import LOW_CONTRAST
from minifusion.eval import (
    background_color,
    background_flicker,
    centroid_trajectory,
    classify_colors,
    direction_name,
    dominant_color,
    foreground_mask,
    motion_direction,
    motion_report,
)


@pytest.fixture(scope="module")
def moves():
    """40 "moves" clips, 32x32, 8 frames at skip 4, on both backgrounds, with their attributes."""
    ds = MovingShapes("val", num_frames=8, frame_skip=4, size=32, length=60, motions=["moves"],
                      backgrounds=("black", "light"))
    items = [ds[i] for i in range(40)]
    return torch.stack([it["video"] for it in items]), [it["attributes"] for it in items]


@pytest.mark.parametrize("background", ["black", "light"])
def test_every_colour_is_classified_on_both_backgrounds(background):
    """Every colour the data shows on a background (7 on black, 5 on light), in every shape, small and big."""
    colors = [c for c in COLORS if c not in LOW_CONTRAST[background]]
    assert len(colors) == (7 if background == "black" else 5)
    videos, expected = [], []
    for k, color in enumerate(colors):
        for j, shape in enumerate(SHAPES):
            for size in ("small", "big"):
                params = make_params(color=color, shape=shape, direction=list(DIRECTIONS)[(k + j) % 8], size=size,
                                     background=background, num_frames=4, seed=10 * k + j)
                videos.append(render_clip(params, params.times, 32))
                expected.append(color)
    video = torch.stack(videos)  # (N, 3, 4, 32, 32) in [-1, 1]
    assert dominant_color(video) == expected
    assert dominant_color((video + 1) / 2, value_range=(0, 1)) == expected  # pipeline output range


@pytest.mark.parametrize("background", ["black", "light"])
def test_every_direction_is_found_on_both_backgrounds(background):
    """'a {color} {shape} moves {direction}' clips: all 8 directions, every shape, slow and fast, 8 keyframes."""
    colors = [c for c in COLORS if c not in LOW_CONTRAST[background]]
    videos, expected, prompted = [], [], []
    for k, direction in enumerate(DIRECTIONS):
        for j, shape in enumerate(SHAPES):
            for speed in ("slow", "fast"):
                color = colors[(k + j) % len(colors)]
                params = make_params(color=color, shape=shape, direction=direction, speed=speed,
                                     background=background, seed=10 * k + j)
                assert f"moves {direction}" in params.caption
                videos.append(render_clip(params, params.times, 32))
                expected.append(direction)
                prompted.append(color)
    video = torch.stack(videos)
    assert motion_direction(video) == expected
    report = motion_report((video + 1) / 2, prompted, expected, value_range=(0, 1))
    assert report["direction_accuracy"] == report["color_accuracy"] == report["moving_fraction"] == 1.0
    assert report["background_flicker"] < 0.005


def test_colour_and_direction_match_the_clips(moves):
    video, attrs = moves
    single = [i for i, a in enumerate(attrs) if a["num_objects"] == 1]
    colors, directions = dominant_color(video), motion_direction(video)
    color_hits = sum(colors[i] == attrs[i]["color"] for i in single)
    direction_hits = sum(d == a["direction"] for d, a in zip(directions, attrs))
    assert len(single) >= 20
    assert color_hits >= 0.95 * len(single), [(colors[i], attrs[i]["color"]) for i in single]
    assert direction_hits >= 0.95 * len(attrs)
    # two-shape clips: the dominant colour is one of the two
    for i, a in enumerate(attrs):
        if a["num_objects"] == 2:
            assert colors[i] in (a["color"], a["color2"])


def test_flicker_is_zero_on_clips_and_large_on_noise(moves):
    video, _ = moves
    assert background_flicker(video).max().item() < 0.005
    noise = torch.rand(2, 3, 4, 32, 32) * 2 - 1
    assert background_flicker(noise).min().item() > 0.1


def test_flicker_of_added_gaussian_noise_matches_the_formula():
    # a still black background plus N(0, sigma^2) per pixel and frame: E|x1 - x0| = 2 sigma / sqrt(pi)
    sigma = 0.03  # colour units [0, 1]
    noise = torch.randn(1, 3, 6, 48, 48, generator=torch.Generator().manual_seed(0))
    video = torch.zeros(1, 3, 6, 48, 48) + sigma * noise
    measured = background_flicker(video, value_range=(0.0, 1.0)).item()
    assert measured == pytest.approx(2 * sigma / math.sqrt(math.pi), rel=0.03)


def test_centroid_follows_the_rendered_trajectory():
    params = make_params(color="red", shape="circle", direction="right", num_frames=4, frame_skip=4, seed=3)
    video = render_clip(params, params.times, 64)  # (C, F, H, W)
    track = params.objects[0]
    cx, cy = track.center_at(params.times)
    traj = centroid_trajectory(video)  # (F, 2), single video
    assert traj.shape == (4, 2)
    assert torch.allclose(traj[:, 0], torch.as_tensor(cx, dtype=torch.float32), atol=0.01)
    assert torch.allclose(traj[:, 1], torch.as_tensor(cy, dtype=torch.float32), atol=0.01)


def test_single_video_and_value_range():
    params = make_params(color="cyan", shape="star", direction="up-left", background="light", seed=1)
    video = render_clip(params, params.times, 32)  # (C, F, H, W) in [-1, 1]
    assert dominant_color(video) == "cyan" and motion_direction(video) == "up-left"
    assert dominant_color((video + 1) / 2, value_range=(0, 1)) == "cyan"
    bg = background_color(video)  # (F, 3) in [0, 1]: the light background
    assert torch.allclose(bg, torch.tensor([0.88, 0.88, 0.84]).expand_as(bg), atol=0.01)
    mask = foreground_mask(video)
    assert mask.shape == (8, 32, 32) and 0 < mask.float().mean() < 0.3


def test_still_and_empty_videos():
    params = make_params(color="green", shape="square", motion="grows", seed=0)
    video = render_clip(params, params.times, 32)
    assert motion_direction(video) == "none"  # grows in place: no net displacement
    blank = -torch.ones(3, 4, 16, 16)
    assert dominant_color(blank) == "none" and motion_direction(blank) == "none"
    assert torch.isnan(centroid_trajectory(blank)).all()
    assert background_flicker(blank).item() == 0.0


def test_colour_classification_of_the_palette_and_its_edges():
    names = list(COLORS)
    rgb = torch.tensor([COLORS[n] for n in names])
    assert classify_colors(rgb) == names
    # an anti-aliased edge pixel on black keeps its hue: half-coverage red is still red
    assert classify_colors(rgb * 0.5)[:6] == names[:6]


def test_direction_names():
    for name, (dx, dy) in DIRECTIONS.items():
        assert direction_name(0.3 * dx, 0.3 * dy) == name
    assert direction_name(0.01, 0.0) == "none" and direction_name(math.nan, 0.0) == "none"
    assert direction_name(0.2, 0.05) == "right"  # 14 degrees off the axis: still "right"


def test_report_and_bad_input(moves):
    video, attrs = moves
    report = motion_report(video[:4], [a["color"] for a in attrs[:4]], [a["direction"] for a in attrs[:4]])
    assert report["direction_accuracy"] == 1.0 and report["moving_fraction"] == 1.0
    assert report["background_flicker"] < 0.005
    with pytest.raises(ValueError, match=r"\(2, 1, 4, 8, 8\)"):
        dominant_color(torch.zeros(2, 1, 4, 8, 8))
    with pytest.raises(ValueError, match="threshold 2.0 is not allowed"):
        foreground_mask(video, threshold=2.0)
    for fn in (dominant_color, centroid_trajectory, motion_direction, background_flicker):
        with pytest.raises(ValueError, match=r"threshold -0.1 is not allowed; it must be a number in \(0, 1\)"):
            fn(video, threshold=-0.1)
    with pytest.raises(ValueError, match="one colour and one direction per video"):
        motion_report(video[:2], ["red"], ["left", "right"])
