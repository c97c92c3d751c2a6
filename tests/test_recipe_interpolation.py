"""Interpolation and MFI stages: windows, the pipeline's input layout, per-sample randomness, v loss, outputs,
exact resume."""

from __future__ import annotations

import json
import math
import shutil
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from minifusion.data import MovingShapes
from minifusion.data.interpolation_windows import InterpolationClips, window_length
from minifusion.diffusion import DDIMScheduler, DDPMScheduler
from minifusion.eval.interpolation_eval import evaluate_interpolation, evaluation_clips, linear_blend
from minifusion.models.interpolation_unet import InterpolationUNet
from minifusion.models.masked_interpolation_unet import MaskedInterpolationUNet
from minifusion.pipelines.interpolation import interleave, interpolate_pass
from minifusion.pipelines.mfi import masked_inputs, mfi_interpolate_pass
from minifusion.training import per_sample_bernoulli, per_sample_noise, per_sample_randint, sample_generators
from minifusion.training.objectives.interpolation import (
    InterpolationTask,
    build_interpolation_input,
    draw_sample_randomness,
    split_clip_latents,
)
from minifusion.training.objectives.mfi import MFITask
from minifusion.training.recipes import STAGES, load_recipe, psnr, train_autoencoder, train_t2i, train_text_encoder
from minifusion.training.recipes.interpolation import InterpolationRecipe, task_from_recipe, train_interpolation
from minifusion.training.recipes.mfi import MFIRecipe, train_mfi

TRAINING = {"steps": 3, "batch_size": 4, "checkpoint_every": 2, "log_every": 1, "device": "cpu"}
TINY_AE = {"model": {"block_out_channels": [8, 16], "norm_groups": 4, "sample_size": 16},
           "training": TRAINING, "data": {"num_clips": 6, "num_frames": 2, "frame_skip": 1, "size": 16},
           "val_frames": 4, "scaling_frames": 8}
TINY_TE = {"text_encoder": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                            "intermediate_size": 32},
           "training": TRAINING, "data": {"num_captions": 64}, "eval_captions": 16}
TINY_T2I = {"unet": {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_groups": 4, "attention_head_dim": 8,
                     "cross_attention_dim": 16},
            "training": TRAINING, "data": {"num_clips": 8, "num_frames": 2, "frame_skip": 1, "size": 16},
            "sample_prompts": ["a red circle moves right"], "samples_per_prompt": 1, "num_inference_steps": 2}
# K = 3 keyframes 4 apart -> windows of 9 frames (pass 1: whole frames, pass 2: quarter frames)
TINY_INTERP = {"training": {**TRAINING, "batch_size": 2, "lr": 1e-2, "warmup_steps": 0, "plot_loss": False},
               "data": {"num_clips": 4, "num_frames": 3, "size": 16}, "fine_fraction": 0.5, "encode_batch_size": 4,
               "eval_clips": 2, "eval_num_inference_steps": 2}
