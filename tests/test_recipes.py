"""Stage recipes: tiny end-to-end runs write loadable pipeline parts; exact resume; --data; config files."""

from __future__ import annotations

import json

import pytest
import torch

from minifusion.data import MovingShapes
from minifusion.models.autoencoder import Autoencoder
from minifusion.models.text_encoder import TextEncoder
from minifusion.models.unet import UNet
from minifusion.training import per_sample_bernoulli, per_sample_noise, per_sample_randint, sample_generators
from minifusion.training.recipes import (
    STAGES,
    AutoencoderRecipe,
    FrameDataset,
    T2IRecipe,
    T2ITask,
    load_recipe,
    load_t2i,
    psnr,
    recipe_to_dict,
    sample_t2i,
    train_autoencoder,
    train_t2i,
    train_text_encoder,
)
from minifusion.training.recipes.common import load_scheduler, spread_indices, stack_frames

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
            "sample_prompts": ["a red circle moves right", "a blue star moves up"], "samples_per_prompt": 2,
            "num_inference_steps": 2}


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    train_text_encoder(out, config=TINY_TE, progress=False)
    train_autoencoder(out, config=TINY_AE, progress=False)
    train_t2i(out, config=TINY_T2I, progress=False)
    return out


def test_registry_lists_the_stages_in_training_order():
    from minifusion.training.recipes.all_stages import ORDER

    assert list(STAGES) == ["text_encoder", "autoencoder", "t2i", "keyframes", "interpolation", "decoder",
                            "mfi"] == list(ORDER)
    assert STAGES["t2i"].requires == ("text_encoder", "autoencoder")
    for name, stage in STAGES.items():  # every stage needs only stages that come before it
        assert all(ORDER.index(r) < ORDER.index(name) for r in stage.requires)


def test_autoencoder_stage_writes_a_scaled_autoencoder(pipeline_dir):
    ae = Autoencoder.from_pretrained(pipeline_dir / "autoencoder")
    assert ae.config.block_out_channels == (8, 16) and ae.scaling_factor != 1.0
    metrics = json.loads((pipeline_dir / "runs" / "autoencoder" / "metrics.json").read_text())
    assert metrics["step"] == 3 and metrics["scaling_factor"] == pytest.approx(ae.scaling_factor)
    # the scaling factor makes the latents of the frames it was measured on unit-variance
    frames = FrameDataset(MovingShapes("train", num_frames=2, frame_skip=1, size=16, length=6,
                                       backgrounds=("black", "light")))
    x = stack_frames(frames, spread_indices(len(frames), 8))
    with torch.no_grad():
        assert ae.encode(x).std().item() == pytest.approx(1.0, abs=1e-3)
        assert metrics["val_psnr_db"] == pytest.approx(psnr(ae(x), x), abs=30)  # finite, same scale
    run = pipeline_dir / "runs" / "autoencoder"
    for name in ("recipe.json", "training_config.json", "log.csv", "loss.png", "reconstructions.png",
                 "checkpoints/step_000003.pt"):
        assert (run / name).is_file(), name


def test_t2i_stage_writes_everything_needed_to_sample(pipeline_dir):
    parts = load_t2i(pipeline_dir)
    te, unet = parts["text_encoder"], parts["unet"]
    assert unet.config.cross_attention_dim == te.config.hidden_size == 16
    assert "circle" in te.tokenizer.vocab and "light" in te.tokenizer.vocab  # the whole Moving Shapes grammar
    assert unet.config.sample_size == 8  # 16x16 frames through a 2x autoencoder
    scheduler = load_scheduler(pipeline_dir)
    # the pipeline's sampler (SDE-DPM-Solver++) on the schedule the U-Net was trained with
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scheduler.config["algorithm_type"] == "sde-dpmsolver++"
    assert scheduler.config["beta_schedule"] == "squaredcos_cap_v2" and scheduler.config["prediction_type"] == "epsilon"
    assert (pipeline_dir / "runs" / "t2i" / "samples.png").is_file()
    kwargs = dict(scheduler=parts["scheduler"], num_inference_steps=2, guidance_scale=3.0)
    a = sample_t2i(unet, te, parts["autoencoder"], ["a red circle moves right", ""],
                   generator=torch.Generator().manual_seed(1), **kwargs)
    b = sample_t2i(unet, te, parts["autoencoder"], ["a red circle moves right", ""],
                   generator=torch.Generator().manual_seed(1), **kwargs)
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b) and a.abs().max() <= 1


