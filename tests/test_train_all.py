"""``train all``: every stage in order into one folder; finished stages are skipped; per-stage configs."""

from __future__ import annotations

import json

import pytest

from minifusion.cli import main
from minifusion.pipeline import FusionFramesPipeline
from minifusion.training.recipes import train_all
from minifusion.training.recipes.all_stages import ORDER
from test_recipe_decoder import TINY_DECODER
from test_recipe_interpolation import TINY_INTERP
from test_recipe_keyframes import TINY_AE, TINY_KF, TINY_T2I, TINY_TE

TINY_ALL = {"text_encoder": TINY_TE, "autoencoder": TINY_AE, "t2i": TINY_T2I, "keyframes": {**TINY_KF, "motion_check_every": 0},
            "interpolation": {**TINY_INTERP, "data": {**TINY_INTERP["data"], "num_frames": 8}},
            "decoder": TINY_DECODER, "mfi": {**TINY_INTERP, "data": {**TINY_INTERP["data"], "num_frames": 8}}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("all")
    config = out.parent / "all.json"
    config.write_text(json.dumps(TINY_ALL))
    train_all(out, config=config, progress=False, skip=("mfi",))
    return out, config


def test_all_trains_every_stage_into_a_pipeline_that_generates(trained):
    out, _ = trained
    for stage in ORDER[:-1]:
        assert json.loads((out / "runs" / stage / "metrics.json").read_text())["step"] == 3
    assert not (out / "mfi_unet").exists()  # skipped
    pipe = FusionFramesPipeline.from_pretrained(out)
    assert pipe.video_decoder is not None and pipe.interpolation_unet is not None
    frames = pipe("a red circle moves right", num_inference_steps=2, interpolation_num_inference_steps=1,
                  progress=False).frames
    assert frames.shape == (1, 29, 16, 16, 3)


def test_running_all_again_skips_finished_stages(trained, capsys):
    out, config = trained
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    train_all(out, config=config, skip=("mfi",))
    text = capsys.readouterr().out
    assert all(f"{stage} already trained to step 3" in text for stage in ORDER[:-1])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == before


def test_a_stage_command_takes_its_section_of_a_pipeline_config(trained, tmp_path):
    _, config = trained
    out = tmp_path / "pipe"
    assert main(["train", "autoencoder", "--out", str(out), "--config", str(config), "--no-progress"]) == 0
    recipe = json.loads((out / "runs" / "autoencoder" / "recipe.json").read_text())
    assert recipe["model"]["block_out_channels"] == [8, 16] and recipe["training"]["steps"] == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"config": {"vae": {}}}, r"unknown stages \['vae'\]"),
    ({"skip": ("decoders",)}, r"cannot skip \['decoders'\]"),
    ({"config": [1]}, "must map stage names"),
])
def test_bad_all_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_all(tmp_path, progress=False, **kwargs)


@pytest.mark.parametrize("args, message", [
    (["train", "t2i", "--out", "x", "--skip", "mfi"], "--skip applies to the stage 'all' only"),
    (["train", "t2i", "--out", "x", "--variant", "conv1d"], "--variant applies to the decoder stage only"),
    (["train", "t2i", "--out", "x", "--temporal", "conv1d_attn1d_blocks"], "--temporal applies to the keyframes"),
])
def test_stage_options_on_the_wrong_stage_are_refused(args, message, capsys):
    assert main(args) == 2 and message in capsys.readouterr().err