V_SCHEDULER = dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    train_text_encoder(out, config=TINY_TE, progress=False)
    train_autoencoder(out, config=TINY_AE, progress=False)
    train_t2i(out, config=TINY_T2I, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(base):
    """The base folder after the interpolation stage, then the mfi stage (model_index.json before and after mfi)."""
    train_interpolation(base, config=TINY_INTERP, progress=False)
    index = (base / "model_index.json").read_bytes()
    train_mfi(base, config={**TINY_INTERP, "eval_clips": 1}, progress=False)
    return SimpleNamespace(out=base, index_before_mfi=index)


def _copy_base(base, dest):
    for name in ("autoencoder", "text_encoder", "unet", "scheduler"):
        shutil.copytree(base / name, dest / name)
    shutil.copytree(base / "runs" / "cache", dest / "runs" / "cache")
    return dest


# -- windows ----------------------------------------------------------------------------------------
def test_window_length():
    assert window_length(8, 3) == 29 and window_length(3, 3) == 9 and window_length(2, 1) == 3


def test_windows_are_whole_frames_in_pass_1_and_quarter_frames_in_pass_2():
    clips = MovingShapes("train", num_frames=8, frame_skip=4, size=16, length=6)
    coarse = InterpolationClips(clips, frame_skip=4, num_keyframes=8, seed=0)
    fine = InterpolationClips(clips, frame_skip=1, num_keyframes=8, seed=0)
    assert len(coarse) == 6 and coarse.num_frames == 29
    for i in range(6):
        start = float(clips.clip_params(i).times[0])
        assert coarse.times(i).tolist() == [start + j for j in range(29)]  # the whole clip, every source frame
        t = fine.times(i)
        offset = t[0] - start
        assert offset == int(offset) and 0 <= offset <= 28 - 7  # a whole start frame, window inside the clip
        assert torch.allclose(torch.as_tensor(t - t[0]), torch.arange(29, dtype=torch.float64) / 4)  # quarter frames
        assert (t[::4] == t[0] + torch.arange(8).numpy()).all()  # its keyframes are 1 source frame apart
        assert t.tolist() == InterpolationClips(clips, frame_skip=1, num_keyframes=8, seed=0).times(i).tolist()
    starts = {fine.times(i)[0] for i in range(6)}
    assert len(starts) > 1  # drawn per clip
    item = fine[2]
    assert item["video"].shape == (3, 29, 16, 16) and item["attributes"]["start"] == fine.times(2)[0]
    assert torch.equal(item["video"], clips.render(2, fine.times(2)))
    assert item["caption"] == clips[2]["caption"]


def test_bad_windows():
    clips = MovingShapes("train", num_frames=3, frame_skip=4, size=16, length=2)
    with pytest.raises(ValueError, match="spans 28 source frames; the clips last only 8"):
        InterpolationClips(clips, frame_skip=4, num_keyframes=8).times(0)

    class Frames(torch.utils.data.Dataset):  # whole frames only, like a ClipFolder
        num_frames = 9

        def __len__(self):
            return 1

    with pytest.raises(ValueError, match="frame_skip 1 must be 4"):
        InterpolationClips(Frames(), frame_skip=1, num_keyframes=3)


# -- the layout of interpolate_pass -----------------------------------------------------------------
def test_split_clip_latents_picks_keyframes_and_middles_in_channel_order():
    b, c, k, n = 2, 4, 3, 3
    f = window_length(k, n)
    frame = torch.arange(f, dtype=torch.float32)[None, None, :, None, None]
    channel = torch.arange(c, dtype=torch.float32)[None, :, None, None, None]
    clip = (100 * frame + channel + torch.zeros(b, c, f, 2, 2))  # value = 100 * frame + channel
    keyframes, middle = split_clip_latents(clip, n)
    assert keyframes.shape == (b, c, k, 2, 2) and middle.shape == (b, n * c, k - 1, 2, 2)
    assert torch.equal(keyframes, clip[:, :, [0, 4, 8]])
    for p in range(k - 1):
        for j in range(n):
            for ch in range(c):
                assert (middle[:, j * c + ch, p] == 100 * (4 * p + 1 + j) + ch).all()
    assert torch.equal(interleave(keyframes, middle, n), clip)  # the inverse of the pipeline's interleave
    with pytest.raises(ValueError, match=r"\(2, 4, 8, 2, 2\)"):
        split_clip_latents(clip[:, :, :8], n)


class _FakeInterpolator(nn.Module):
    """Stands in for an InterpolationUNet: records its inputs, predicts 0."""

    def __init__(self, frames_per_pair=3, channels=4):
        super().__init__()
        self.config = SimpleNamespace(frames_per_pair=frames_per_pair)
        self.latent_channels = channels
        self.calls = []

    def forward(self, sample, t, *, frame_skip, perturbation_level):
        self.calls.append({"sample": sample.clone(), "t": t, "frame_skip": frame_skip,
                           "perturbation_level": perturbation_level})
        b, _, p, h, w = sample.shape
        return torch.zeros(b, self.config.frames_per_pair * self.latent_channels, p, h, w)


def test_training_input_is_laid_out_like_interpolate_pass():
    latents = torch.randn(2, 4, 3, 2, 2)
    fake = _FakeInterpolator()
    scheduler = DDIMScheduler(**V_SCHEDULER)
    out = interpolate_pass(fake, scheduler, latents, frame_skip=4.0, num_inference_steps=1, guidance_scale=1.25,
                           generator=torch.Generator().manual_seed(0), progress_bar_config={"disable": True})
    sample = fake.calls[0]["sample"]  # (2B, 20, P, h, w): cond rows, then keyframes zeroed
    assert sample.shape == (4, 20, 2, 2, 2)
    assert torch.equal(sample[:2], build_interpolation_input(latents, sample[:2, 4:16]))
    assert torch.equal(sample[2:], build_interpolation_input(torch.zeros_like(latents), sample[2:, 4:16]))
    assert torch.equal(sample[:2, 4:16], sample[2:, 4:16])
    keyframes, _ = split_clip_latents(out, 3)
    assert out.shape == (2, 4, 9, 2, 2) and torch.equal(keyframes, latents)  # given frames kept exactly


def test_draw_sample_randomness_order_and_determinism():
    indices = [5, 9, 2]
    kwargs = dict(clip_shape=(4, 9, 2, 2), num_keyframes=3, fine_fraction=0.5, num_train_timesteps=1000,
                  max_perturbation=250, keyframe_dropout=0.1, device=torch.device("cpu"))
    r = draw_sample_randomness(sample_generators(7, indices), **kwargs)
    gens = sample_generators(7, indices)  # pass-2 choice, t, t_p, dropout, clip noise, keyframe noise
    expected = {"fine": per_sample_bernoulli(gens, 0.5), "t": per_sample_randint(gens, 0, 1000),
                "t_p": per_sample_randint(gens, 0, 251), "drop": per_sample_bernoulli(gens, 0.1),
                "noise": per_sample_noise(gens, (4, 9, 2, 2)), "keyframe_noise": per_sample_noise(gens, (4, 3, 2, 2))}
    assert set(r) == set(expected)
    assert all(torch.equal(r[k], expected[k]) for k in expected)
    # a sample's draws depend on its own index only, not on its batch
    alone = draw_sample_randomness(sample_generators(7, [9]), **kwargs)
    assert all(torch.equal(alone[k][0], r[k][1]) for k in r)


def test_perturbation_levels_and_timesteps_cover_their_ranges():
    indices = list(range(300))
    r = draw_sample_randomness(sample_generators(0, indices), clip_shape=(1, 1, 1, 1), num_keyframes=1,
                               fine_fraction=0.5, num_train_timesteps=1000, max_perturbation=5, keyframe_dropout=0.1,
                               device=torch.device("cpu"))
    assert set(r["t_p"].tolist()) == set(range(6))  # 0..max_perturbation, both ends included
    assert 0 <= r["t"].min() and r["t"].max() <= 999
    assert 0.35 < r["fine"].float().mean() < 0.65 and 0.03 < r["drop"].float().mean() < 0.2


def _batch(b=8, f=9):
    g = torch.Generator().manual_seed(1)
    return {"coarse": torch.randn(b, 4, f, 2, 2, generator=g), "fine": torch.randn(b, 4, f, 2, 2, generator=g)}


def test_prepare_picks_the_pass_perturbs_and_drops_keyframes():
    scheduler = DDPMScheduler(**V_SCHEDULER)
    task = InterpolationTask(scheduler, frame_skip=4, fine_fraction=0.5, max_perturbation=250, keyframe_dropout=0.5)
    batch, indices = _batch(), list(range(8))
    r = task.prepare(batch, sample_generators(3, indices))
    assert 0 < r["fine"].sum() < 8 and 0 < r["drop"].sum() < 8  # both kinds of both
    for i in range(8):
        source = batch["fine"] if r["fine"][i] else batch["coarse"]
        assert torch.equal(r["clip"][i], source[i])
        assert r["frame_skip"][i] == (1.0 if r["fine"][i] else 4.0)
        if r["drop"][i]:
            assert (r["keyframes"][i] == 0).all()  # keyframe dropout: zeroed channels (the guidance's uncond)
        else:
            t_p = r["t_p"][i : i + 1]
            perturbed = scheduler.add_noise(source[i : i + 1, :, ::4], r["keyframe_noise"][i : i + 1], t_p)
            assert torch.allclose(r["keyframes"][i], perturbed[0]) and (r["keyframes"][i] != 0).all()
    assert 0 <= r["t_p"].min() and r["t_p"].max() <= 250
    no_fine = task.prepare({"coarse": batch["coarse"]}, sample_generators(3, indices))
    assert not no_fine["fine"].any() and torch.equal(no_fine["clip"], batch["coarse"])
    assert torch.equal(no_fine["t"], r["t"])  # the same draws, in the same order


def test_interpolation_loss_targets_v_with_the_pipeline_layout():
    scheduler = DDPMScheduler(**V_SCHEDULER)
    task = InterpolationTask(scheduler, frame_skip=4, keyframe_dropout=0.3)
    batch, indices = _batch(), list(range(8))
    fake = _FakeInterpolator()
    loss = task.loss(fake, batch, indices, sample_generators(0, indices))
    r = task.prepare(batch, sample_generators(0, indices))
    _, middle = split_clip_latents(r["clip"], 3)  # (B, 12, P, h, w)
    _, noise = split_clip_latents(r["noise"], 3)
    call = fake.calls[0]
    x_t = scheduler.add_noise(middle, noise, r["t"])
    assert torch.allclose(call["sample"], build_interpolation_input(r["keyframes"], x_t))
    assert torch.equal(call["t"], r["t"]) and torch.equal(call["perturbation_level"], r["t_p"])
    assert torch.equal(call["frame_skip"], r["frame_skip"])
    v = scheduler.get_velocity(middle, noise, r["t"])
    assert loss.item() == pytest.approx(v.pow(2).mean().item(), rel=1e-5)  # zero prediction: mean v^2
    assert abs(loss.item() - noise.pow(2).mean().item()) > 1e-3  # not the epsilon target


def test_linear_blend_formula():
    keyframes = torch.randn(2, 3, 4, 5, 5)
    out = linear_blend(keyframes, 3)
    assert out.shape == (2, 3, 13, 5, 5)
    for p in range(3):
        assert torch.equal(out[:, :, 4 * p], keyframes[:, :, p])
        for j in (1, 2, 3):
            a = j / 4
            assert torch.allclose(out[:, :, 4 * p + j], (1 - a) * keyframes[:, :, p] + a * keyframes[:, :, p + 1])
    assert torch.equal(out[:, :, 12], keyframes[:, :, 3])


class _IdentityAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        return x

    def decode(self, x):
        return x


def test_evaluation_compares_the_middle_frames_with_the_rendered_truth():
    calls = []

    def blend(latents, *, frame_skip, generator):
        calls.append(frame_skip)
        return linear_blend(latents, 3)

    kwargs = dict(num_clips=2, num_keyframes=3, frame_skip=4, size=16, seed=0)
    res = evaluate_interpolation(None, None, _IdentityAutoencoder(), interpolate_fn=blend, return_frames=True, **kwargs)
    assert calls == [4.0, 1.0]
    for key, skip in (("pass1", 4.0), ("pass2", 1.0)):
        r = res[key]
        assert r["frame_skip"] == skip and r["autoencoder_psnr_db"] == math.inf
        assert r["psnr_db"] == pytest.approx(r["linear_blend_psnr_db"])  # the blend "model" scores as the blend
        assert r["latent_mse"] == pytest.approx(r["latent_blend_latent_mse"]) and r["latent_mse"] > 0
        assert 15 < r["psnr_db"] < 80
    # the truth is the rendered window; black middle frames score as they should (keyframes excluded)
    clips = evaluation_clips(split="heldout", num_clips=2, num_keyframes=3, frame_skip=4, size=16, seed=0)
    windows = InterpolationClips(clips, frame_skip=1, num_keyframes=3, seed=0)
    truth = torch.stack([windows[i]["video"] for i in range(2)])
    assert torch.equal(res["pass2"]["frames"]["truth"], truth)
    # with an identity autoencoder the latent blend decodes to the pixel blend, which this "model" is
    frames = res["pass1"]["frames"]
    torch.testing.assert_close(frames["latent_blend"], frames["model"].clamp(-1, 1))

    def black(latents, *, frame_skip, generator):
        return interleave(latents, -torch.ones(2, 9, 2, 16, 16), 3)  # 3 black RGB frames per pair

    middle = torch.ones(9, dtype=torch.bool)
    middle[::4] = False
    res = evaluate_interpolation(None, None, _IdentityAutoencoder(), interpolate_fn=black, **kwargs)
    assert res["pass2"]["psnr_db"] == pytest.approx(psnr(-torch.ones_like(truth[:, :, middle]), truth[:, :, middle]))
    # with the identity "autoencoder" the latent error is the pixel error (no clamping: frames stay in [-1, 1])
    assert res["pass2"]["latent_mse"] == pytest.approx((truth[:, :, middle] + 1).pow(2).mean().item(), rel=1e-5)


# -- the stage --------------------------------------------------------------------------------------
def test_interpolation_stage_writes_its_parts_and_psnr(trained):
    out = trained.out
    model = InterpolationUNet.from_pretrained(out / "interpolation_unet")
    assert model.config.frames_per_pair == 3 and model.config.in_channels == 20 and model.config.out_channels == 12
    assert model.config.prediction_type == "v_prediction"
    sched = json.loads((out / "interpolation_scheduler" / "scheduler_config.json").read_text())
    assert sched["_class_name"] == "DDIMScheduler" and sched["prediction_type"] == "v_prediction"
    assert sched["beta_schedule"] == "squaredcos_cap_v2"
    # trailing: 5 steps from t = 999, not from t = 800 where 31% of the signal is assumed present; the
    # pipeline runs the last 4 of them from the keyframes' blend noised to t = 799 (strength 0.8)
    assert sched["timestep_spacing"] == "trailing"
    sampler = DDIMScheduler.from_config({k: v for k, v in sched.items() if k != "_class_name"})
    sampler.set_timesteps(5)
    assert sampler.timesteps.tolist() == [999, 799, 599, 399, 199]
    index = json.loads(trained.index_before_mfi)
    assert index["components"]["interpolation_unet"] == "InterpolationUNet"
    assert index["components"]["interpolation_scheduler"] == "DDIMScheduler"
    assert index["settings"]["latent_range"] > 0 and index["settings"]["keyframe_frame_skip"] == 4
    assert index["settings"]["interpolation_strength"] == 0.8 and index["settings"]["interpolation_guidance_scale"] == 1.5
    metrics = json.loads((out / "runs" / "interpolation" / "metrics.json").read_text())
    assert metrics["step"] == 3 and metrics["passes_trained"] == 2 and metrics["train_clips"] == 4
    ev = metrics["eval"]
    assert ev["model"] == "InterpolationUNet" and ev["num_clips"] == 2
    for key, skip in (("pass1", 4.0), ("pass2", 1.0)):
        assert ev[key]["frame_skip"] == skip
        for name in ("psnr_db", "linear_blend_psnr_db", "autoencoder_psnr_db"):
            assert math.isfinite(ev[key][name]) and ev[key][name] > 0
    assert (out / "runs" / "interpolation" / "interpolation.png").is_file()


def test_mfi_stage_writes_mfi_unet_and_leaves_the_model_index(trained):
    out = trained.out
    model = MaskedInterpolationUNet.from_pretrained(out / "mfi_unet")
    assert model.config.num_frames == 9 and model.config.temporal == "conv1d_attn1d_blocks"
    sched = json.loads((out / "mfi_scheduler" / "scheduler_config.json").read_text())
    assert sched["prediction_type"] == "v_prediction" and sched["timestep_spacing"] == "trailing"
    assert sched["_class_name"] == "DPMSolverMultistepScheduler"  # MFI samples from pure noise (no blend start)
    assert (out / "model_index.json").read_bytes() == trained.index_before_mfi
    metrics = json.loads((out / "runs" / "mfi" / "metrics.json").read_text())
    assert metrics["stage"] == "mfi" and metrics["step"] == 3 and metrics["passes_trained"] == 2
    assert metrics["eval"]["model"] == "MaskedInterpolationUNet"
    assert math.isfinite(metrics["eval"]["pass2"]["psnr_db"])
    assert STAGES["mfi"].recipe_class is MFIRecipe and STAGES["interpolation"].recipe_class is InterpolationRecipe


def test_resume_continues_exactly_and_keeps_earlier_settings(base, trained, tmp_path):
    from minifusion.pipelines import write_model_index

    out = _copy_base(base, tmp_path / "split")
    write_model_index(out, latent_range=1.25, keyframe_frame_skip=4)  # as if the keyframes stage ran first
    config = {**TINY_INTERP, "eval_clips": 0}  # the evaluation does not touch the weights
    train_interpolation(out, config=config, steps=2, progress=False)
    plain = InterpolationUNet.from_pretrained(base / "runs" / "interpolation" / "model").state_dict()
    step_2 = InterpolationUNet.from_pretrained(out / "interpolation_unet").state_dict()
    assert max((plain[k] - step_2[k]).abs().max().item() for k in plain) > 1e-4  # step 3 matters
    with pytest.raises(ValueError, match="already holds a training run"):
        train_interpolation(out, config=config, steps=3, progress=False)
    train_interpolation(out, steps=3, resume=True, progress=False)
    split = InterpolationUNet.from_pretrained(out / "runs" / "interpolation" / "model").state_dict()
    assert all(torch.equal(plain[k], split[k]) for k in plain)
    index = json.loads((out / "model_index.json").read_text())
    assert index["settings"]["latent_range"] == 1.25 and "interpolation_unet" in index["components"]


def _clip_folder(root, shift=0):
    """Two 9-frame GIF clips with captions: a bright square sliding right (``shift`` moves it down)."""
    from minifusion.viz import save_gif

    root.mkdir()
    for k, name in enumerate(("a.gif", "b.gif")):
        video = -torch.ones(3, 9, 16, 16)
        for f in range(9):
            video[:, f, 4 + shift : 9 + shift, f : f + 5] = 0.8 - 0.6 * k
        save_gif(video, root / name)
    (root / "captions.txt").write_text("a.gif\ta square slides\nb.gif\ta dim square slides\n")
    return root


def test_a_clip_folder_trains_pass_1_on_consecutive_frames(base, tmp_path):
    from minifusion.data import ClipFolder

    first, second = _clip_folder(tmp_path / "one"), _clip_folder(tmp_path / "two", shift=3)
    windows = [InterpolationClips(ClipFolder(root, num_frames=9, size=16), frame_skip=4, num_keyframes=3)
               for root in (first, second)]
    assert torch.equal(windows[0][1]["video"], ClipFolder(first, num_frames=9, size=16)[1]["video"])
    # another folder of the same shape must not reuse the first one's cached latents
    assert windows[0].fingerprint_fields() != windows[1].fingerprint_fields()
    out = _copy_base(base, tmp_path / "out")
    train_interpolation(out, config={**TINY_INTERP, "training": {**TINY_INTERP["training"], "steps": 1}},
                        data_dir=first, progress=False)
    metrics = json.loads((out / "runs" / "interpolation" / "metrics.json").read_text())
    assert metrics["passes_trained"] == 1 and metrics["train_clips"] == 2
    assert metrics["eval"]["pass2"] is None and metrics["eval"]["pass1"]["frame_skip"] == 4.0
    assert math.isfinite(metrics["eval"]["pass1"]["linear_blend_psnr_db"])


# -- mfi: same budget and randomness, its own layout --------------------------------------------------
def test_mfi_has_the_interpolation_budget_and_draws():
    a, b = InterpolationRecipe(), MFIRecipe()
    for name in ("data", "frames_per_pair", "fine_fraction", "max_perturbation", "keyframe_dropout",
                 "beta_schedule", "num_train_timesteps", "eval_clips", "eval_num_inference_steps"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("steps", "batch_size", "lr", "warmup_steps", "ema_decay", "seed"):
        assert getattr(a.training, name) == getattr(b.training, name), name
    assert b.training.extra["recipe"] == "mfi"
    scheduler = DDPMScheduler(**V_SCHEDULER)
    recipe = load_recipe(MFIRecipe, TINY_INTERP)
    ours, theirs = task_from_recipe(recipe, scheduler), task_from_recipe(recipe, scheduler, MFITask)
    assert isinstance(theirs, MFITask) and vars(ours) == vars(theirs)
    batch, indices = _batch(), list(range(8))
    r1, r2 = ours.prepare(batch, sample_generators(0, indices)), theirs.prepare(batch, sample_generators(0, indices))
    assert all(torch.equal(r1[k], r2[k]) for k in r1)


class _FakeMFI(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(out_channels=4)
        self.calls = []

    def forward(self, sample, t, *, frame_positions, perturbation_level):
        self.calls.append({"sample": sample.clone(), "t": t, "frame_positions": frame_positions,
                           "perturbation_level": perturbation_level})
        return torch.zeros_like(sample[:, :4])


def test_mfi_training_input_matches_mfi_interpolate_pass():
    scheduler = DDPMScheduler(**V_SCHEDULER)
    task = MFITask(scheduler, frame_skip=4, keyframe_dropout=0.3)
    batch, indices = _batch(), list(range(8))
    fake = _FakeMFI()
    loss = task.loss(fake, batch, indices, sample_generators(0, indices))
    r = task.prepare(batch, sample_generators(0, indices))
    sample = fake.calls[0]["sample"]  # (B, 4 + 4 + 1, F, h, w)
    known, mask = masked_inputs(r["keyframes"], 3)
    assert torch.allclose(sample, torch.cat([scheduler.add_noise(r["clip"], r["noise"], r["t"]), known, mask], 1))
    unknown = mask[0, 0, :, 0, 0] == 0  # (F,) frames to generate
    assert torch.equal(sample[:, 4:8, ::4], r["keyframes"]) and (sample[:, 4:8][:, :, unknown] == 0).all()
    assert mask[0, 0, :, 0, 0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 1]
    positions = fake.calls[0]["frame_positions"]  # source times: j in pass 1, j / 4 in pass 2
    for i in range(8):
        step = 0.25 if r["fine"][i] else 1.0
        assert torch.allclose(positions[i], step * torch.arange(9, dtype=torch.float32))
    v = scheduler.get_velocity(r["clip"], r["noise"], r["t"])
    assert loss.item() == pytest.approx(v.pow(2).mean().item(), rel=1e-5)  # v over all frames

    latents = torch.randn(2, 4, 3, 2, 2)
    fake = _FakeMFI()
    out = mfi_interpolate_pass(fake, DDIMScheduler(**V_SCHEDULER), latents, frame_skip=1.0, num_inference_steps=1,
                               guidance_scale=1.25, generator=torch.Generator().manual_seed(0),
                               progress_bar_config={"disable": True})
    call = fake.calls[0]
    known, mask = masked_inputs(latents, 3)
    assert torch.equal(call["sample"][:2, 4:], torch.cat([known, mask], 1))  # cond rows: as in training
    assert torch.equal(call["sample"][2:, 4:], torch.cat([torch.zeros_like(known), mask], 1))  # uncond: dropped
    assert torch.allclose(call["frame_positions"], 0.25 * torch.arange(9.0).expand(4, 9))
    assert torch.equal(out[:, :, ::4], latents)


@pytest.mark.parametrize("recipe_class, config, message", [
    (InterpolationRecipe, {"max_perturbation": 1000}, "max_perturbation 1000 must be below num_train_timesteps 1000"),
    (InterpolationRecipe, {"max_perturbation": -1}, "max_perturbation -1 is not allowed"),
    (InterpolationRecipe, {"fine_fraction": 1.5}, r"fine_fraction 1.5 is not allowed; it must be a number in \[0, 1\]"),
    (InterpolationRecipe, {"keyframe_dropout": -0.1}, "keyframe_dropout -0.1 is not allowed"),
    (InterpolationRecipe, {"frames_per_pair": 0}, "frames_per_pair 0 is not allowed"),
    (InterpolationRecipe, {"eval_guidance_scale": -1}, "eval_guidance_scale -1 is not allowed"),
    (InterpolationRecipe, {"freeze_spatial": "no"}, "freeze_spatial 'no' is not allowed"),
    (InterpolationRecipe, {"beta_schedule": "cosine"}, "beta_schedule 'cosine' is not one of"),
    (MFIRecipe, {"temporal": "conv2d"}, "temporal 'conv2d' is not one of"),
])
def test_bad_recipe_values(recipe_class, config, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(recipe_class, config)


def test_needs_the_t2i_stage(tmp_path):
    with pytest.raises(ValueError, match="train the autoencoder stage first"):
        train_interpolation(tmp_path, config=TINY_INTERP, progress=False)
