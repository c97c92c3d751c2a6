"""Keyframes stage: only temporal weights train, the folder samples, keyframe clips, motion check, exact resume."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil

import pytest
import torch

from minifusion.data import MovingShapes
from minifusion.diffusion import DDPMScheduler
from minifusion.models.keyframe_unet import KeyframeUNet, is_temporal_parameter
from minifusion.models.unet import UNet
from minifusion.training import per_sample_bernoulli, per_sample_noise, per_sample_randint, sample_generators
from minifusion.training.randomness import seed_everything
from minifusion.training.recipes import STAGES, load_recipe, train_autoencoder, train_t2i, train_text_encoder
from minifusion.training.recipes import keyframes as kf
from minifusion.training.recipes.keyframes import (
    MOTION_COLUMNS,
    KeyframeClips,
    KeyframesRecipe,
    KeyframesTask,
    motion_targets,
    train_keyframes,
)

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
PROMPTS = ["a red circle moves right", "a blue square moves up-left"]
# 8 keyframes at skip 4 of 16x16 clips; a motion check every 2 steps (step 2) and the final one (step 3)
# (a high learning rate, so that every step visibly moves the weights)
TINY_KF = {"training": {**TRAINING, "batch_size": 2, "lr": 1e-2, "warmup_steps": 0, "plot_loss": False},
           "data": {"num_clips": 4, "size": 16},
           "motion_check_every": 2, "motion_prompts": PROMPTS, "motion_samples_per_prompt": 1,
           "motion_num_inference_steps": 2, "encode_batch_size": 4}


def _copy_base(base, dest):
    """A fresh pipeline folder holding the autoencoder and t2i stages (and their latent cache)."""
    for name in ("autoencoder", "text_encoder", "unet", "scheduler"):
        shutil.copytree(base / name, dest / name)
    shutil.copytree(base / "runs" / "cache", dest / "runs" / "cache")
    return dest


def _weights(folder):
    return KeyframeUNet.from_pretrained(folder).state_dict()


def _motion_rows(out):
    with (out / "runs" / "keyframes" / "motion.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    train_text_encoder(out, config=TINY_TE, progress=False)
    train_autoencoder(out, config=TINY_AE, progress=False)
    train_t2i(out, config=TINY_T2I, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(base, tmp_path_factory):
    """The keyframes stage with motion checks (every 2 steps + final)."""
    out = _copy_base(base, tmp_path_factory.mktemp("kf"))
    train_keyframes(out, config=TINY_KF, progress=False)
    return out


# -- data -------------------------------------------------------------------------------------------
def test_random_start_is_a_pure_function_of_seed_and_index():
    clips = MovingShapes("train", num_frames=8, frame_skip=4, size=16, length=64)
    a, b = KeyframeClips(clips, seed=3), KeyframeClips(clips, seed=3)
    starts = [a.start(i) for i in range(64)]
    assert starts == [b.start(i) for i in reversed(range(64))][::-1]  # order of access does not matter
    assert set(starts) == {0, 1, 2, 3}  # 0..skip-1, all of them over 64 clips
    assert starts != [KeyframeClips(clips, seed=4).start(i) for i in range(64)]
    assert all(KeyframeClips(clips, random_start=False, seed=3).start(i) == 0 for i in range(64))


def test_keyframe_clip_item_is_the_clip_rendered_at_start_plus_4k():
    clips = MovingShapes("train", num_frames=8, frame_skip=4, size=16, length=8)
    ds = KeyframeClips(clips, seed=0)
    shifted = next(i for i in range(8) if ds.start(i) > 0)
    for i in (0, shifted):
        item, start = ds[i], ds.start(i)
        times = start + 4 * torch.arange(8, dtype=torch.float32)  # source frames start, start + 4, ..., start + 28
        assert item["attributes"]["start"] == start
        assert torch.equal(item["attributes"]["times"], times)
        assert torch.equal(item["video"], clips.render(i, times.double().numpy()))
        assert item["video"].shape == (3, 8, 16, 16) and item["caption"] == clips[i]["caption"]
        assert torch.equal(ds[i]["video"], item["video"])  # deterministic
    plain = KeyframeClips(clips, random_start=False)[shifted]
    assert torch.equal(plain["video"], clips[shifted]["video"])  # start 0 = the dataset's own clip
    assert not torch.equal(plain["video"], ds[shifted]["video"])
    # the latent cache must not mix up clips with other starts
    assert ds.fingerprint_fields() != KeyframeClips(clips, seed=1).fingerprint_fields()
    assert ds.fingerprint_fields() != KeyframeClips(clips, random_start=False).fingerprint_fields()


# -- the loss ---------------------------------------------------------------------------------------
class _SpyTextEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.masks = []

    def forward(self, ids, mask):
        self.masks.append(mask.clone())
        return torch.ones(*ids.shape, 4), mask


class _ZeroModel(torch.nn.Module):
    """Predicts 0 and records its inputs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, hidden, hidden_mask, *, frame_positions):
        self.calls.append({"x": x, "t": t, "frame_positions": frame_positions})
        return torch.zeros_like(x)


