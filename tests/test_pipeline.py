"""FusionFramesPipeline: shapes, ranges, guidance, interpolation, determinism, persistence, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import minifusion
from minifusion.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from minifusion.eval.interpolation_eval import linear_blend
from minifusion.models import (
    Autoencoder,
    AutoencoderConfig,
    InterpolationUNet,
    InterpolationUNetConfig,
    KeyframeUNet,
    KeyframeUNetConfig,
    TextEncoder,
)
from minifusion.pipeline import FusionFramesPipeline
from minifusion.pipelines import PipelineSettings, interleave, interpolate_pass, pretrained, write_model_index
from minifusion.pipelines import model_index as model_index_module
from minifusion.pipelines.interpolation import pair_blend

CAPTIONS = ["a red circle moves right", "a blue square moves left"]
UNET = dict(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=16, attention_head_dim=8,
            norm_groups=4, sample_size=8)


def make_pipe(*, video_decoder: bool = False, seed: int = 0, **settings) -> FusionFramesPipeline:
    """Tiny random components: 32x32 frames <-> 4x8x8 latents, U-Nets of widths (8, 16)."""
    torch.manual_seed(seed)
    ae_config = AutoencoderConfig(block_out_channels=(8, 8, 16), norm_groups=4, sample_size=32)
    ae = Autoencoder(ae_config)
    text_encoder = TextEncoder.from_captions(CAPTIONS, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=32, max_length=8)
    keyframe_unet = KeyframeUNet(KeyframeUNetConfig(**UNET))
    interpolation_unet = InterpolationUNet(InterpolationUNetConfig(**UNET))
    # Random init leaves the zero-initialised parts at zero: perturb every parameter so that text,
    # frame positions, frame skip and the conditioning keyframes all change the outputs.
    with torch.no_grad():
        for model in (keyframe_unet, interpolation_unet, text_encoder):
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
    decoder = None
    if video_decoder:
        decoder = Autoencoder(AutoencoderConfig(**{**ae_config.__dict__, "decoder_temporal": "conv1d"}))
    values = {"latent_range": 3.0, "num_inference_steps": 3, "interpolation_num_inference_steps": 2, **settings}
    pipe = FusionFramesPipeline(
        autoencoder=ae, text_encoder=text_encoder, keyframe_unet=keyframe_unet, interpolation_unet=interpolation_unet,
        scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        interpolation_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"),
        video_decoder=decoder, settings=PipelineSettings(**values),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class CallRecorder:
    """Wraps a model's forward: records the input shapes and keyword arguments of every call."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: list[dict] = []
        self.original = model.forward

        def forward(sample, timestep, *args, **kwargs):
            self.calls.append({"sample": sample.clone(), "timestep": timestep, "args": args, "kwargs": kwargs})
            return self.original(sample, timestep, *args, **kwargs)

        model.forward = forward


@pytest.fixture(scope="module")
def pipe() -> FusionFramesPipeline:
    return make_pipe()


# -- shapes, ranges, output types --------------------------------------------------------------
@pytest.mark.parametrize("passes, frames", [(0, 3), (1, 9), (2, 33)])
def test_frame_counts_and_range(pipe, passes, frames):
    out = pipe(CAPTIONS, num_keyframes=3, interpolation_passes=passes, generator=gen())
    assert out.frames.shape == (2, frames, 32, 32, 3) and out.frames.dtype == np.float32
    assert out.keyframes.shape == (2, 3, 32, 32, 3)
    assert out.frames.min() >= 0 and out.frames.max() <= 1
    assert out.keyframe_indices == [0, 4 ** passes, 2 * 4 ** passes]
    np.testing.assert_allclose(out.frames[:, out.keyframe_indices], out.keyframes, atol=1e-5)  # same latents


def test_output_types(pipe):
    def run(output_type, **kwargs):
        return pipe("a red circle moves right", num_keyframes=2, interpolation_passes=1, generator=gen(),
                    output_type=output_type, **kwargs)

    latents, key_latents = run("latent", return_dict=False)
    assert latents.shape == (1, 4, 5, 8, 8) and key_latents.shape == (1, 4, 2, 8, 8)
    pt = run("pt")
    assert pt.frames.shape == (1, 3, 5, 32, 32) and 0 <= pt.frames.min() and pt.frames.max() <= 1
    assert pt.keyframes.shape == (1, 3, 2, 32, 32)
    torch.testing.assert_close(pt.frames, (pipe.decode_latents(latents) + 1) / 2)
    np_out = run("np")
    np.testing.assert_allclose(np_out.frames, pt.frames.permute(0, 2, 3, 4, 1).numpy(), atol=1e-6)
    pil = run("pil")
    assert len(pil.frames) == 1 and len(pil.frames[0]) == 5 and pil.frames[0][0].size == (32, 32)
    assert len(pil.keyframes[0]) == 2
    np.testing.assert_allclose(np.asarray(pil.frames[0][3]) / 255, np_out.frames[0, 3], atol=0.5 / 255 + 1e-6)


