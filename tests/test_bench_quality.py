"""The motion benchmark (benchmarks/bench_quality.py): full marks on rendered ground truth, and each corruption
of the truth fails the check it should (shuffled frames: not steady; reversed: wrong direction; frozen: no motion;
an object that vanishes or splits: not one object; a jump: not steady)."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest
import torch

from minifusion.eval.attribute_classifier import AttributeClassifier
from minifusion.eval.coherence import count_objects, label_components, steady_motion
from minifusion.eval.motion_benchmark import MAX_PROMPTS, motion_prompts, reference_videos, score_videos, summarise
from minifusion.eval.toy_metrics import EVAL_WEIGHTS_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_quality  # noqa: E402

PROMPTS = motion_prompts(40)  # 5 of each direction; the 4 held-out pairs on an axis and a diagonal each


@pytest.fixture(scope="module")
def classifier():
    return AttributeClassifier.from_pretrained(EVAL_WEIGHTS_DIR / "attribute_classifier")


@pytest.fixture(scope="module")
def truth():
    return {29: reference_videos(PROMPTS, num_frames=29), 113: reference_videos(PROMPTS[:16], num_frames=113)}


def test_prompt_sets_are_balanced_in_every_prefix_of_eight():
    full = motion_prompts()
    assert len(full) == MAX_PROMPTS == 224
    assert len({(p["color"], p["shape"], p["direction"]) for p in full}) == 224  # each pair in each direction once
    for n in (8, 16, 56, 112, 224):
        counts = collections.Counter(p["direction"] for p in full[:n])
        assert len(counts) == 8 and set(counts.values()) == {n // 8}, n
    assert {p["group"] for p in full[:2]} == {"axis", "diagonal"}
    assert sum(p["heldout"] for p in full) == 32  # 4 held-out pairs x 8 directions
    with pytest.raises(ValueError, match="num_videos 0 is not allowed"):
        motion_prompts(0)


@pytest.mark.parametrize("frames", [29, 113])
def test_ground_truth_scores_full_marks(truth, classifier, frames):
    prompts = PROMPTS[: len(truth[frames])]
    summary = summarise(score_videos(truth[frames], prompts, classifier=classifier))
    for group in ("axis", "diagonal"):
        r = summary[group]["all"]
        assert r["color"] == r["shape"] == r["direction"] == r["steady"] == r["one_object"] == r["all_right"] == 1.0
    if frames == 29:
        assert summary["all"]["heldout"]["num_videos"] == 8 and summary["all"]["heldout"]["all_right"] == 1.0


def test_corrupted_truth_fails_the_check_it_should(truth):
    videos, directions = truth[29], [p["direction"] for p in PROMPTS]

    def share(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    shuffled = videos[:, :, torch.randperm(29, generator=torch.Generator().manual_seed(0))]
    assert share(steady_motion(shuffled, directions, value_range=(0, 1)), "steady") <= 0.05
    reversed_rows = steady_motion(videos.flip(2), directions, value_range=(0, 1))
    assert share(reversed_rows, "direction_ok") == 0.0 and share(reversed_rows, "steady") == 1.0
    frozen = steady_motion(videos[:, :, :1].expand(-1, -1, 29, -1, -1), directions, value_range=(0, 1))
    assert share(frozen, "direction_ok") == 0.0 and share(frozen, "moving") == 0.0 and share(frozen, "steady") == 0
    vanish = videos.clone()
    vanish[:, :, 10] = videos[:, :, 10, :1, :1]  # frame 10 holds only its background colour (corner pixel)
    rows = steady_motion(vanish, directions, value_range=(0, 1))
    assert share(rows, "one_object") == 0.0 and share(rows, "steady") == 0.0
    assert all(r["frames_without_one_object"] == 1 for r in rows)
    split = videos.clone()
    split[:, :, 20] = torch.maximum(videos[:, :, 0], videos[:, :, 28])  # two copies: the start and the end
    assert share(steady_motion(split, directions, value_range=(0, 1)), "one_object") == 0.0
    jump = torch.cat([videos[:, :, :1].expand(-1, -1, 14, -1, -1), videos[:, :, 28:].expand(-1, -1, 15, -1, -1)], 2)
    rows = steady_motion(jump, directions, value_range=(0, 1))  # sits still, then teleports to the end
    assert share(rows, "direction_ok") == 1.0 and share(rows, "jump_ok") == 0.0 and share(rows, "steady") == 0.0


def test_components_and_counts():
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    mask[0, :2, :2] = True
    mask[0, 4:, 3:] = True
    labels = label_components(mask)
    assert len(set(labels[mask].tolist())) == 2 and (labels[~mask] == 0).all()
    video = torch.zeros(1, 3, 2, 16, 16)
    video[0, :, 0, 2:6, 2:6] = 1.0  # frame 0: one 16-pixel square; frame 1: it and a 4-pixel speck
    video[0, :, 1, 2:6, 2:6] = 1.0
    video[0, :, 1, 10:12, 10:12] = 1.0
    assert count_objects(video, value_range=(0, 1)).tolist() == [[1, 1]]
    assert count_objects(video, value_range=(0, 1), min_area=4).tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="min_area 0 is not allowed"):
        count_objects(video, min_area=0)
    with pytest.raises(ValueError, match="one direction per video"):
        steady_motion(video, ["left", "right"])
    with pytest.raises(ValueError, match=r"directions \['sideways'\] are not among"):
        steady_motion(video, ["sideways"])


def test_the_benchmark_script_runs_end_to_end(tmp_path, capsys):
    path = tmp_path / "q.json"
    assert bench_quality.main(["--videos", "2", "--long-videos", "0", "--interpolation-clips", "0", "--steps", "2",
                               "--no-progress", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "direction chance 12.5%" in out and "steady" in out and path.is_file()