def test_keyframes_task_is_epsilon_loss_with_positions_and_caption_dropout():
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    spy, model = _SpyTextEncoder(), _ZeroModel()
    positions = torch.arange(8, dtype=torch.float32) * 4
    task = KeyframesTask(scheduler, spy, frame_positions=positions, caption_dropout=0.5)
    indices = list(range(12))
    x0 = torch.randn(12, 4, 8, 4, 4)
    batch = {"latents": x0, "input_ids": torch.full((12, 3), 2), "attention_mask": torch.ones(12, 3, dtype=torch.bool)}
    loss = task.loss(model, batch, indices, sample_generators(0, indices))
    gens = sample_generators(0, indices)  # per sample: timestep, noise, dropout, in this order
    t = per_sample_randint(gens, 0, 1000)
    noise = per_sample_noise(gens, (4, 8, 4, 4))
    dropped = per_sample_bernoulli(gens, 0.5)
    assert 0 < dropped.sum() < 12
    assert torch.equal(~spy.masks[0].any(dim=1), dropped)  # dropped captions -> empty mask -> null embedding
    call = model.calls[0]
    assert torch.equal(call["t"], t) and torch.equal(call["frame_positions"], positions)
    assert torch.allclose(call["x"], scheduler.add_noise(x0, noise, t))
    assert loss.item() == pytest.approx(noise.pow(2).mean().item(), rel=1e-6)  # epsilon target, zero prediction



class _NoisyModel(torch.nn.Module):
    """Predicts a fixed wrong noise, so that the loss is not trivial."""

    def __init__(self, prediction):
        super().__init__()
        self.prediction = prediction

    def forward(self, x, t, hidden, mask, frame_positions=None):
        return self.prediction


def test_v_weighting_is_the_mse_of_the_implied_v_below_the_cap():
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    positions = torch.arange(8, dtype=torch.float32) * 4
    indices = list(range(16))
    x0 = torch.randn(16, 4, 8, 4, 4)
    batch = {"latents": x0, "input_ids": torch.full((16, 3), 2), "attention_mask": torch.ones(16, 3, dtype=torch.bool)}
    eps_hat = torch.randn(16, 4, 8, 4, 4, generator=torch.Generator().manual_seed(3))
    model = _NoisyModel(eps_hat)
    cap = 1e9  # no cap: the weight is exactly 1 / alpha_bar
    task = KeyframesTask(scheduler, _SpyTextEncoder(), frame_positions=positions, caption_dropout=0.0,
                         loss_weighting="v", loss_weight_cap=cap)
    loss = task.loss(model, batch, indices, sample_generators(0, indices))
    gens = sample_generators(0, indices)
    t = per_sample_randint(gens, 0, 1000)
    noise = per_sample_noise(gens, (4, 8, 4, 4))
    ab = scheduler.alphas_cumprod.double()[t].view(-1, 1, 1, 1, 1)
    x_t = ab.sqrt() * x0.double() + (1 - ab).sqrt() * noise.double()
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat.double()) / ab.sqrt()  # what the noise prediction implies
    v_hat = ab.sqrt() * eps_hat.double() - (1 - ab).sqrt() * x0_hat
    v = ab.sqrt() * noise.double() - (1 - ab).sqrt() * x0.double()
    mean_weight = (1 / scheduler.alphas_cumprod.double()).mean().item()
    assert loss.item() * mean_weight == pytest.approx((v_hat - v).pow(2).mean().item(), rel=1e-4)
    # the default cap bounds the weight of the noisiest steps; weights average 1 over t
    capped = KeyframesTask(scheduler, _SpyTextEncoder(), frame_positions=positions, loss_weighting="v")
    w = capped.loss_weights
    assert w.mean().item() == pytest.approx(1.0, rel=1e-5) and w.max() / w.min() == pytest.approx(20, rel=0.05)
    assert (w[1:] >= w[:-1]).all()  # noisier steps never weigh less
    with pytest.raises(ValueError, match="loss_weighting 'x0' is not one of 'epsilon', 'v'"):
        KeyframesTask(scheduler, _SpyTextEncoder(), frame_positions=positions, loss_weighting="x0")
    with pytest.raises(ValueError, match="reweights a noise prediction; this scheduler trains 'v_prediction'"):
        KeyframesTask(DDPMScheduler(prediction_type="v_prediction"), _SpyTextEncoder(), frame_positions=positions,
                      loss_weighting="v")