def test_t2i_stage_leaves_the_text_encoder_as_it_was(pipeline_dir):
    trained = TextEncoder.from_pretrained(pipeline_dir / "text_encoder").state_dict()
    exported = TextEncoder.from_pretrained(pipeline_dir / "runs" / "text_encoder" / "model" / "text_encoder")
    assert all(torch.equal(trained[k], v) for k, v in exported.state_dict().items())
    assert not (pipeline_dir / "runs" / "t2i" / "model" / "text_encoder").exists()  # only the U-Net was trained


def test_t2i_needs_the_autoencoder_and_the_text_encoder_first(tmp_path):
    with pytest.raises(ValueError, match="train the autoencoder stage first"):
        train_t2i(tmp_path, config=TINY_T2I, progress=False)
    train_autoencoder(tmp_path, config=TINY_AE, progress=False)
    with pytest.raises(ValueError, match="train the text_encoder stage first"):
        train_t2i(tmp_path, config=TINY_T2I, progress=False)


def test_resume_continues_exactly(tmp_path):
    def weights(out):
        return Autoencoder.from_pretrained(out / "runs" / "autoencoder" / "model").state_dict()

    train_autoencoder(tmp_path / "plain", config=TINY_AE, steps=4, progress=False)
    train_autoencoder(tmp_path / "split", config=TINY_AE, steps=2, progress=False)
    with pytest.raises(ValueError, match="already holds a training run"):
        train_autoencoder(tmp_path / "split", config=TINY_AE, steps=4, progress=False)
    saved = json.loads((tmp_path / "split" / "runs" / "autoencoder" / "recipe.json").read_text())
    assert saved["training"]["steps"] == 2  # the refused call left the run's recipe alone
    train_autoencoder(tmp_path / "split", steps=4, resume=True, progress=False)  # the saved recipe is reused
    plain, split = weights(tmp_path / "plain"), weights(tmp_path / "split")
    assert all(torch.allclose(plain[k], split[k], atol=1e-6) for k in plain)
    log = (tmp_path / "split" / "runs" / "autoencoder" / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2", "3", "4"]


def test_data_dir_rebuilds_the_vocabulary_from_its_captions(tmp_path):
    from minifusion.viz import save_gif

    clips = tmp_path / "clips"
    clips.mkdir()
    captions = {"zebra.gif": "a striped zebra gallops", "moon.gif": "the pale moon glows"}
    for k, name in enumerate(captions):
        video = torch.linspace(-1, 1, 3 * 3 * 16 * 16).reshape(3, 3, 16, 16).roll(k * 40) * (1 - 2 * k)
        save_gif(video, clips / name)
    (clips / "captions.txt").write_text("".join(f"{n}\t{c}\n" for n, c in captions.items()))
    out = tmp_path / "out"
    train_autoencoder(out, config=TINY_AE, data_dir=clips, progress=False)
    assert json.loads((out / "runs" / "autoencoder" / "metrics.json").read_text())["val_source"] == "training folder"
    with pytest.raises(ValueError, match="train the text_encoder stage first"):
        train_t2i(out, config=TINY_T2I, data_dir=clips, progress=False)
    train_text_encoder(out, config=TINY_TE, data_dir=clips, progress=False)
    train_t2i(out, config=TINY_T2I, data_dir=clips, progress=False)
    te = TextEncoder.from_pretrained(out / "text_encoder")
    assert set(te.tokenizer.vocab[2:]) == {"a", "striped", "zebra", "gallops", "the", "pale", "moon", "glows"}
    recipe = json.loads((out / "runs" / "t2i" / "recipe.json").read_text())
    assert recipe["data"]["folder"] == str(clips)


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        train_autoencoder(tmp_path, config=TINY_AE, data_dir=tmp_path / "nope", progress=False)


def test_recipe_config_round_trip_and_partial_overrides(tmp_path):
    recipe = load_recipe(T2IRecipe, TINY_T2I)
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe_to_dict(recipe)))
    again = load_recipe(T2IRecipe, path)
    assert again == recipe and again.unet.block_out_channels == (8, 16)
    partial = load_recipe(AutoencoderRecipe, {"training": {"lr": 5e-4}})
    assert partial.training.lr == 5e-4 and partial.training.steps == AutoencoderRecipe().training.steps
    assert partial.model == AutoencoderRecipe().model


