"""Moving Shapes: item format, purity, continuous time, captions vs pixels, held-out split, errors."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath
from torch.utils.data import DataLoader, Subset

from minifusion.data import (
    BACKGROUNDS,
    COLOR_NAMES,
    COLORS,
    DIRECTION_NAMES,
    DIRECTIONS,
    HELDOUT_COMBINATIONS,
    MOTIONS,
    ROTATION_SYMMETRY,
    SHAPES,
    ClipParams,
    MovingShapes,
    ShapeTrack,
    caption_for,
    make_params,
    parse_caption,
    render_clip,
    shape_extent,
)
from minifusion.data.render import _PARTS

SIZE = 64


# ---------------------------------------------------------------- helpers (pixels -> measurements)


def alpha_of(video: torch.Tensor, params: ClipParams, which: int = 0) -> np.ndarray:
    """Coverage (F, H, W) of object `which`, read back from the pixels of a one-object clip."""
    bg = np.asarray(BACKGROUNDS[params.background]) * 2 - 1
    fg = np.asarray(COLORS[params.objects[which].color]) * 2 - 1
    diff = (fg - bg)[:, None, None, None]
    return ((video.numpy() - bg[:, None, None, None]) * diff).sum(0) / (diff**2).sum()


def centroids(alpha: np.ndarray) -> np.ndarray:
    """(F, 2) centroid (x, y) in pixels per frame."""
    h, w = alpha.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w]
    mass = alpha.sum((1, 2))
    return np.stack([(alpha * xs).sum((1, 2)) / mass, (alpha * ys).sum((1, 2)) / mass], 1)


def single(ds: MovingShapes, n: int = 40, **attr) -> list[tuple[ClipParams, torch.Tensor]]:
    """The first clips of `ds` with one shape whose attributes match `attr`."""
    out = []
    for i in range(len(ds)):
        p = ds.clip_params(i)
        if p.attributes["num_objects"] == 1 and all(p.attributes[k] == v for k, v in attr.items()):
            out.append((p, ds[i]["video"]))
        if len(out) == n:
            break
    assert out, f"no clip with {attr}"
    return out


def centred_mass(track: ShapeTrack, times: np.ndarray) -> np.ndarray:
    """Coverage mass of the same shape drawn in the middle of the frame (fully visible)."""
    still = dataclasses.replace(track, position=(0.5, 0.5), velocity=(0.0, 0.0), bounds=None)
    p = ClipParams(objects=(still,))
    return alpha_of(render_clip(p, times, SIZE), p).sum((1, 2))


# ---------------------------------------------------------------- format, purity, loading


def test_item_format_and_lengths():
    ds = MovingShapes("train")
    assert len(ds) == 10_000 and len(MovingShapes("val")) == 1_000 and len(MovingShapes("heldout")) == 1_000
    item = ds[0]
    assert set(item) == {"video", "caption", "attributes"}
    v = item["video"]
    assert v.dtype == torch.float32 and v.shape == (3, 8, 64, 64)
    assert v.min() >= -1 and v.max() <= 1 and v.min() < -0.9  # black background is -1
    assert isinstance(item["caption"], str) and item["caption"].startswith("a ")
    attrs = item["attributes"]
    assert {"color", "shape", "motion", "direction", "speed", "background", "times"} <= set(attrs)
    assert torch.equal(attrs["times"], torch.arange(8, dtype=torch.float32) * 4)
    small = MovingShapes("val", num_frames=5, size=32, frame_skip=2, length=7)
    assert len(small) == 7 and small[6]["video"].shape == (3, 5, 32, 32)
    assert torch.equal(small[6]["attributes"]["times"], torch.tensor([0.0, 2, 4, 6, 8]))


def test_index_errors():
    ds = MovingShapes("val", length=5)
    for bad in (-1, 5, 100):
        with pytest.raises(IndexError, match=str(bad)):
            ds[bad]
    with pytest.raises(TypeError):
        ds[1.5]
    assert torch.equal(ds[np.int64(3)]["video"], ds[3]["video"])


def test_item_is_pure_function_of_seed_split_index():
    a, b = MovingShapes("train", seed=3), MovingShapes("train", seed=3)
    _ = [b[i] for i in (9, 2, 7)]  # different access history
    np.random.seed(123), torch.manual_seed(5)  # global RNG state must not matter
    x, y = a[4], b[4]
    assert torch.equal(x["video"], y["video"]) and x["caption"] == y["caption"]
    assert x["attributes"] == {**y["attributes"], "times": x["attributes"]["times"]}
    other_seed, other_split = MovingShapes("train", seed=4), MovingShapes("val", seed=3)
    differ = lambda d: sum(not torch.equal(a[i]["video"], d[i]["video"]) for i in range(10))  # noqa: E731
    assert differ(other_seed) == 10 and differ(other_split) == 10


def test_default_dataloader_collates_mixed_items():
    ds = MovingShapes("train", length=400)
    forms = {}
    for i in range(len(ds)):
        a = ds.clip_params(i).attributes
        forms.setdefault("two" if a["num_objects"] == 2 else a["motion"], i)
    assert set(forms) == {"two", *MOTIONS}
    batch = next(iter(DataLoader(Subset(ds, sorted(forms.values())), batch_size=6)))
    assert batch["video"].shape == (6, 3, 8, 64, 64)
    assert len(batch["caption"]) == 6 and batch["attributes"]["times"].shape == (6, 8)


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("shape", SHAPES)
def test_render_matches_supersampled_reference(shape):
    angle, radius = 0.4, 0.25
    p = ClipParams(objects=(ShapeTrack(shape=shape, color="white", position=(0.5, 0.45), radius=radius, angle=angle),))
    alpha = alpha_of(render_clip(p, [0.0], 48), p)[0]
    n, k = 48, 8  # 8 x 8 samples per pixel
    grid = (np.arange(n * k) + 0.5) / (n * k)
    px, py = np.meshgrid(grid - 0.5, grid - 0.45)
    c, s = math.cos(-angle), math.sin(-angle)  # undo the rotation: local coordinates
    q = np.stack([c * px.ravel() - s * py.ravel(), s * px.ravel() + c * py.ravel()], 1) / radius
    if shape == "circle":
        inside = (q**2).sum(1) <= 1
    else:
        inside = np.any([MplPath(poly).contains_points(q) for poly in _PARTS[shape]], axis=0)
    ref = inside.reshape(n, k, n, k).mean((1, 3))
    assert np.abs(alpha - ref).mean() < 2e-3
    assert alpha.sum() == pytest.approx(ref.sum(), rel=0.01)
    edge = (alpha > 0.05) & (alpha < 0.95)
    assert edge.sum() > 20  # anti-aliased: a ramp of in-between values along the outline


def test_keyframes_and_inbetween_frames_come_from_one_trajectory():
    ds = MovingShapes("train", length=50)
    for i in range(10):
        dense = ds.render(i, np.arange(9.0))  # t = 0, 1, ..., 8
        keys = ds.render(i, [0.0, 4.0, 8.0])
        assert torch.equal(keys, dense[:, [0, 4, 8]])
        assert torch.equal(ds[i]["video"][:, :3], keys)
    p, _ = single(MovingShapes("train", motions=["moves"]), 1, motion="moves")[0]
    quarter = np.arange(0, 8.01, 0.25)
    c = centroids(alpha_of(render_clip(p, quarter, SIZE), p))
    for axis in (0, 1):  # the centroid moves linearly through the quarter frames
        fit = np.polyval(np.polyfit(quarter, c[:, axis], 1), quarter)
        assert np.abs(fit - c[:, axis]).max() < 0.05
    assert np.linalg.norm(c[-1] - c[0]) > 2.0


def test_render_is_resolution_independent():
    p = make_params(color="red", shape="star", motion="moves", direction="down-right", seed=1)
    c32 = (centroids(alpha_of(render_clip(p, size=32), p)) + 0.5) / 32
    c96 = (centroids(alpha_of(render_clip(p, size=96), p)) + 0.5) / 96
    assert np.abs(c32 - c96).max() < 0.01


# ---------------------------------------------------------------- captions tell the truth


def test_simplest_form_is_most_common():
    ds = MovingShapes("train", length=600)
    simple = re.compile(rf"^a ({'|'.join(COLOR_NAMES)}) ({'|'.join(SHAPES)}) moves ({'|'.join(DIRECTION_NAMES)})$")
    hits = 0
    for i in range(len(ds)):
        p = ds.clip_params(i)
        m = simple.match(p.caption)
        if m:
            hits += 1
            a = p.attributes
            assert (a["color"], a["shape"], a["direction"], a["motion"]) == (m[1], m[2], m[3], "moves")
            assert (a["speed"], a["size"], a["num_objects"]) == ("normal", "normal", 1)
    assert hits / len(ds) >= 0.6
    assert caption_for(color="red", shape="circle", motion="moves", direction="right") == "a red circle moves right"


def test_captions_agree_with_attributes_and_parse_back():
    ds = MovingShapes("train", length=300, backgrounds=["black", "light"])
    for i in range(len(ds)):
        p = ds.clip_params(i)
        assert caption_for(**p.attributes) == p.caption
        parsed = parse_caption(p.caption)
        for key, value in parsed.items():
            if not (key == "direction" and p.attributes["motion"] == "bounces"):
                assert p.attributes[key] == value, (p.caption, key)
    examples = ["a small blue star rotates", "a green square bounces", "a fast yellow triangle moves down",
                "a red circle and a blue square move left", "a slow white star moves up-left on a light background"]
    for text in examples:
        attrs = parse_caption(text)
        if attrs["motion"] == "bounces":
            attrs["direction"] = "left"  # a bounce's direction is not a caption word
        assert caption_for(**attrs) == text
    for bad in ["a red circle rotates", "a red circle moves sideways", "a red circle", "the red circle moves up",
                "a red circle moves up quickly", "a red circle and a red circle move up"]:
        with pytest.raises(ValueError):
            parse_caption(bad)


def test_no_rotating_circles():
    ds = MovingShapes("train", motions=["rotates"], length=200)
    assert {ds.clip_params(i).attributes["shape"] for i in range(200)} == {"square", "triangle", "star"}
    with pytest.raises(ValueError, match="circle"):
        caption_for(color="red", shape="circle", motion="rotates")
    with pytest.raises(ValueError, match="circle"):
        make_params(color="red", shape="circle", motion="rotates")


def test_moves_goes_the_captioned_way_and_stays_visible():
    ds = MovingShapes("train", motions=["moves"], length=400)
    clips = single(ds, 120, motion="moves")
    assert {p.attributes["direction"] for p, _ in clips} == set(DIRECTIONS)
    assert {p.attributes["speed"] for p, _ in clips} == {"slow", "normal", "fast"}
    for p, video in clips:
        alpha = alpha_of(video, p)
        c = centroids(alpha)
        shift = c[-1] - c[0]
        unit = np.asarray(DIRECTIONS[p.attributes["direction"]])
        assert shift @ unit / np.linalg.norm(shift) > 0.97, p.caption
        assert np.all(np.diff(c, axis=0) @ unit > 0), p.caption  # every step goes that way
        assert np.linalg.norm(shift) > 0.15 * SIZE
        visible = alpha.sum((1, 2)) / centred_mass(p.objects[0], p.times)
        assert visible.min() > 0.85, p.caption


def test_speed_words_mean_what_they_say():
    ds = MovingShapes("train", motions=["moves"], length=600)
    by_speed = {"slow": [], "normal": [], "fast": []}
    for p, video in single(ds, 150, motion="moves"):
        c = centroids(alpha_of(video, p))
        by_speed[p.attributes["speed"]].append(np.linalg.norm(c[-1] - c[0]) / SIZE)
    assert max(by_speed["slow"]) < min(by_speed["normal"]) and max(by_speed["normal"]) < min(by_speed["fast"])


def test_two_shapes_move_together_without_overlap():
    ds = MovingShapes("train", length=800)
    seen = 0
    for i in range(len(ds)):
        p = ds.clip_params(i)
        if p.attributes["num_objects"] != 2:
            continue
        seen += 1
        a, b = p.objects
        assert (a.color, a.shape) != (b.color, b.shape) and a.velocity == b.velocity
        assert p.caption == (f"a {a.color} {a.shape} and a {b.color} {b.shape} move {p.attributes['direction']}")
        alphas = []
        for track in p.objects:
            one = ClipParams(objects=(track,))
            alpha = alpha_of(render_clip(one, p.times, SIZE), one)
            assert (alpha.sum((1, 2)) / centred_mass(track, p.times)).min() > 0.85
            alphas.append(alpha)
        assert (alphas[0] * alphas[1]).max() < 1e-6  # never overlap
    assert seen >= 20


def test_bounces_touch_a_wall_inside_the_clip():
    ds = MovingShapes("train", motions=["bounces"], length=300)
    for p, video in single(ds, 60, motion="bounces"):
        alpha = alpha_of(video, p)
        k = int(p.attributes["contact_time"] / p.frame_skip)
        assert 1 <= k <= p.num_frames - 2 and k * p.frame_skip == p.attributes["contact_time"]
        wall = p.attributes["wall"]
        border = {"left": alpha[:, :, 0], "right": alpha[:, :, -1], "top": alpha[:, 0, :], "bottom": alpha[:, -1, :]}
        assert border[wall][k].max() > 0.3, p.caption  # touching at frame k (a star touches with a tip)
        track = p.objects[0]
        x, y = (float(v[0]) for v in track.center_at([p.attributes["contact_time"]]))
        reach = dict(zip(("left", "right", "top", "bottom"), shape_extent(track.shape)))[wall] * track.radius
        assert {"left": x - reach, "right": x + reach, "top": y - reach, "bottom": y + reach}[wall] == pytest.approx(
            {"left": -0.012, "right": 1.012, "top": -0.012, "bottom": 1.012}[wall])  # geometry: at the wall
        axis, sign = {"left": (0, -1), "right": (0, 1), "top": (1, -1), "bottom": (1, 1)}[wall]
        c = centroids(alpha)[:, axis] * sign
        assert np.all(np.diff(c[: k + 1]) > 0) and np.all(np.diff(c[k:]) < 0), p.caption  # towards, then away


def test_rotates_turns_in_place_in_its_spin_direction():
    ds = MovingShapes("train", motions=["rotates"], length=200)
    for p, video in single(ds, 40, motion="rotates"):
        alpha = alpha_of(video, p)
        c = centroids(alpha)
        assert np.abs(c - c[0]).max() < 0.1
        n = ROTATION_SYMMETRY[p.attributes["shape"]]
        ys, xs = np.mgrid[0:SIZE, 0:SIZE]
        phase = []
        for f in range(p.num_frames):
            dx, dy = xs - c[f, 0], ys - c[f, 1]  # angle grows clockwise on screen (y down)
            z = (alpha[f] * (dx**2 + dy**2) * np.exp(1j * n * np.arctan2(dy, dx))).sum()
            phase.append(np.angle(z))
        turned = np.unwrap(phase) / n
        expected = p.objects[0].angular_velocity * p.duration
        assert turned[-1] - turned[0] == pytest.approx(expected, abs=0.05), p.caption
        assert np.sign(expected) == (1 if p.attributes["spin"] == "clockwise" else -1)
        assert abs(expected) < 2 * math.pi / n  # less than a symmetry period: no aliasing


@pytest.mark.parametrize("motion", ["grows", "shrinks"])
def test_grows_and_shrinks_change_area(motion):
    ds = MovingShapes("train", motions=[motion], length=100)
    for p, video in single(ds, 20, motion=motion):
        mass = alpha_of(video, p).sum((1, 2))
        steps = np.diff(mass)
        assert np.all(steps > 0) if motion == "grows" else np.all(steps < 0)
        ratio = max(mass[0], mass[-1]) / min(mass[0], mass[-1])
        assert ratio > 1.5**2 * 0.85
        assert centroids(alpha_of(video, p)).std(0).max() < 0.1


# ---------------------------------------------------------------- held-out split


def test_heldout_combinations_never_in_train_or_val():
    assert MovingShapes.heldout_combinations() == HELDOUT_COMBINATIONS and len(HELDOUT_COMBINATIONS) >= 3
    seen = {k: set() for k in ("color", "shape", "direction", "motion")}
    for split in ("train", "val"):
        ds = MovingShapes(split, length=1500)
        for i in range(len(ds)):
            a = ds.clip_params(i).attributes
            assert (a["color"], a["shape"]) not in HELDOUT_COMBINATIONS
            assert (a["color2"], a["shape2"]) not in HELDOUT_COMBINATIONS
            assert not a["heldout"]
            if split == "train":
                for k in seen:
                    seen[k].add(a[k])
    assert seen["color"] == set(COLOR_NAMES) and seen["shape"] == set(SHAPES)
    assert seen["direction"] - {"none"} == set(DIRECTION_NAMES) and seen["motion"] == set(MOTIONS)
    ho = MovingShapes("heldout", length=300)
    pairs = set()
    for i in range(len(ho)):
        a = ho.clip_params(i).attributes
        assert (a["color"], a["shape"]) in HELDOUT_COMBINATIONS and a["heldout"]
        pairs.add((a["color"], a["shape"]))
    assert pairs == HELDOUT_COMBINATIONS


def test_filters_restrict_attributes():
    ds = MovingShapes("train", colors=["red", "white"], shapes=["star"], motions=["moves", "grows"], length=60)
    for i in range(60):
        a = ds.clip_params(i).attributes
        assert a["color"] in ("red", "white") and a["shape"] == "star" and a["motion"] in ("moves", "grows")
    light = MovingShapes("train", backgrounds=["light"], length=100)
    assert all(light.clip_params(i).attributes["color"] not in ("white", "yellow") for i in range(100))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"split": "test"}, ["'test'", "'train'", "'val'", "'heldout'"]),
        ({"num_frames": 1}, ["num_frames", "1", ">= 2"]),
        ({"num_frames": 2.5}, ["num_frames", "2.5"]),
        ({"size": 4}, ["size", "4", ">= 8"]),
        ({"size": "64"}, ["size", "'64'"]),
        ({"frame_skip": 0}, ["frame_skip", "0", ">= 1"]),
        ({"seed": -1}, ["seed", "-1"]),
        ({"length": 0}, ["length", "0"]),
        ({"simple_fraction": 1.5}, ["simple_fraction", "1.5"]),
        ({"colors": ["magenta"]}, ["'magenta'", "'red'", "'white'"]),
        ({"colors": "red"}, ["'red'", "list"]),
        ({"shapes": ["hexagon"]}, ["'hexagon'", "'circle'", "'star'"]),
        ({"motions": ["flies"]}, ["'flies'", "'moves'", "'bounces'"]),
        ({"directions": ["north"]}, ["'north'", "'up-left'"]),
        ({"backgrounds": ["white"]}, ["'white'", "'black'", "'light'"]),
        ({"motions": ["rotates"], "shapes": ["circle"]}, ["rotates", "circle"]),
        ({"split": "heldout", "colors": ["white"]}, ["heldout", "white"]),
    ],
)
def test_bad_arguments_name_value_and_allowed(kwargs, words):
    with pytest.raises(ValueError) as err:
        MovingShapes(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_make_params_rejects_impossible_clips():
    with pytest.raises(ValueError, match="'magenta'.*'red'"):
        make_params(color="magenta", shape="circle")
    with pytest.raises(ValueError, match="'sideways'.*'left'"):
        make_params(color="red", shape="circle", direction="sideways")
    with pytest.raises(ValueError, match="num_frames >= 3"):
        make_params(color="red", shape="square", motion="bounces", num_frames=2)
    with pytest.raises(ValueError, match="direction 'left'.*'grows'"):
        make_params(color="red", shape="square", motion="grows", direction="left")
    with pytest.raises(ValueError, match="'yellow'.*'light'"):
        make_params(color="yellow", shape="square", background="light")
    with pytest.raises(ValueError, match="'moves'"):
        make_params(color="red", shape="square", motion="bounces", color2="blue", shape2="star")
    with pytest.raises(ValueError, match="times"):
        render_clip(make_params(color="red", shape="square"), [[0.0, 1.0]])


def test_every_vocabulary_combination_can_be_made():
    # placement must succeed for every motion x shape x size x speed, incl. big fast shapes
    for motion in MOTIONS:
        for shape in SHAPES if motion != "rotates" else ("square", "triangle", "star"):
            for size in ("small", "normal", "big"):
                for speed in ("slow", "normal", "fast"):
                    direction = "down-right" if motion in ("moves", "bounces") else None
                    for seed in range(3):
                        p = make_params(color="white", shape=shape, motion=motion, direction=direction, speed=speed,
                                        size=size, seed=seed)
                        assert p.attributes["motion"] == motion


def test_bench_render_reports_rate_next_to_target():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_data.py"
    spec = importlib.util.spec_from_file_location("bench_data", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    result = bench.bench_render(seconds=0.02, num_frames=4, size=32, warmup=1)
    assert torch.get_num_threads() == threads  # restored
    assert result["clips"] >= 50 and result["clips_per_second"] > 0
    assert result["target_clips_per_second"] == 500 and result["threads"] == 1 and result["num_frames"] == 4
    with pytest.raises(ValueError, match="seconds"):
        bench.bench_render(seconds=0)