# -- the stage --------------------------------------------------------------------------------------
def test_registry_has_the_keyframes_stage():
    stage = STAGES["keyframes"]
    assert stage.requires == ("text_encoder", "autoencoder", "t2i") and stage.recipe_class is KeyframesRecipe


def test_only_temporal_parameters_change(trained):
    t2i = UNet.from_pretrained(trained / "unet").state_dict()
    saved = KeyframeUNet.from_pretrained(trained / "keyframe_unet")
    state = saved.state_dict()
    spatial = [k for k in state if not is_temporal_parameter(k)]
    assert sorted(spatial) == sorted(t2i)
    assert all(torch.equal(state[k], t2i[k]) for k in spatial)
    assert saved.config.temporal == "conv1d_attn1d_blocks" and saved.config.num_frames == 8
    # the temporal parts did train: they left their (seeded) initial values
    seed_everything(0)
    init = KeyframeUNet.from_t2i(UNet.from_pretrained(trained / "unet"), temporal="conv1d_attn1d_blocks",
                                 num_frames=8, sample_size=saved.config.sample_size).state_dict()
    temporal = [k for k in state if is_temporal_parameter(k)]
    assert temporal and any(not torch.equal(state[k], init[k]) for k in temporal)
    metrics = json.loads((trained / "runs" / "keyframes" / "metrics.json").read_text())
    assert metrics["trainable_parameters"] == sum(state[k].numel() for k in temporal)
    assert metrics["step"] == 3 and metrics["temporal"] == "conv1d_attn1d_blocks"


def test_the_folder_loads_as_a_keyframes_pipeline(trained):
    from minifusion.pipeline import FusionFramesPipeline

    index = json.loads((trained / "model_index.json").read_text())
    metrics = json.loads((trained / "runs" / "keyframes" / "metrics.json").read_text())
    assert index["settings"]["keyframe_frame_skip"] == 4  # frame positions 0, 4, ..., 28 at inference
    assert index["settings"]["latent_range"] == pytest.approx(metrics["latent_range"])
    assert "interpolation_unet" not in index["components"]
    pipe = FusionFramesPipeline.from_pretrained(trained)
    kwargs = dict(num_inference_steps=2, guidance_scale=2.0, interpolation_passes=0, output_type="pt", progress=False)
    out = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), **kwargs)
    assert out.keyframes.shape == (2, 3, 8, 16, 16) and out.frames.shape == (2, 3, 8, 16, 16)
    assert 0 <= out.keyframes.min() and out.keyframes.max() <= 1
    again = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), **kwargs)
    assert torch.equal(out.keyframes, again.keyframes)


def test_with_the_interpolation_stage_the_folder_makes_29_frame_videos(trained, tmp_path):
    from minifusion.pipeline import FusionFramesPipeline
    from minifusion.training.recipes import train_interpolation

    out = shutil.copytree(trained, tmp_path / "full")
    settings = json.loads((out / "model_index.json").read_text())["settings"]
    train_interpolation(out, config={"training": {**TRAINING, "steps": 1, "batch_size": 2, "plot_loss": False},
                                     "data": {"num_clips": 2, "num_frames": 3, "size": 16}, "eval_clips": 0},
                        progress=False)
    from minifusion.training.recipes.interpolation import INTERPOLATION_PIPELINE_SETTINGS

    index = json.loads((out / "model_index.json").read_text())
    # the keyframes stage's latent range and frame skip are kept; the interpolation stage sets its sampler's
    assert index["settings"] == {**settings, **INTERPOLATION_PIPELINE_SETTINGS}
    assert settings["interpolation_strength"] == 1.0 and index["settings"]["interpolation_strength"] == 0.8
    assert index["components"]["keyframe_unet"] == "KeyframeUNet"
    pipe = FusionFramesPipeline.from_pretrained(out)
    out = pipe(PROMPTS[0], num_inference_steps=1, interpolation_num_inference_steps=1, interpolation_passes=1,
               generator=torch.Generator().manual_seed(0), progress=False)
    assert out.frames.shape == (1, 29, 16, 16, 3) and out.keyframe_indices == list(range(0, 29, 4))