# -- reproducibility ------------------------------------------------------------------------------
def test_generator_makes_results_reproducible(pipe):
    kwargs = dict(num_keyframes=3, interpolation_passes=1, output_type="latent")
    a = pipe(CAPTIONS, generator=gen(1), **kwargs).frames
    b = pipe(CAPTIONS, generator=gen(1), **kwargs).frames
    c = pipe(CAPTIONS, generator=gen(2), **kwargs).frames
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3
    # DDPM steps draw noise too: the same initial noise with other step noise gives other keyframes
    d = pipe(CAPTIONS, generator=gen(1), scheduler="ddim", **kwargs).frames
    assert (a - d).abs().max() > 1e-3


def test_save_and_load_round_trip(tmp_path):
    pipe = make_pipe(video_decoder=True)
    folder = pipe.save_pretrained(tmp_path / "pipe")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["autoencoder", "interpolation_scheduler", "interpolation_unet", "keyframe_unet",
                     "model_index.json", "scheduler", "text_encoder", "video_decoder"]
    index = json.loads((folder / "model_index.json").read_text())
    assert index["components"]["keyframe_unet"] == "KeyframeUNet"
    assert index["settings"]["latent_range"] == 3.0 and index["settings"]["keyframe_frame_skip"] == 4
    loaded = FusionFramesPipeline.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.settings == pipe.settings and loaded.scheduler.config == pipe.scheduler.config
    kwargs = dict(num_keyframes=2, interpolation_passes=1, output_type="np")
    a = pipe(CAPTIONS, generator=gen(3), **kwargs)
    b = loaded(CAPTIONS, generator=gen(3), **kwargs)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.keyframes, b.keyframes)


def test_write_model_index_from_component_folders(tmp_path):
    pipe = make_pipe()
    folder = pipe.save_pretrained(tmp_path / "pipe")
    (folder / "model_index.json").unlink()
    with pytest.raises(ValueError, match="latent_range"):
        write_model_index(folder)
    write_model_index(folder, latent_range=2.5, num_inference_steps=4)
    loaded = FusionFramesPipeline.from_pretrained(folder)
    assert loaded.settings.latent_range == 2.5 and loaded.settings.num_inference_steps == 4
    assert loaded.interpolation_unet is not None and loaded.video_decoder is None
    write_model_index(folder, guidance_scale=3.0)  # keeps the earlier settings
    assert FusionFramesPipeline.from_pretrained(folder).settings.latent_range == 2.5


# -- classifier-free guidance ---------------------------------------------------------------------
def manual_keyframes(pipe, prompts, *, scale, steps=3, num_keyframes=3, seed=0, negative=None):
    """An independent keyframe loop: separate cond and uncond calls, thresholding as in the settings."""
    s = pipe.settings
    sched = DDPMScheduler.from_config(pipe.scheduler.config, thresholding=True, clip_sample_range=s.latent_range,
                                      dynamic_thresholding_ratio=0.98, sample_max_value=1.5 * s.latent_range)
    g = gen(seed)
    x = torch.randn((len(prompts), 4, num_keyframes, 8, 8), generator=g)
    cond, cond_mask = pipe.text_encoder.encode(prompts)
    if negative is None:
        uncond, uncond_mask = pipe.text_encoder.null_embedding(len(prompts))
    else:
        uncond, uncond_mask = pipe.text_encoder.encode([negative] * len(prompts))
    positions = torch.tensor([0.0, 4.0, 8.0][:num_keyframes])
    sched.set_timesteps(steps)
    with torch.no_grad():
        for t in sched.timesteps:
            out = pipe.keyframe_unet(x, t, cond, cond_mask, frame_positions=positions)
            if scale != 1:
                out_u = pipe.keyframe_unet(x, t, uncond, uncond_mask, frame_positions=positions)
                out = out_u + scale * (out - out_u)
            x = sched.step(out, t, x, generator=g).prev_sample
    return x


