"""The decoder stage (temporal video decoder fine-tuning) and the video reconstruction metrics."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from minifusion.diffusion import DDPMScheduler
from minifusion.eval.video_metrics import (
    flicker_ratio,
    frame_difference,
    gaussian_window,
    psnr,
    reconstruction_report,
    ssim,
    temporal_error,
)
from minifusion.models import Autoencoder, KeyframeUNet, KeyframeUNetConfig, TextEncoder
from minifusion.pipeline import FusionFramesPipeline
from minifusion.pipelines import write_model_index
from minifusion.training.recipes import load_recipe, train_autoencoder
from minifusion.training.recipes.common import save_scheduler_config
from minifusion.training.recipes.decoder import (
    VARIANTS,
    DecoderRecipe,
    build_video_decoder,
    train_decoder,
)

TRAINING = {"steps": 3, "batch_size": 2, "checkpoint_every": 2, "log_every": 1, "device": "cpu"}
TINY_AE = {"model": {"block_out_channels": [8, 16], "norm_groups": 4, "sample_size": 16},
           "training": TRAINING, "data": {"num_clips": 6, "num_frames": 2, "frame_skip": 1, "size": 16},
           "val_frames": 4, "scaling_frames": 8}
TINY_DECODER = {"temporal_attention_head_dim": 4, "training": {**TRAINING, "lr": 1e-2, "warmup_steps": 0},
                "data": {"num_clips": 8, "num_frames": 4, "size": 16}, "eval_clips": 2}


# -- metrics ---------------------------------------------------------------------------------------
def reference_ssim(x: torch.Tensor, y: torch.Tensor, size: int, sigma: float = 1.5) -> float:
    """Wang et al. 2004 written out: images (C, H, W) in [0, 1], L = 1, every valid window position."""
    half = (size - 1) / 2
    g = [math.exp(-((i - half) ** 2) / (2 * sigma**2)) for i in range(size)]
    w = [[a * b for b in g] for a in g]
    total = sum(map(sum, w))
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - size + 1):
            for j in range(x.shape[2] - size + 1):
                px = [(w[a][b] / total, float(x[c, i + a, j + b]), float(y[c, i + a, j + b]))
                      for a in range(size) for b in range(size)]
                mx = sum(k * u for k, u, _ in px)
                my = sum(k * v for k, _, v in px)
                vx = sum(k * (u - mx) ** 2 for k, u, _ in px)
                vy = sum(k * (v - my) ** 2 for k, _, v in px)
                cov = sum(k * (u - mx) * (v - my) for k, u, v in px)
                values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return sum(values) / len(values)


def test_ssim_matches_a_hand_written_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 13, 12, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(2, 13, 12, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(y[None], x[None], value_range=(0, 1)).item()  # images (1, C, H, W)
    assert ours == pytest.approx(reference_ssim(y, x, 11), abs=1e-5)
    small = ssim(y[None], x[None], value_range=(0, 1), window_size=5).item()
    assert small == pytest.approx(reference_ssim(y, x, 5), abs=1e-5)
    # the package's [-1, 1] range is mapped to [0, 1] first: same number
    assert ssim(2 * y[None] - 1, 2 * x[None] - 1).item() == pytest.approx(ours, abs=1e-6)
    w = gaussian_window(11, 1.5)
    assert w.sum().item() == pytest.approx(1.0) and torch.equal(w, w.T) and w.argmax().item() == 5 * 11 + 5


def test_ssim_identity_constants_and_symmetry():
    g = torch.Generator().manual_seed(1)
    video = torch.rand(2, 3, 4, 12, 12, generator=g) * 2 - 1
    other = (video + 0.3 * torch.randn(video.shape, generator=g)).clamp(-1, 1)
    assert ssim(video, video).shape == (2, 4)
    assert torch.allclose(ssim(video, video), torch.ones(2, 4), atol=1e-6)
    assert torch.allclose(ssim(video, other), ssim(other, video), atol=1e-6)
    assert (ssim(video, other) < 0.95).all()
    # constant frames a, b: variances vanish and SSIM = (2ab + C1) / (a^2 + b^2 + C1) (values in [0, 1])
    a, b = 0.2, 0.7
    got = ssim(torch.full((1, 1, 11, 11), 2 * a - 1), torch.full((1, 1, 11, 11), 2 * b - 1)).item()
    assert got == pytest.approx((2 * a * b + 1e-4) / (a * a + b * b + 1e-4), rel=1e-5)


def test_psnr_is_the_standard_formula_per_frame():
    g = torch.Generator().manual_seed(2)
    target = torch.rand(2, 3, 4, 8, 8, generator=g) * 2 - 1
    recon = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(-1, 1)
    mse = (recon - target).pow(2).mean(dim=(1, 3, 4))  # (B, F)
    assert torch.allclose(psnr(recon, target), 10 * torch.log10(4 / mse), atol=1e-4)
    assert psnr(target, target).isinf().all()
    images = psnr(recon[:, :, 0], target[:, :, 0])  # (B, C, H, W) -> (B,)
    assert torch.allclose(images, psnr(recon, target)[:, 0])
    unit = psnr((recon + 1) / 2, (target + 1) / 2, value_range=(0, 1))  # same signal, other range
    assert torch.allclose(unit, psnr(recon, target), atol=1e-4)
    # clamp: a value beyond the range counts as the range's edge (what a viewer sees)
    over, edge = target.clone(), target.clone()
    over[0, 0, 0, 0, 0], edge[0, 0, 0, 0, 0] = 5.0, 1.0
    assert psnr(over, edge)[0, 0].isinf() and psnr(over, edge, clamp=False)[0, 0].isfinite()


def test_flicker_measures_frame_to_frame_change():
    t = torch.arange(4, dtype=torch.float32)
    target = (0.1 * t).view(1, 1, 4, 1, 1).expand(1, 3, 4, 12, 12).contiguous()  # changes 0.1 per frame
    assert frame_difference(target).item() == pytest.approx(0.1)
    assert flicker_ratio(target, target).item() == pytest.approx(1.0)
    still = target[:, :, :1].expand_as(target)
    assert flicker_ratio(still, target).item() == 0.0
    jitter = target + 0.05 * torch.tensor([1.0, -1, 1, -1]).view(1, 1, 4, 1, 1)  # +-0.05: each step off by 0.1
    assert temporal_error(jitter, target).item() == pytest.approx(0.1, abs=1e-6)
    assert temporal_error(target + 0.3, target).item() == pytest.approx(0.0, abs=1e-6)  # no flicker, only an offset
    report = reconstruction_report(jitter, target)
    assert report["target_frame_difference"] == pytest.approx(0.1)
    assert report["flicker_ratio"] == pytest.approx(frame_difference(jitter).item() / 0.1, rel=1e-5)
    assert report["num_videos"] == 1 and report["num_frames"] == 4


@pytest.mark.parametrize("call, match", [
    (lambda: psnr(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 9)), r"same shape.*\(1, 3, 2, 8, 9\)"),
    (lambda: psnr(torch.zeros(3, 8), torch.zeros(3, 8)), r"got shape \(3, 8\)"),
    (lambda: ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)), "smaller than the SSIM window"),
    (lambda: ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), window_size=4), "window size 4"),
    (lambda: flicker_ratio(torch.zeros(1, 3, 1, 8, 8), torch.zeros(1, 3, 1, 8, 8)), "at least 2 frames"),
    (lambda: frame_difference(torch.zeros(1, 3, 8, 8)), r"video \(B, C, F, H, W\), got shape \(1, 3, 8, 8\)"),
    (lambda: psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), value_range=(1, 0)), "high > low"),
])
def test_bad_metric_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- the stage -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def autoencoder_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    train_autoencoder(out, config=TINY_AE, progress=False)
    return out / "autoencoder"


def fresh_out(tmp_path, autoencoder_dir, name="out"):
    out = tmp_path / name
    shutil.copytree(autoencoder_dir, out / "autoencoder")
    return out


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory, autoencoder_dir):
    """A tiny pipeline folder (random keyframe model) whose decoder stage was trained."""
    out = fresh_out(tmp_path_factory.mktemp("pipe"), autoencoder_dir)
    TextEncoder.from_captions(["a red circle moves right"], hidden_size=16, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=32, max_length=8).save_pretrained(
        out / "text_encoder")
    KeyframeUNet(KeyframeUNetConfig(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=16,
                                    attention_head_dim=8, norm_groups=4, sample_size=8)).save_pretrained(
        out / "keyframe_unet")
    save_scheduler_config(DDPMScheduler(beta_schedule="squaredcos_cap_v2"), out)
    write_model_index(out, latent_range=3.0, num_inference_steps=7)
    train_decoder(out, config=TINY_DECODER, progress=False)
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_video_decoder_starts_as_the_image_decoder(autoencoder_dir, variant):
    ae = Autoencoder.from_pretrained(autoencoder_dir).eval()
    video = build_video_decoder(ae, variant, temporal_attention_head_dim=4).eval()
    z = torch.randn(2, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # (B, 4, F, h, w)
    with torch.no_grad():
        per_frame = torch.stack([ae.decode(z[:, :, f]) for f in range(3)], dim=2)
        assert torch.allclose(video.decode(z), per_frame, atol=1e-5)
    trainable = {n for n, p in video.named_parameters() if p.requires_grad}
    assert trainable == set(video.temporal_parameter_names()) and trainable
    assert video.scaling_factor == ae.scaling_factor
    unfrozen = build_video_decoder(ae, variant, temporal_attention_head_dim=4, train_spatial=True)
    assert {n for n, p in unfrozen.named_parameters() if p.requires_grad} == {
        n for n, _ in unfrozen.named_parameters() if not n.startswith("encoder.")}


def test_training_changes_only_the_temporal_layers(pipeline_dir):
    ae = Autoencoder.from_pretrained(pipeline_dir / "autoencoder").state_dict()
    video = Autoencoder.from_pretrained(pipeline_dir / "video_decoder")
    assert video.config.decoder_temporal == "conv3d" and video.config.decoder_temporal_attention
    assert video.scaling_factor == pytest.approx(Autoencoder.from_pretrained(pipeline_dir / "autoencoder").scaling_factor)
    temporal = set(video.temporal_parameter_names())
    state = video.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ae.items())  # every spatial weight, encoder and decoder
    alphas = [state[k] for k in temporal if k.endswith("alpha")]
    assert alphas and any(a.abs().max() > 0 for a in alphas)  # the temporal layers left the identity
    metrics = json.loads((pipeline_dir / "runs" / "decoder" / "metrics.json").read_text())
    assert metrics["step"] == 3 and metrics["variant"] == "conv3d_attn"
    assert metrics["eval_source"] == "Moving Shapes heldout split"
    for side in ("image_decoder", "video_decoder"):
        assert set(metrics[side]) >= {"psnr_db", "ssim", "flicker_ratio", "temporal_error"}
        assert math.isfinite(metrics[side]["psnr_db"]) and metrics[side]["num_videos"] == 2
    assert metrics["trainable_parameters"] == sum(p.numel() for n, p in video.named_parameters() if n in temporal)
    assert (pipeline_dir / "runs" / "decoder" / "compare.png").is_file()


def test_folder_loads_as_a_pipeline_that_decodes_with_the_video_decoder(pipeline_dir):
    pipe = FusionFramesPipeline.from_pretrained(pipeline_dir)
    assert isinstance(pipe.video_decoder, Autoencoder) and pipe.video_decoder.is_temporal
    assert pipe.settings.latent_range == 3.0 and pipe.settings.num_inference_steps == 7  # settings kept
    z = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(pipe.decode_latents(z), pipe.video_decoder.decode(z).clamp(-1, 1))
        assert not torch.allclose(pipe.decode_latents(z), pipe.decode_latents(z, decoder="image"), atol=1e-4)


def test_resume_continues_exactly(tmp_path, autoencoder_dir):
    config = {**TINY_DECODER, "variant": "conv1d"}

    def weights(out):
        return Autoencoder.from_pretrained(out / "runs" / "decoder" / "model").state_dict()

    plain, split = fresh_out(tmp_path, autoencoder_dir, "plain"), fresh_out(tmp_path, autoencoder_dir, "split")
    train_decoder(plain, config=config, steps=4, progress=False)
    train_decoder(split, config=config, steps=2, progress=False)
    with pytest.raises(ValueError, match="cannot resume as 'conv3d'"):
        train_decoder(split, steps=4, resume=True, progress=False, variant="conv3d")
    train_decoder(split, steps=4, resume=True, progress=False)  # the saved recipe is reused
    a, b = weights(plain), weights(split)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # without a model_index.json the stage writes one (latent range measured on the clips)
    index = json.loads((split / "model_index.json").read_text())
    assert index["components"]["video_decoder"] == "Autoencoder" and index["settings"]["latent_range"] > 0


def test_train_spatial_and_data_folder(tmp_path, autoencoder_dir):
    from minifusion.viz import save_gif

    clips = tmp_path / "clips"
    clips.mkdir()
    for k in range(2):
        save_gif(torch.linspace(-1, 1, 3 * 4 * 16 * 16).reshape(3, 4, 16, 16).roll(k * 40), clips / f"c{k}.gif")
    (clips / "captions.txt").write_text("c0.gif\tsomething\nc1.gif\tsomething else\n")
    out = fresh_out(tmp_path, autoencoder_dir)
    train_decoder(out, config={**TINY_DECODER, "variant": "conv1d", "train_spatial": True}, data_dir=clips,
                  progress=False)
    ae = Autoencoder.from_pretrained(out / "autoencoder").state_dict()
    state = Autoencoder.from_pretrained(out / "video_decoder").state_dict()
    assert all(torch.equal(state[k], v) for k, v in ae.items() if k.startswith("encoder."))
    assert any(not torch.equal(state[k], v) for k, v in ae.items() if k.startswith("decoder."))
    metrics = json.loads((out / "runs" / "decoder" / "metrics.json").read_text())
    assert metrics["eval_source"] == "training folder" and metrics["train_spatial"]


def test_missing_autoencoder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"autoencoder' is missing.*python -m minifusion train autoencoder --out"):
        train_decoder(tmp_path, config=TINY_DECODER, progress=False)


@pytest.mark.parametrize("config, match", [
    ({"variant": "conv2d"}, "decoder variant 'conv2d' is not one of 'conv1d', 'conv3d', 'conv1d_attn', 'conv3d_attn'"),
    ({"train_spatial": "yes"}, "train_spatial 'yes' is not allowed"),
    ({"l1_weight": -1}, "l1_weight -1 is not allowed"),
    ({"mse_weight": 0, "l1_weight": 0}, "there is no reconstruction loss"),
    ({"eval_clips": 0}, "eval_clips 0 is not allowed"),
    ({"temporal_attention_head_dim": 0}, "temporal_attention_head_dim 0 is not allowed"),
    ({"data": {"num_frames": 1}}, "data.num_frames 1 is not allowed"),
    ({"variants": "conv1d"}, r"unknown DecoderRecipe keys \['variants'\]"),
])
def test_bad_configs(config, match):
    with pytest.raises(ValueError, match=match):
        load_recipe(DecoderRecipe, config)


def test_bad_arguments(tmp_path, autoencoder_dir):
    out = fresh_out(tmp_path, autoencoder_dir)
    with pytest.raises(ValueError, match="decoder variant 'big' is not one of"):
        train_decoder(out, config=TINY_DECODER, variant="big", progress=False)
    with pytest.raises(ValueError, match="temporal_attention_head_dim 16 does not divide"):
        train_decoder(out, config={**TINY_DECODER, "temporal_attention_head_dim": 16}, progress=False)
    recipe = DecoderRecipe()
    assert (recipe.variant, recipe.train_spatial, recipe.training.steps, recipe.training.batch_size,
            recipe.training.lr, recipe.data.num_frames, recipe.data.frame_skip) == (
        "conv3d_attn", False, 600, 4, 1e-3, 8, 1)
