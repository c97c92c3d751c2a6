"""``python -m minifusion evaluate``: runs end to end on the shipped pipeline (tiny settings), writes the JSON it
prints, says what each metric means, and refuses bad arguments by name."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from minifusion.cli import main
from minifusion.eval.evaluate import evaluate_pipeline, prompt_grid


def test_prompt_grid_prefixes_are_balanced():
    grid = prompt_grid(112)
    assert len({g["prompt"] for g in grid}) == 112
    first = grid[:28]
    assert len({(g["color"], g["shape"]) for g in first}) == 28  # every pair once
    assert set(Counter(g["direction"] for g in first).values()) == {7}
    assert sum(g["heldout"] for g in first) == 4 and sum(g["heldout"] for g in grid) == 16
    assert prompt_grid(114)[112] == grid[0]  # more than 112 cycles


def test_evaluate_runs_and_writes_every_metric(tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["evaluate", "--num-videos", "16", "--steps", "2", "--interpolation-steps", "2", "--passes", "0",
               "--reconstruction-clips", "1", "--batch-size", "16", "--json", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    for word in ("whole caption", "FVD", "IS color", "CLIPSIM", "held-out", "interpolation pass 1", "video decoder"):
        assert word in text.replace("heldout pairs", "held-out"), word
    result = json.loads(out.read_text())
    assert result["num_videos"] == 16 and result["num_frames"] == 8
    groups = result["groups"]
    assert set(groups) == {"all", "seen_pairs", "heldout_pairs"}
    assert groups["seen_pairs"]["num_videos"] == 14 and groups["heldout_pairs"]["num_videos"] == 2
    all_ = groups["all"]
    assert all_["fvd"] > 0 and all_["real"]["fvd_real_vs_real"] >= 0
    assert set(all_["caption_accuracy"]) >= {"color", "shape", "motion", "direction", "caption", "num_judged"}
    assert all_["real"]["caption_accuracy"]["color"] == 1.0  # real clips of the prompts: the classifier is right
    assert -1 <= all_["clipsim"] <= 1 and all_["real"]["clipsim"] > all_["clipsim_other_prompts"]
    assert 1 <= all_["inception_score"]["color"] <= 7
    rec = result["reconstruction"]
    assert rec["interpolation_pass1"]["psnr_db"] > 10 and 0 < rec["video_decoder"]["ssim"] <= 1
    assert len(result["videos"]) == 16 and "predicted" in result["videos"][0]


def test_help_says_what_each_metric_means(capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for word in ("caption accuracy", "FVD", "Frechet", "IS", "CLIPSIM", "PSNR", "SSIM", "flicker", "held-out",
                 "--num-videos", "--seed", "--steps", "--passes"):
        assert word in text, word


@pytest.mark.parametrize("args, message", [
    (["--num-videos", "0"], "must be an integer >= 1"),
    (["--passes", "3"], "invalid choice: 3"),
    (["--checkpoint", "no/such/folder"], "is not a pipeline folder"),
    (["--seed", "-1"], "must be an integer >= 0"),
    (["--guidance", "nan"], "must be a finite number >= 0"),
    (["--json", "no/such/folder/x.json"], "does not exist"),
])
def test_bad_arguments_are_refused_by_name(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", *args])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_errors_found_later_exit_2_with_a_message(tmp_path, capsys):
    assert main(["evaluate", "--num-videos", "1", "--json", str(tmp_path / "x.json")]) == 2
    assert "integer >= 2" in capsys.readouterr().err
    assert main(["evaluate", "--metrics", str(tmp_path / "none"), "--json", str(tmp_path / "x.json")]) == 2
    assert "metric weights folder" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:words not in the vocabulary")  # the tiny test pipeline knows two captions
def test_pipelines_with_other_frame_sizes_are_refused():
    from test_pipeline import make_pipe  # 32x32 frames

    with pytest.raises(ValueError, match="64x64"):
        evaluate_pipeline(make_pipe(), num_videos=2, steps=1, interpolation_steps=1, reconstruction_clips=0,
                          progress=False)