def test_guidance_scale_one_is_the_conditional_prediction(pipe):
    expected = manual_keyframes(pipe, CAPTIONS, scale=1.0)
    got = pipe(CAPTIONS, num_keyframes=3, guidance_scale=1.0, interpolation_passes=0, output_type="latent",
               generator=gen()).frames
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    other_negative = pipe(CAPTIONS, negative_prompt="a blue square", num_keyframes=3, guidance_scale=1.0,
                          interpolation_passes=0, output_type="latent", generator=gen()).frames
    torch.testing.assert_close(other_negative, got, rtol=0, atol=0)


@pytest.mark.parametrize("negative", [None, "a blue square moves right"])
def test_guided_keyframes_match_an_unbatched_oracle_loop(pipe, negative):
    expected = manual_keyframes(pipe, CAPTIONS, scale=4.0, negative=negative)
    got = pipe(CAPTIONS, negative_prompt=negative, num_keyframes=3, guidance_scale=4.0, interpolation_passes=0,
               output_type="latent", generator=gen()).frames
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    unguided = manual_keyframes(pipe, CAPTIONS, scale=1.0)
    assert (got - unguided).abs().max() > 1e-3  # guidance changed something


def test_guidance_batches_cond_and_uncond_in_one_call():
    pipe = make_pipe()
    keyframe_calls, interp_calls = CallRecorder(pipe.keyframe_unet), CallRecorder(pipe.interpolation_unet)
    out = pipe(CAPTIONS, num_keyframes=3, guidance_scale=5.0, interpolation_passes=2,
               interpolation_guidance_scale=1.25, output_type="latent", generator=gen())
    assert len(keyframe_calls.calls) == 3  # one call per step
    for call in keyframe_calls.calls:
        assert call["sample"].shape == (4, 4, 3, 8, 8)  # 2B: cond and uncond together
        text = call["args"][0]
        torch.testing.assert_close(text[2:], pipe.text_encoder.null_embedding(2)[0])  # uncond = null embedding
        torch.testing.assert_close(call["kwargs"]["frame_positions"], torch.tensor([0.0, 4.0, 8.0]))
    assert len(interp_calls.calls) == 2 * 2  # 2 passes x 2 steps
    first, second = interp_calls.calls[0], interp_calls.calls[2]
    assert first["sample"].shape == (4, 20, 2, 8, 8) and second["sample"].shape == (4, 20, 8, 8, 8)
    assert first["kwargs"] == {"frame_skip": 4.0, "perturbation_level": 0}
    assert second["kwargs"] == {"frame_skip": 1.0, "perturbation_level": 0}
    keys = out.keyframes
    sample = first["sample"]
    torch.testing.assert_close(sample[:2, :4], keys[:, :, :-1])  # cond: left keyframes ...
    torch.testing.assert_close(sample[:2, 16:], keys[:, :, 1:])  # ... and right keyframes
    assert sample[2:, :4].abs().max() == 0 and sample[2:, 16:].abs().max() == 0  # uncond: zeroed
    torch.testing.assert_close(sample[:2, 4:16], sample[2:, 4:16])  # same noisy latents


def test_no_guidance_means_one_unbatched_call_per_step():
    pipe = make_pipe()
    keyframe_calls, interp_calls = CallRecorder(pipe.keyframe_unet), CallRecorder(pipe.interpolation_unet)
    pipe(CAPTIONS, num_keyframes=2, guidance_scale=1, interpolation_guidance_scale=1, output_type="latent",
         generator=gen())
    assert [c["sample"].shape[0] for c in keyframe_calls.calls + interp_calls.calls] == [2] * 5


# -- interpolation ---------------------------------------------------------------------------------
def test_interleave_places_frames_between_keyframes():
    keys = torch.arange(3.0).reshape(1, 1, 3, 1, 1) * 10  # keyframes 0, 10, 20
    middle = torch.tensor([[1.0, 11.0], [2.0, 12.0], [3.0, 13.0]]).reshape(1, 3, 2, 1, 1)  # (B, 3 * 1, P, 1, 1)
    out = interleave(keys, middle, 3)
    assert out.flatten().tolist() == [0, 1, 2, 3, 10, 11, 12, 13, 20]


def test_interpolation_keeps_keyframes_exactly(pipe):
    out = pipe("a red circle moves right", num_keyframes=8, interpolation_passes=1, output_type="latent",
               generator=gen())
    assert out.frames.shape == (1, 4, 29, 8, 8)
    torch.testing.assert_close(out.frames[:, :, ::4], out.keyframes, rtol=0, atol=0)
    assert (out.frames[:, :, 1::4] - out.frames[:, :, ::4][:, :, :-1]).abs().max() > 1e-3  # new frames differ


