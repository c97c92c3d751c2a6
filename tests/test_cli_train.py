"""``python -m minifusion train``: help lists every stage, runs and resumes, bad input exits 2."""

from __future__ import annotations

import json

import pytest

from minifusion.cli import main
from minifusion.models.autoencoder import Autoencoder

TINY_AE = {"model": {"block_out_channels": [8, 16], "norm_groups": 4, "sample_size": 16},
           "training": {"steps": 2, "batch_size": 2, "log_every": 1, "device": "cpu"},
           "data": {"num_clips": 4, "num_frames": 2, "frame_skip": 1, "size": 16},
           "val_frames": 2, "scaling_frames": 4}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_AE))
    return path


def test_train_help_lists_every_stage_and_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("autoencoder", "t2i", "keyframes", "interpolation", "decoder", "mfi", "all", "--out", "--steps",
                 "--config", "--resume", "--data", "--seed", "--temporal", "--variant", "--skip", "--no-progress"):
        assert word in out, word


def test_top_level_help_mentions_train(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "vae", "--out", "OUT"], "invalid choice: 'vae'"),
    (["train", "keyframes", "--out", "OUT", "--temporal", "conv2d"], "invalid choice: 'conv2d'"),
    (["train", "decoder", "--out", "OUT", "--variant", "big"], "invalid choice: 'big'"),
    (["train", "autoencoder", "--out", "OUT", "--steps", "0"], "must be an integer >= 1"),
    (["train", "autoencoder", "--out", "OUT", "--data", "NOPE"], "data folder 'NOPE' does not exist"),
    (["train", "autoencoder", "--out", "OUT", "--config", "NOPE.json"], "config file 'NOPE.json' does not exist"),
    (["train", "autoencoder"], "--out"),
])
def test_bad_arguments_exit_2(argv, message, tmp_path, capsys):
    argv = [str(tmp_path / a) if a in ("OUT", "NOPE") else a for a in argv]
    message = message.replace("'NOPE'", repr(str(tmp_path / "NOPE")))
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_config_contents_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"training": {"learning_rate": 1e-3}}))
    assert main(["train", "autoencoder", "--out", str(tmp_path / "o"), "--config", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown AutoencoderRecipe.training keys ['learning_rate']" in err and "'lr'" in err
    bad.write_text("{")
    assert main(["train", "autoencoder", "--out", str(tmp_path / "o"), "--config", str(bad), "--no-progress"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_t2i_before_autoencoder_exits_2(tmp_path, capsys):
    assert main(["train", "t2i", "--out", str(tmp_path), "--no-progress"]) == 2
    assert f"python -m minifusion train autoencoder --out {tmp_path}" in capsys.readouterr().err


def test_train_runs_refuses_to_overwrite_and_resumes(tmp_path, tiny_config, capsys):
    out = tmp_path / "pipe"
    argv = ["train", "autoencoder", "--out", str(out), "--config", str(tiny_config), "--no-progress", "--seed", "3"]
    assert main(argv) == 0
    assert f"wrote {out / 'autoencoder'}" in capsys.readouterr().out
    assert Autoencoder.from_pretrained(out / "autoencoder").scaling_factor != 1.0
    recipe = json.loads((out / "runs" / "autoencoder" / "recipe.json").read_text())
    assert recipe["training"]["seed"] == 3 and recipe["data"]["seed"] == 3
    assert main(argv) == 2  # the run exists: no silent overwrite
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["train", "autoencoder", "--out", str(out), "--resume", "--steps", "3", "--no-progress"]) == 0
    metrics = json.loads((out / "runs" / "autoencoder" / "metrics.json").read_text())
    assert metrics["step"] == 3
