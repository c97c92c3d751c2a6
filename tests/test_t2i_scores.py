"""evaluate-t2i: colour and shape of T2I samples, with the held-out pairs apart; real frames score full marks."""

from __future__ import annotations

import json

import torch

from minifusion.cli import main
from minifusion.data import HELDOUT_COMBINATIONS, MovingShapes
from minifusion.eval.attribute_classifier import AttributeClassifier
from minifusion.eval.t2i_scores import t2i_prompts
from minifusion.eval.toy_metrics import EVAL_WEIGHTS_DIR
from minifusion.pipelines import pretrained


def test_prompts_cover_every_pair_and_mark_the_held_out_ones():
    prompts = t2i_prompts(2)
    assert len(prompts) == 56 and len({(p["color"], p["shape"]) for p in prompts}) == 28
    assert {(p["color"], p["shape"]) for p in prompts if p["heldout"]} == set(HELDOUT_COMBINATIONS)


def test_the_classifier_reads_colour_and_shape_from_still_frames_of_real_clips():
    """The premise of the score: a still video of one real frame is judged right."""
    clips = MovingShapes("heldout", num_frames=8, size=64, length=24, seed=3, simple_fraction=1.0)
    items = [clips[i] for i in range(len(clips))]
    stills = torch.stack([it["video"][:, :1] for it in items]).expand(-1, -1, 8, -1, -1)
    predicted = AttributeClassifier.from_pretrained(EVAL_WEIGHTS_DIR / "attribute_classifier").predict(stills)
    assert predicted["color"] == [it["attributes"]["color"] for it in items]
    shapes = sum(p == it["attributes"]["shape"] for p, it in zip(predicted["shape"], items))
    assert shapes >= len(items) - 1


def test_evaluate_t2i_command(tmp_path, capsys):
    path = tmp_path / "t2i.json"
    assert main(["evaluate-t2i", "--samples-per-pair", "1", "--steps", "2", "--no-compare", "--json", str(path),
                 "--grid", str(tmp_path / "grid.png")]) == 0
    out = capsys.readouterr().out
    assert "heldout" in out and "colour (pixels)" in out and (tmp_path / "grid.png").is_file()
    report = json.loads(path.read_text())["this T2I"]
    assert report["all"]["num_images"] == 28 and report["heldout"]["num_images"] == 4
    assert 0 <= report["all"]["shape"] <= 1


def test_evaluate_t2i_compares_with_the_folder_given(tmp_path, capsys):
    path = tmp_path / "t2i.json"
    other = pretrained("moving-shapes")
    assert main(["evaluate-t2i", "--samples-per-pair", "1", "--steps", "1", "--compare", str(other),
                 "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert sorted(report) == sorted(["this T2I", "moving-shapes"]), sorted(report)
    assert report["this T2I"]["all"]["num_images"] == report["moving-shapes"]["all"]["num_images"] == 28
    assert f"moving-shapes: {other}" in capsys.readouterr().out