def test_interpolation_pass_matches_an_oracle_loop(pipe):
    keys = torch.randn(2, 4, 3, 8, 8, generator=gen(5))
    sched = DDPMScheduler.from_config(pipe.interpolation_scheduler.config)
    got = interpolate_pass(pipe.interpolation_unet, sched, keys, frame_skip=4, num_inference_steps=3,
                           guidance_scale=1.25, generator=gen(6), progress_bar_config={"disable": True})
    # oracle: separate cond / uncond calls, the paper's form (1 + w) cond - w uncond with w = 0.25
    g = gen(6)
    x = torch.randn(2, 12, 2, 8, 8, generator=g)
    ref = DDPMScheduler.from_config(pipe.interpolation_scheduler.config)
    ref.set_timesteps(3)
    zeros = torch.zeros(2, 4, 2, 8, 8)
    with torch.no_grad():
        for t in ref.timesteps:
            cond = pipe.interpolation_unet(torch.cat([keys[:, :, :2], x, keys[:, :, 1:]], 1), t, frame_skip=4)
            uncond = pipe.interpolation_unet(torch.cat([zeros, x, zeros], 1), t, frame_skip=4)
            x = ref.step(1.25 * cond - 0.25 * uncond, t, x, generator=g).prev_sample
    assert got.shape == (2, 4, 9, 8, 8)
    middle = x.reshape(2, 3, 4, 2, 8, 8)  # (B, n, C, P, h, w): channels are [frame 1, frame 2, frame 3]
    torch.testing.assert_close(got[:, :, 1:4], middle[..., 0, :, :].transpose(1, 2), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[:, :, 5:8], middle[..., 1, :, :].transpose(1, 2), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[:, :, ::4], keys, rtol=0, atol=0)


