"""``train all``: every stage in order into one folder; finished stages are skipped; per-stage configs."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from test_recipe_decoder import TINY_DECODER
from test_recipe_interpolation import TINY_INTERP
from test_recipe_keyframes import TINY_AE, TINY_KF, TINY_T2I, TINY_TE

from minifusion.cli import main
from minifusion.pipeline import FusionFramesPipeline
from minifusion.training.recipes import train_all
from minifusion.training.recipes.all_stages import NEEDS, ORDER, StageFailed, _train_side_by_side

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


def test_stages_side_by_side_train_the_same_weights_as_one_after_another(trained, tmp_path, capsys):
    from safetensors.torch import load_file

    out, config = trained
    side = tmp_path / "side"
    train_all(side, config=config, skip=("keyframes", "interpolation", "decoder", "mfi"), jobs=2)  # 3 processes
    assert "all: training autoencoder (3 steps) beside text_encoder" in capsys.readouterr().out
    for stage in ("text_encoder", "autoencoder", "t2i"):  # t2i read both, so it started after them
        assert json.loads((side / "runs" / stage / "metrics.json").read_text())["step"] == 3
        assert (side / "logs" / f"{stage}.log").read_text().startswith(sys.executable)
    for part in ("text_encoder", "autoencoder", "unet"):  # one process each: the same weights
        a, b = load_file(out / part / "model.safetensors"), load_file(side / part / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), part


def _stand_in(fail: str | None = None):
    """Stage commands that sleep briefly and write when they ran; ``fail`` exits with code 3."""
    def command(name, out_dir, config_file, **options):
        code = 3 if name == fail else 0
        script = (f"import time; open({str(out_dir / 'ran.txt')!r}, 'a').write('start {name}\\n'); time.sleep(0.3); "
                  f"open({str(out_dir / 'ran.txt')!r}, 'a').write('end {name}\\n'); raise SystemExit({code})")
        return [sys.executable, "-c", script]
    return command


def test_side_by_side_starts_a_stage_only_after_the_stages_it_reads(tmp_path):
    todo = {name: 3 for name in ORDER}
    _train_side_by_side(tmp_path, todo, 2, config=None, steps=None, resume=False, data_dir=None, seed=None,
                        temporal=None, variant=None, progress=False, poll_seconds=0.05, command=_stand_in())
    events = (tmp_path / "ran.txt").read_text().split("\n")[:-1]
    for name in ORDER:
        for need in NEEDS[name]:
            assert events.index(f"end {need}") < events.index(f"start {name}"), (need, name, events)
    running, most = 0, 0
    for event in events:
        running += 1 if event.startswith("start") else -1
        most = max(most, running)
    assert most == 2  # never more than jobs, and the independent stages did overlap


def test_a_failing_stage_stops_the_stages_that_need_it_and_names_its_log(tmp_path):
    todo = {name: 3 for name in ORDER}
    with pytest.raises(StageFailed, match=r"autoencoder \(exit code 3, log .*autoencoder\.log\)"):
        _train_side_by_side(tmp_path, todo, 2, config=None, steps=None, resume=False, data_dir=None, seed=None,
                            temporal=None, variant=None, progress=False, poll_seconds=0.05,
                            command=_stand_in(fail="autoencoder"))
    started = {e.split()[1] for e in (tmp_path / "ran.txt").read_text().split("\n") if e.startswith("start")}
    assert started == {"text_encoder", "autoencoder"}  # t2i and decoder read the autoencoder: never started


def test_jobs_must_be_a_positive_integer_and_only_for_all(tmp_path, capsys):
    with pytest.raises(ValueError, match="jobs 0 is not allowed"):
        train_all(tmp_path, jobs=0)
    assert main(["train", "t2i", "--out", str(tmp_path), "--jobs", "2"]) == 2
    assert "--jobs applies to the stage 'all' only" in capsys.readouterr().err