def test_training_tells_the_model_positions_0_4_to_28_for_any_variant(base, tmp_path, monkeypatch):
    seen = []

    class Spy(KeyframesTask):
        def loss(self, model, batch, sample_indices, generators):
            seen.append((self.frame_positions.clone(), tuple(batch["latents"].shape)))
            return super().loss(model, batch, sample_indices, generators)

    monkeypatch.setattr(kf, "KeyframesTask", Spy)
    out = _copy_base(base, tmp_path / "spy")
    config = {**TINY_KF, "motion_check_every": 0, "training": {**TINY_KF["training"], "steps": 1}}
    train_keyframes(out, config=config, temporal="conv1d_attn3d_blocks", progress=False)  # CLI: --temporal
    assert torch.equal(seen[0][0], torch.arange(0, 29, 4, dtype=torch.float32))
    assert seen[0][1] == (2, 4, 8, 8, 8)  # (B, C, K, h, w): 8 keyframes of 8x8 latents
    assert KeyframeUNet.from_pretrained(out / "keyframe_unet").config.temporal == "conv1d_attn3d_blocks"
    assert json.loads((out / "runs" / "keyframes" / "recipe.json").read_text())["temporal"] == "conv1d_attn3d_blocks"


def test_the_recipe_adds_the_temporal_text_attention_and_trains_it(base, tmp_path):
    out = _copy_base(base, tmp_path / "text")
    config = {**TINY_KF, "motion_check_every": 0, "temporal_text_attention_size": 4, "temporal_text_per_frame": True}
    train_keyframes(out, config=config, progress=False)
    model = KeyframeUNet.from_pretrained(out / "keyframe_unet")
    texts = [k for k, b in model.temporal_blocks.items() if b.takes_text]
    assert model.config.temporal_text_attention_size == 4 and texts  # the 4x4 level of the 8x8 latents
    assert all(model.temporal_blocks[k].branch.to_out.weight.abs().sum() > 0 for k in texts)  # zero at init, trained
    assert all(model.temporal_blocks[k].branch.frame_text is not None for k in texts)  # temporal_text_per_frame


def test_the_recipe_adds_the_motion_biased_attention_and_trains_it(base, tmp_path):
    from minifusion.nn import MotionBiasedAttention

    out = _copy_base(base, tmp_path / "bias")
    config = {**TINY_KF, "motion_check_every": 0, "spatiotemporal_attention_size": 4, "spatiotemporal_motion_bias": True}
    train_keyframes(out, config=config, progress=False)
    model = KeyframeUNet.from_pretrained(out / "keyframe_unet")
    biased = [b.branch for b in model.temporal_blocks.values() if isinstance(b.branch, MotionBiasedAttention)]
    assert model.config.spatiotemporal_motion_bias and biased  # at the 4x4 level of the 8x8 latents
    assert all(m.to_out.weight.abs().sum() > 0 for m in biased)  # zero at init, trained


def test_motion_check_writes_rows_every_n_steps_and_the_final_one(trained):
    rows = _motion_rows(trained)
    assert [int(r["step"]) for r in rows] == [2, 3]  # the callback at step 2, the final check at step 3
    assert list(rows[0]) == list(MOTION_COLUMNS)
    for r in rows:
        assert int(r["num_videos"]) == 2
        for key in ("color_accuracy", "direction_accuracy", "moving_fraction"):
            assert 0 <= float(r[key]) <= 1
        assert math.isfinite(float(r["background_flicker"]))
    metrics = json.loads((trained / "runs" / "keyframes" / "metrics.json").read_text())
    assert metrics["motion"]["step"] == 3
    assert metrics["motion"]["color_accuracy"] == pytest.approx(float(rows[-1]["color_accuracy"]))
    assert (trained / "runs" / "keyframes" / "motion_samples.png").is_file()


def test_the_motion_callback_does_not_change_the_weights(base, trained, tmp_path):
    out = _copy_base(base, tmp_path / "quiet")
    train_keyframes(out, config={**TINY_KF, "motion_check_every": 0}, progress=False)
    with_checks, without = _weights(trained / "keyframe_unet"), _weights(out / "keyframe_unet")
    assert all(torch.equal(with_checks[k], without[k]) for k in with_checks)
    assert [int(r["step"]) for r in _motion_rows(out)] == [3]  # only the final check