class _ExactBlendDenoiser(torch.nn.Module):
    """An interpolator whose every call predicts v of a sample whose clean latents are the pairs' blend."""

    def __init__(self, keys, alphas_cumprod):
        super().__init__()
        self.config = SimpleNamespace(frames_per_pair=3)
        self.latent_channels = keys.shape[1]
        self.x0, self.alphas_cumprod, self.seen = pair_blend(keys, 3), alphas_cumprod.double(), []

    def forward(self, sample, t, *, frame_skip, perturbation_level):
        self.seen.append((int(t), sample[:, 4:16].clone()))
        x, a = sample[:, 4:16].double(), self.alphas_cumprod[int(t)]
        x0 = torch.cat([self.x0] * (x.shape[0] // self.x0.shape[0])).double()
        return ((a.sqrt() * x - x0) / (1 - a).sqrt()).float()  # v = (sqrt(ab) x_t - x0) / sqrt(1 - ab)


@pytest.mark.parametrize("scheduler_cls,options", [(DDIMScheduler, {}),
                                                   (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"})])
def test_interpolation_strength_starts_from_the_noised_blend_and_runs_the_last_steps(scheduler_cls, options):
    keys = torch.randn(2, 4, 3, 5, 5, generator=gen(1))  # (B, C, K, h, w)
    sched = scheduler_cls(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                          timestep_spacing="trailing", **options)
    model = _ExactBlendDenoiser(keys, sched.alphas_cumprod)
    out = interpolate_pass(model, sched, keys, frame_skip=4, num_inference_steps=5, guidance_scale=1.5,
                           generator=gen(2), strength=0.8, progress_bar_config={"disable": True})
    assert [t for t, _ in model.seen] == [799, 599, 399, 199]  # trailing 999, 799, ...: the last 4 of 5
    noise = torch.randn(2, 12, 2, 5, 5, generator=gen(2))
    a = sched.alphas_cumprod.double()[799]
    start = (a.sqrt() * pair_blend(keys, 3) + (1 - a).sqrt() * noise).float()  # q(x_799 | blend)
    torch.testing.assert_close(model.seen[0][1][:2], start, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, linear_blend(keys, 3), rtol=1e-4, atol=1e-4)  # exact denoiser: the blend back


def test_pair_blend_is_the_linear_blend_in_the_interpolators_layout():
    keys = torch.arange(3.0).reshape(1, 1, 3, 1, 1) * 4  # keyframes 0, 4, 8
    assert interleave(keys, pair_blend(keys, 3), 3).flatten().tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]


def test_interpolation_sampler_is_a_fresh_thresholded_copy_of_the_pipelines(pipe):
    sampler = pipe.interpolation_sampler()
    assert sampler is not pipe.interpolation_scheduler and type(sampler) is type(pipe.interpolation_scheduler)
    assert sampler.config["thresholding"] is True and sampler.config["clip_sample_range"] == pipe.settings.latent_range
    assert type(pipe.interpolation_sampler("ddim")).__name__ == "DDIMScheduler"


def test_pipeline_interpolation_strength_comes_from_settings_survives_saving_and_can_be_overridden(tmp_path):
    pipe = make_pipe(interpolation_num_inference_steps=5, interpolation_strength=0.6)
    steps = []

    def count(p, i, t, kwargs):
        steps.append((kwargs["stage"], int(t), kwargs["num_steps"]))

    out = pipe("a red circle", num_keyframes=2, output_type="latent", generator=gen(), callback_on_step_end=count)
    assert [t for s, t, _ in steps if s == "interpolation_1"] == [400, 200, 0]  # leading 800, 600, ..., 0: the last 3 of 5
    assert {n for s, _, n in steps if s == "interpolation_1"} == {3}
    torch.testing.assert_close(out.frames[:, :, ::4], out.keyframes, rtol=0, atol=0)
    loaded = FusionFramesPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "pipe"))
    assert loaded.settings.interpolation_strength == 0.6
    steps.clear()
    pipe("a red circle", num_keyframes=2, output_type="latent", generator=gen(), callback_on_step_end=count,
         interpolation_strength=1.0)
    assert len([s for s, _, _ in steps if s == "interpolation_1"]) == 5


@pytest.mark.parametrize("strength,message", [(0.0, r"\(0, 1\]"), (1.5, r"\(0, 1\]"), (True, r"\(0, 1\]"),
                                              (0.05, "keeps no step")])
def test_interpolation_strength_outside_its_range_names_the_value(pipe, strength, message):
    keys = torch.randn(1, 4, 2, 8, 8)
    with pytest.raises(ValueError, match=message):
        interpolate_pass(pipe.interpolation_unet, pipe.interpolation_scheduler, keys, frame_skip=4,
                         num_inference_steps=5, guidance_scale=1.5, generator=gen(0), strength=strength,
                         progress_bar_config={"disable": True})


# -- thresholding, schedulers, callbacks, progress, decoders ------------------------------------------
def test_dynamic_thresholding_is_relative_to_the_latent_range():
    pipe = make_pipe(latent_range=0.05)
    kwargs = dict(num_keyframes=3, interpolation_passes=1, output_type="latent", generator=gen())
    bounded = pipe(CAPTIONS, **kwargs).frames
    assert bounded.abs().max() <= 0.05 + 1e-6  # final x0 thresholded into [-R, R]
    free = pipe(CAPTIONS, dynamic_thresholding=False, **{**kwargs, "generator": gen()}).frames
    assert free.abs().max() > 0.05
    keyframe_sched, interp_sched = make_pipe(latent_range=2.5)._schedulers(None, True)
    for sched in (keyframe_sched, interp_sched):
        c = sched.config
        assert c["thresholding"] and c["clip_sample_range"] == 2.5 and c["dynamic_thresholding_ratio"] == 0.98
        assert c["sample_max_value"] == pytest.approx(3.75)


def test_scheduler_choice_does_not_touch_the_pipeline_schedulers(pipe):
    before = (type(pipe.scheduler), pipe.scheduler.config, pipe.scheduler.num_inference_steps)
    timesteps = []
    pipe(CAPTIONS, num_keyframes=2, scheduler="ddim", interpolation_passes=0, output_type="latent", generator=gen(),
         callback_on_step_end=lambda p, i, t, kw: timesteps.append(int(t)))
    assert (type(pipe.scheduler), pipe.scheduler.config, pipe.scheduler.num_inference_steps) == before
    assert timesteps == [666, 333, 0]
    ddim = make_pipe()
    ddim.scheduler = DDIMScheduler.from_config(ddim.scheduler.config)
    a = ddim(CAPTIONS, num_keyframes=2, interpolation_passes=0, output_type="latent", generator=gen()).frames
    b = ddim(CAPTIONS, num_keyframes=2, interpolation_passes=0, output_type="latent", generator=gen(),
             scheduler="ddim").frames
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_callback_sees_every_step_of_every_stage_and_can_replace_latents(pipe):
    seen = []

    def callback(p, step_index, timestep, kwargs):
        assert p is pipe
        seen.append((kwargs["stage"], step_index, kwargs["latents"].shape))
        if kwargs["stage"] == "keyframes" and step_index == kwargs["num_steps"] - 1:
            return {"latents": torch.zeros_like(kwargs["latents"])}
        return {}

    out = pipe(CAPTIONS, num_keyframes=2, interpolation_passes=2, output_type="latent", generator=gen(),
               callback_on_step_end=callback)
    assert [(s, i) for s, i, _ in seen] == [("keyframes", 0), ("keyframes", 1), ("keyframes", 2),
                                            ("interpolation_1", 0), ("interpolation_1", 1),
                                            ("interpolation_2", 0), ("interpolation_2", 1)]
    assert seen[3][2] == (2, 12, 1, 8, 8) and seen[5][2] == (2, 12, 4, 8, 8)
    assert out.keyframes.abs().max() == 0
    with pytest.raises(ValueError, match="shape"):
        pipe(CAPTIONS, num_keyframes=2, interpolation_passes=0, generator=gen(),
             callback_on_step_end=lambda p, i, t, kw: {"latents": torch.zeros(1)})


def test_progress_bars_can_be_turned_off(capsys):
    pipe = make_pipe()
    pipe.set_progress_bar_config()
    pipe("a red circle", num_keyframes=2, interpolation_passes=1, output_type="latent", generator=gen())
    assert "keyframes" in capsys.readouterr().err
    pipe("a red circle", num_keyframes=2, interpolation_passes=1, output_type="latent", generator=gen(),
         progress=False)
    pipe.set_progress_bar_config(disable=True)
    pipe("a red circle", num_keyframes=2, interpolation_passes=1, output_type="latent", generator=gen())
    assert capsys.readouterr().err == ""


def test_video_decoder_is_used_when_present():
    pipe = make_pipe(video_decoder=True)
    used = []
    for name in ("autoencoder", "video_decoder"):
        model = getattr(pipe, name)
        original = model.decode
        model.decode = lambda z, _o=original, _n=name, **kw: used.append((_n, z.shape[2], kw)) or _o(z, **kw)
    out = pipe(CAPTIONS, num_keyframes=3, interpolation_passes=1, generator=gen())
    # one decode: the keyframes are the video's own frames at keyframe_indices, not decoded again alone
    assert used == [("video_decoder", 9, {"chunk_size": 8})]
    np.testing.assert_array_equal(out.keyframes, out.frames[:, out.keyframe_indices])
    used.clear()
    pipe(CAPTIONS, num_keyframes=3, interpolation_passes=1, generator=gen(), decoder="image", decode_chunk_size=4)
    assert used == [("autoencoder", 9, {"chunk_size": 4})]


def test_autocast_only_on_cuda():
    from minifusion.pipelines.denoising import autocast_context

    with autocast_context(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"prompt": 3}, "prompts must be a str"),
    ({"prompt": ["a red circle", None]}, "prompts must be a str"),
    ({"prompt": []}, "empty list"),
    ({"negative_prompt": 5}, "negative_prompt must be a str"),
    ({"negative_prompt": ["a", "b", "c"]}, "negative_prompt has 3 entries"),
    ({"num_keyframes": 1}, r"num_keyframes 1 is not allowed; it must be an integer >= 2"),
    ({"num_keyframes": 2.0}, "num_keyframes"),
    ({"interpolation_passes": 3}, "interpolation_passes 3 is not one of 0, 1, 2"),
    ({"interpolation_passes": True}, "interpolation_passes"),
    ({"num_inference_steps": 0}, "num_inference_steps 0 is not allowed; it must be an integer >= 1"),
    ({"interpolation_num_inference_steps": -2}, "interpolation_num_inference_steps"),
    ({"guidance_scale": float("nan")}, "guidance_scale nan is not allowed; it must be a finite number >= 0"),
    ({"guidance_scale": -1.0}, r"guidance_scale -1.0 is not allowed; it must be a finite number >= 0"),
    ({"interpolation_guidance_scale": float("nan")}, "interpolation_guidance_scale"),
    ({"interpolation_guidance_scale": -0.5}, "interpolation_guidance_scale"),
    ({"interpolation_strength": 1.5}, r"interpolation_strength 1.5 is not allowed; it must be a number in \(0, 1\]"),
    ({"output_type": "gif"}, "output_type 'gif' is not one of 'np', 'pt', 'pil', 'latent'"),
    ({"scheduler": "heun"}, "scheduler 'heun' is not one of 'dpm', 'dpm-sde', 'euler', 'ddim', 'ddpm'"),
    ({"decoder": "video"}, "needs a video_decoder"),
    ({"generator": 0}, "generator must be a torch.Generator"),
])
def test_bad_call_arguments(pipe, kwargs, match):
    args = {"prompt": CAPTIONS, "num_keyframes": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        pipe(**args)


def test_unknown_words_warn_and_still_run(pipe):
    with pytest.warns(UserWarning, match=r"\['purple', 'zigzags'\]") as record:
        out = pipe("a purple circle zigzags", num_keyframes=2, interpolation_passes=0, generator=gen())
    assert out.frames.shape == (1, 2, 32, 32, 3)
    assert Path(record[0].filename).resolve() == Path(__file__).resolve()  # points at the caller


def test_keyframes_only_pipeline_needs_zero_passes(pipe):
    keyframes_only = FusionFramesPipeline(autoencoder=pipe.autoencoder, text_encoder=pipe.text_encoder,
                                          keyframe_unet=pipe.keyframe_unet, scheduler=pipe.scheduler,
                                          settings=pipe.settings)
    with pytest.raises(ValueError, match="needs an interpolation_unet"):
        keyframes_only(CAPTIONS, num_keyframes=2)
    assert keyframes_only(CAPTIONS, num_keyframes=2, interpolation_passes=0, progress=False).frames.shape[1] == 2


def test_mismatched_components_are_refused(pipe):
    v_scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    with pytest.raises(ValueError, match="'v_prediction' outputs but keyframe_unet was trained for 'epsilon'"):
        FusionFramesPipeline(autoencoder=pipe.autoencoder, text_encoder=pipe.text_encoder,
                             keyframe_unet=pipe.keyframe_unet, scheduler=v_scheduler, settings=pipe.settings)
    with pytest.raises(ValueError, match="latent_range nan is not allowed; it must be a finite number > 0"):
        PipelineSettings(latent_range=float("nan"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, pipe) -> Path:
    return pipe.save_pretrained(tmp_path_factory.mktemp("saved") / "pipe")


def _copy(saved: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(saved, tmp_path / "pipe"))


def test_missing_folder_and_index(saved, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        FusionFramesPipeline.from_pretrained(tmp_path / "nowhere")
    folder = _copy(saved, tmp_path)
    (folder / "model_index.json").unlink()
    with pytest.raises(ValueError, match="missing model_index.json"):
        FusionFramesPipeline.from_pretrained(folder)


@pytest.mark.parametrize("damage, match", [
    (lambda f: (f / "model_index.json").write_text("{not json"), r"model_index.json.*is not valid JSON"),
    (lambda f: (f / "model_index.json").write_text('{"components": {"autoencoder": "Autoencoder"}}'),
     r"model_index.json.*incomplete"),
    (lambda f: _edit_index(f, lambda d: d["settings"].pop("latent_range")), r"model_index.json.*latent_range"),
    (lambda f: _edit_index(f, lambda d: d["components"].update(keyframe_unet="UNet")), "'UNet'"),
    (lambda f: _rmtree(f / "keyframe_unet"), r"keyframe_unet' is missing"),
    (lambda f: (f / "keyframe_unet" / "model.safetensors").unlink(), "missing model.safetensors"),
    (lambda f: (f / "interpolation_unet" / "model.safetensors").write_bytes(b"garbage"),
     r"interpolation_unet/model.safetensors.*corrupt"),
    (lambda f: (f / "text_encoder" / "config.json").write_text("[1, 2"), r"text_encoder/config.json.*not valid JSON"),
    (lambda f: (f / "scheduler" / "scheduler_config.json").unlink(), r"missing scheduler_config.json"),
    (lambda f: (f / "interpolation_scheduler" / "scheduler_config.json").write_text("{oops"),
     r"interpolation_scheduler/scheduler_config.json.*is not valid JSON"),
    (lambda f: (f / "scheduler" / "scheduler_config.json").write_text('{"beta_schedule": "zigzag"}'),
     r"scheduler/scheduler_config.json.*corrupt.*zigzag"),
])
def test_damaged_checkpoint_folder_names_the_file(saved, tmp_path, damage, match):
    folder = _copy(saved, tmp_path)
    damage(folder)
    with pytest.raises(ValueError, match=match):
        FusionFramesPipeline.from_pretrained(folder)


def _edit_index(folder: Path, change) -> None:
    data = json.loads((folder / "model_index.json").read_text())
    change(data)
    (folder / "model_index.json").write_text(json.dumps(data))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


# -- pretrained() and the package namespace ---------------------------------------------------------
def test_pretrained_finds_the_folder_from_any_working_directory(saved, tmp_path, monkeypatch):
    assert model_index_module.CHECKPOINTS_DIR == Path(minifusion.__file__).resolve().parents[1] / "data_samples" / \
        "checkpoints"
    monkeypatch.setattr(model_index_module, "CHECKPOINTS_DIR", saved.parent)
    monkeypatch.chdir(tmp_path)
    assert minifusion.pretrained("pipe") == saved
    with pytest.raises(ValueError, match=r"python -m minifusion train .*--out data_samples/checkpoints/moving-shapes"):
        pretrained("moving-shapes")
    with pytest.raises(ValueError, match="checkpoint folder name"):
        pretrained("../pipe")


def test_import_minifusion_stays_cheap_and_exposes_the_pipeline():
    code = ("import sys, minifusion; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert minifusion.FusionFramesPipeline.__name__ == 'FusionFramesPipeline'; "
            "assert callable(minifusion.pretrained)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_half_precision_files_are_half_the_size_and_load_as_float32(tmp_path):
    pipe = make_pipe()
    full, half = pipe.save_pretrained(tmp_path / "f32"), pipe.save_pretrained(tmp_path / "f16", dtype=torch.float16)
    size = lambda folder: sum(p.stat().st_size for p in folder.rglob("*.safetensors"))  # noqa: E731
    assert 0.45 < size(half) / size(full) < 0.55
    loaded = FusionFramesPipeline.from_pretrained(half)
    for name, model in loaded.models.items():
        original = dict(pipe.models[name].named_parameters())
        for key, p in model.named_parameters():
            assert p.dtype == torch.float32
            torch.testing.assert_close(p, original[key].half().float())  # exactly the fp16 rounding
    with pytest.raises(ValueError, match="dtype must be a floating-point torch.dtype"):
        pipe.save_pretrained(tmp_path / "bad", dtype=torch.int8)


def test_sampling_scheduler_config_keeps_the_trained_schedule_and_converts_back():
    from minifusion.diffusion import DPMSolverMultistepScheduler
    from minifusion.pipelines.model_index import sampling_scheduler_config

    trained = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    assert sampling_scheduler_config(trained, timestep_spacing="trailing")["timestep_spacing"] == "trailing"
    with pytest.raises(ValueError, match="timestep_spacing"):
        sampling_scheduler_config(trained, timestep_spacing="uniform")
    ddim = sampling_scheduler_config(trained, "DDIMScheduler", timestep_spacing="trailing")
    assert ddim["_class_name"] == "DDIMScheduler" and "algorithm_type" not in ddim  # no DPM defaults on DDIM
    with pytest.raises(ValueError, match="sampler_class 'HeunScheduler' is not one of"):
        sampling_scheduler_config(trained, "HeunScheduler")
    config = sampling_scheduler_config(trained)
    assert config["_class_name"] == "DPMSolverMultistepScheduler"
    assert config["algorithm_type"] == "sde-dpmsolver++" and config["solver_order"] == 2
    assert config["prediction_type"] == "v_prediction" and config["beta_schedule"] == "squaredcos_cap_v2"
    sampler = DPMSolverMultistepScheduler.from_config({k: v for k, v in config.items() if k != "_class_name"})
    torch.testing.assert_close(sampler.alphas_cumprod, trained.alphas_cumprod, rtol=0, atol=0)
    back = DDPMScheduler.from_config(sampler.config)  # what a training stage reads back
    assert back.config == trained.config


def test_shipped_checkpoint_samples_with_the_measured_defaults():
    from minifusion.training.recipes.interpolation import INTERPOLATION_PIPELINE_SETTINGS, INTERPOLATION_SAMPLERS

    index = json.loads((pretrained() / "model_index.json").read_text())
    assert index["components"]["scheduler"] == "DPMSolverMultistepScheduler"
    assert index["settings"]["num_inference_steps"] == 15
    assert index["settings"]["interpolation_num_inference_steps"] == 5
    config = json.loads((pretrained() / "scheduler" / "scheduler_config.json").read_text())
    assert config["algorithm_type"] == "sde-dpmsolver++" and config["timestep_spacing"] == "leading"
    # interpolation: what the recipe writes (docs/interpolation.md section 4): DDIM, trailing spacing, the
    # last 4 of 5 steps from the keyframes' blend noised to t = 799, context guidance 1.5
    sampler_class, options = INTERPOLATION_SAMPLERS["interpolation_unet"]
    assert index["components"]["interpolation_scheduler"] == sampler_class == "DDIMScheduler"
    config = json.loads((pretrained() / "interpolation_scheduler" / "scheduler_config.json").read_text())
    assert config["timestep_spacing"] == options["timestep_spacing"] == "trailing"
    assert {k: index["settings"][k] for k in INTERPOLATION_PIPELINE_SETTINGS} == INTERPOLATION_PIPELINE_SETTINGS