@pytest.mark.parametrize("config, message", [
    ({"learning_rate": 1}, r"unknown AutoencoderRecipe keys \['learning_rate'\]; allowed: .*'training'"),
    ({"training": {"stepz": 3}}, r"unknown AutoencoderRecipe.training keys \['stepz'\]; allowed: .*'steps'"),
    ({"training": {"steps": 0}}, "steps 0 is not allowed"),
    ({"model": {"decoder_temporal": "conv3d"}}, "must be 'none'"),
    ({"l1_weight": -1}, "l1_weight -1 is not allowed"),
])
def test_bad_autoencoder_configs(config, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(AutoencoderRecipe, config)


def test_bad_t2i_configs_and_files(tmp_path):
    with pytest.raises(ValueError, match="caption_dropout 1.5"):
        load_recipe(T2IRecipe, {"caption_dropout": 1.5})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_recipe(T2IRecipe, bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_recipe(T2IRecipe, tmp_path / "missing.json")
    with pytest.raises(ValueError, match="steps 0 is not allowed"):
        train_t2i(tmp_path, config=TINY_T2I, steps=0, progress=False)


def test_frame_dataset_matches_the_clips_and_is_deterministic():
    clips = MovingShapes("train", num_frames=4, frame_skip=2, size=16, length=3)
    every = FrameDataset(clips)
    assert len(every) == 12
    assert torch.allclose(every[6]["video"][:, 0], clips[1]["video"][:, 2], atol=1e-6)
    one = FrameDataset(clips, frames_per_clip=1, seed=5)
    assert len(one) == 3 and one.frame_index(2) == FrameDataset(clips, frames_per_clip=1, seed=5).frame_index(2)
    clip, frame = one.frame_index(2)
    assert torch.allclose(one[2]["video"][:, 0], clips[clip]["video"][:, frame], atol=1e-6)
    with pytest.raises(ValueError, match="frames_per_clip 5"):
        FrameDataset(clips, frames_per_clip=5)


class _SpyTextEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.masks = []

    def forward(self, ids, mask):
        self.masks.append(mask.clone())
        out_mask = mask.clone()
        out_mask[:, 0] |= ~mask.any(dim=1)  # like TextEncoder: the null token sits at position 0
        return torch.ones(*ids.shape, 4), out_mask


def test_t2i_task_draws_timestep_noise_then_dropout_per_sample():
    from minifusion.diffusion import DDPMScheduler

    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    unet = UNet(dict(block_out_channels=(8, 16), layers_per_block=1, norm_groups=4, attention_head_dim=8,
                     cross_attention_dim=4))
    spy = _SpyTextEncoder()
    model = unet
    task = T2ITask(scheduler, spy, caption_dropout=0.5)
    indices = list(range(16))
    batch = {"latents": torch.randn(16, 4, 4, 4), "input_ids": torch.full((16, 3), 2),
             "attention_mask": torch.ones(16, 3, dtype=torch.bool)}
    loss = task.loss(model, batch, indices, sample_generators(0, indices))
    assert loss.ndim == 0 and torch.isfinite(loss)
    gens = sample_generators(0, indices)
    per_sample_randint(gens, 0, 1000), per_sample_noise(gens, (4, 4, 4))
    dropped = per_sample_bernoulli(gens, 0.5)
    assert 0 < dropped.sum() < 16  # both kinds present for this seed
    assert torch.equal(~spy.masks[0].any(dim=1), dropped)  # dropped rows: empty mask -> null embedding
    # the mean over samples: two halves average to the whole batch
    half = [task.loss(model, {k: v[s] for k, v in batch.items()}, indices[s], sample_generators(0, indices[s]))
            for s in (slice(0, 8), slice(8, 16))]
    assert torch.allclose((half[0] + half[1]) / 2, loss, atol=1e-5)