def test_resume_gives_the_plain_runs_weights(base, trained, tmp_path):
    out = _copy_base(base, tmp_path / "split")
    train_keyframes(out, config=TINY_KF, steps=2, progress=False)
    plain, step_2 = _weights(trained / "keyframe_unet"), _weights(out / "keyframe_unet")
    assert max((plain[k] - step_2[k]).abs().max().item() for k in plain) > 1e-4  # step 3 matters
    with pytest.raises(ValueError, match="trains temporal 'conv1d_attn1d_blocks'; it cannot resume as "
                                         "'conv1d_attn1d_layers'"):
        train_keyframes(out, steps=3, resume=True, temporal="conv1d_attn1d_layers", progress=False)
    with pytest.raises(ValueError, match="already holds a training run"):
        train_keyframes(out, config=TINY_KF, steps=3, progress=False)
    train_keyframes(out, steps=3, resume=True, progress=False)  # the saved recipe is reused
    split = _weights(out / "keyframe_unet")
    assert all(torch.equal(plain[k], split[k]) for k in plain)
    assert [int(r["step"]) for r in _motion_rows(out)] == [2, 3]
    log = (out / "runs" / "keyframes" / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2", "3"]


def test_needs_the_earlier_stages(tmp_path):
    with pytest.raises(ValueError, match="starts from the autoencoder stage"):
        train_keyframes(tmp_path, config=TINY_KF, progress=False)


@pytest.mark.parametrize("config, message", [
    ({"temporal": "conv2d"}, r"temporal 'conv2d' is not one of 'conv1d_attn1d_layers'"),
    ({"caption_dropout": 1.0}, r"caption_dropout 1.0 is not allowed; it must be a number in \[0, 1\)"),
    ({"latent_range_quantile": 0}, r"latent_range_quantile 0 is not allowed"),
    ({"motion_check_every": -1}, "motion_check_every -1 is not allowed; it must be an integer >= 0"),
    ({"motion_samples_per_prompt": 0}, "motion_samples_per_prompt 0 is not allowed"),
    ({"encode_batch_size": 2.5}, "encode_batch_size 2.5 is not allowed"),
    ({"motion_guidance_scale": float("nan")}, "motion_guidance_scale nan is not allowed"),
    ({"motion_guidance_scale": True}, "motion_guidance_scale True is not allowed"),
    ({"motion_prompts": []}, r"motion_prompts \(\) must be a non-empty list"),
    ({"motion_prompts": "a red circle moves right"}, "motion_prompts 'a red circle moves right' must be a non-empty"),
    ({"motion_prompts": ["a red square rotates"]}, "motion prompt 'a red square rotates' must be one shape that moves"),
    ({"motion_prompts": ["a pink circle moves up"]}, "motion prompt 'a pink circle moves up' is not a Moving Shapes"),
    ({"random_start": "yes"}, "random_start 'yes' is not allowed"),
    ({"temporal_head_dim": 0}, "temporal_head_dim 0 is not allowed"),
    ({"temporal_text_attention_size": -1}, "temporal_text_attention_size -1 is not allowed; it must be an integer >= 0"),
    ({"spatiotemporal_attention_size": 2.0}, "spatiotemporal_attention_size 2.0 is not allowed; it must be an integer"),
    ({"spatiotemporal_motion_bias": 1}, "spatiotemporal_motion_bias 1 is not allowed; it must be true or false"),
    ({"spatiotemporal_motion_bias": True}, "spatiotemporal_motion_bias needs spatiotemporal_attention_size > 0"),
    ({"loss_weighting": "snr"}, "loss_weighting 'snr' is not allowed; it must be one of 'epsilon', 'v'"),
    ({"loss_weight_cap": 0.5}, "loss_weight_cap 0.5 is not allowed; it must be a finite number >= 1"),
    ({"temporal_text_pooling": 1}, "temporal_text_pooling 1 is not allowed; it must be true or false"),
    ({"temporal_text_per_frame": "no"}, "temporal_text_per_frame 'no' is not allowed; it must be true or false"),
    ({"init_from": "/no/such/folder"}, "init_from '/no/such/folder' is not a saved keyframe_unet folder"),
    ({"tempral": "x"}, r"unknown KeyframesRecipe keys \['tempral'\]"),
])
def test_bad_recipe_values(config, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(KeyframesRecipe, config)


def test_bad_temporal_argument_and_motion_targets(tmp_path):
    with pytest.raises(ValueError, match="temporal 'conv4d' is not one of"):
        train_keyframes(tmp_path, config=TINY_KF, temporal="conv4d", progress=False)
    assert motion_targets(PROMPTS) == (["red", "blue"], ["right", "up-left"])


def test_warm_start_continues_a_saved_model_and_adds_the_text_pooling(base, trained, tmp_path):
    # the trained model had the pooling; save it without (as checkpoints from before the field)
    saved = KeyframeUNet.from_pretrained(trained / "keyframe_unet")
    old = KeyframeUNet(dataclasses.replace(saved.config, temporal_text_pooling=False))
    old.load_state_dict({k: v for k, v in saved.state_dict().items()
                         if not k.startswith("temporal_text_embedding.")})
    old.save_pretrained(tmp_path / "old")
    unet = UNet.from_pretrained(trained / "unet")
    model = KeyframeUNet.from_t2i(unet, num_frames=8, sample_size=saved.config.sample_size)
    fresh = model.temporal_text_embedding.attention.to_q.weight.detach().clone()
    missing = kf.warm_start(model, tmp_path / "old")
    assert missing and all(k.startswith("temporal_text_embedding.") for k in missing)
    assert torch.equal(model.temporal_text_embedding.attention.to_q.weight, fresh)  # new part keeps its init
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in old.state_dict().items())  # the rest is the saved model
    # a run started with init_from trains on from there
    out = _copy_base(base, tmp_path / "warm")
    train_keyframes(out, config={**TINY_KF, "init_from": str(tmp_path / "old"), "motion_check_every": 0},
                    progress=False)
    recipe = json.loads((out / "runs" / "keyframes" / "recipe.json").read_text())
    assert recipe["init_from"] == str(tmp_path / "old") and recipe["temporal_text_pooling"] is True


def test_warm_start_refuses_another_variant_or_another_t2i_model(trained, tmp_path):
    unet = UNet.from_pretrained(trained / "unet")
    size = KeyframeUNet.from_pretrained(trained / "keyframe_unet").config.sample_size
    other_variant = KeyframeUNet.from_t2i(unet, temporal="conv1d_attn1d_layers", num_frames=8, sample_size=size)
    with pytest.raises(ValueError, match="is a 'conv1d_attn1d_blocks' model; this run trains 'conv1d_attn1d_layers'"):
        kf.warm_start(other_variant, trained / "keyframe_unet")
    with torch.no_grad():
        unet.conv_in.weight.add_(1.0)
    other_t2i = KeyframeUNet.from_t2i(unet, num_frames=8, sample_size=size)
    with pytest.raises(ValueError, match=r"was not built on this run's T2I U-Net.*conv_in\.weight"):
        kf.warm_start(other_t2i, trained / "keyframe_unet")


@pytest.mark.parametrize("name", ["keyframes-text-attention.json", "keyframes-motion-bias.json"])
def test_committed_keyframes_configs_load_as_recipes(name):
    from pathlib import Path

    config = json.loads((Path(__file__).resolve().parents[1] / "configs" / name).read_text())
    recipe = load_recipe(KeyframesRecipe, config)
    assert recipe.temporal_text_attention_size == 8 and recipe.loss_weighting == "v"
    assert recipe.spatiotemporal_motion_bias == (name == "keyframes-motion-bias.json")


def test_the_motion_pipeline_config_names_every_stage_and_loads():
    from pathlib import Path

    from minifusion.training.recipes import STAGES
    from minifusion.training.recipes.all_stages import ORDER, _stage_configs

    root = Path(__file__).resolve().parents[1] / "configs"
    configs = _stage_configs(root / "moving-shapes-motion.json")
    assert set(configs) == set(ORDER)
    recipes = {name: load_recipe(STAGES[name].recipe_class, config) for name, config in configs.items()}
    assert recipes["keyframes"].spatiotemporal_motion_bias and recipes["keyframes"].training.steps == 3000
    # the stage's own config file trains the same keyframe model
    alone = load_recipe(KeyframesRecipe, json.loads((root / "keyframes-motion-bias.json").read_text()))
    assert dataclasses.asdict(alone) == dataclasses.asdict(recipes["keyframes"])
