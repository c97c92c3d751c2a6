"""The pipeline's samplers (``pipe(..., scheduler=...)``, ``generate --scheduler``) on the shipped checkpoint,
and the 113-frame video of ``make demo`` being reproducible: every stage draws its noise from the caller's
generator, so the same seed gives the same bytes (one torch thread, tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minifusion
import minifusion.pipelines.interpolation as interpolation_stage
import minifusion.pipelines.keyframes as keyframe_stage
from minifusion import FusionFramesPipeline
from minifusion.cli import main
from minifusion.diffusion import DPMSolverMultistepScheduler, EulerDiscreteScheduler
from minifusion.pipeline import SCHEDULER_OPTIONS, SCHEDULERS

PROMPT = "a green square moves up"  # make demo's 113-frame video
FEW = dict(num_inference_steps=3, interpolation_num_inference_steps=2, output_type="np", progress=False)


@pytest.fixture(scope="module")
def pipe() -> FusionFramesPipeline:
    return FusionFramesPipeline.from_pretrained(minifusion.pretrained())


def test_113_frames_are_byte_identical_for_the_same_seed_and_every_pass_draws_from_it(pipe, monkeypatch):
    draws = []  # (stage noise shape, generator) of every randn call of the stages

    def spy(module):
        real = module.randn

        def randn(shape, generator, device):
            draws.append((tuple(shape), generator))
            return real(shape, generator, device)
        monkeypatch.setattr(module, "randn", randn)

    spy(keyframe_stage)
    spy(interpolation_stage)
    generator = torch.Generator().manual_seed(0)
    a = pipe(PROMPT, interpolation_passes=2, generator=generator, **FEW).frames
    assert a.shape == (1, 113, 64, 64, 3)
    # keyframes (1, 4, 8, 16, 16), pass 1: 7 pairs x 3 frames, pass 2: 28 pairs x 3 frames; all from the seed
    assert [shape for shape, _ in draws] == [(1, 4, 8, 16, 16), (1, 12, 7, 16, 16), (1, 12, 28, 16, 16)]
    assert all(g is generator for _, g in draws)
    b = pipe(PROMPT, interpolation_passes=2, generator=torch.Generator().manual_seed(0), **FEW).frames
    assert a.tobytes() == b.tobytes()
    c = pipe(PROMPT, interpolation_passes=2, generator=torch.Generator().manual_seed(1), **FEW).frames
    pass_2_frames = [i for i in range(113) if i % 4]  # the frames only the second pass makes
    assert np.abs(c[:, pass_2_frames] - a[:, pass_2_frames]).mean() > 0.01


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_runs_both_stages_with_their_own_config(pipe, name, monkeypatch):
    used = {}

    def spy(module):
        real = module.denoise

        def denoise(model_fn, scheduler, latents, **kwargs):
            used[kwargs["stage"]] = scheduler
            return real(model_fn, scheduler, latents, **kwargs)
        monkeypatch.setattr(module, "denoise", denoise)

    spy(keyframe_stage)
    spy(interpolation_stage)
    out = pipe(PROMPT, scheduler=name, generator=torch.Generator().manual_seed(0), **FEW)
    assert out.frames.shape == (1, 29, 64, 64, 3) and np.isfinite(out.frames).all()
    assert set(used) == {"keyframes", "interpolation_1"}
    assert all(type(s) is SCHEDULERS[name] for s in used.values())
    if name.startswith("dpm"):
        assert {s.config["algorithm_type"] for s in used.values()} == {SCHEDULER_OPTIONS[name]["algorithm_type"]}
    # each stage keeps its schedule and prediction type, and the pipeline's latent-range thresholding
    assert used["keyframes"].config["prediction_type"] == pipe.scheduler.config["prediction_type"] == "epsilon"
    assert used["interpolation_1"].config["prediction_type"] == "v_prediction"
    assert used["keyframes"].config["clip_sample_range"] == pipe.settings.latent_range
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"  # never mutated


def test_a_pipeline_saved_with_the_new_schedulers_loads_them_back(pipe, tmp_path):
    copy = FusionFramesPipeline(**pipe.components, settings=pipe.settings)
    copy.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, solver_order=3)
    copy.interpolation_scheduler = EulerDiscreteScheduler.from_config(pipe.interpolation_scheduler.config)
    loaded = FusionFramesPipeline.from_pretrained(copy.save_pretrained(tmp_path / "pipe"))
    assert type(loaded.scheduler) is DPMSolverMultistepScheduler and loaded.scheduler.config["solver_order"] == 3
    assert type(loaded.interpolation_scheduler) is EulerDiscreteScheduler
    assert loaded.interpolation_scheduler.config == copy.interpolation_scheduler.config


@pytest.mark.parametrize("name", ["dpm", "dpm-sde", "euler"])
def test_generate_takes_the_new_schedulers(name, tmp_path, capsys):
    out = tmp_path / "v.gif"
    assert main(["generate", PROMPT, "--scheduler", name, "--steps", "2", "--passes", "0", "--out", str(out),
                 "--no-progress"]) == 0
    assert out.stat().st_size > 0 and "8 frames" in capsys.readouterr().out
