"""Interpolated frames measured from the pixels: known answers for the per-frame scores, the split by position
and clip kind, the bars, the evaluation set and the keys ``evaluate_interpolation`` returns."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from minifusion.diffusion import DDIMScheduler, DPMSolverMultistepScheduler
from minifusion.eval.interpolation_eval import evaluate_interpolation, evaluation_clips, linear_blend
from minifusion.eval.interpolation_metrics import (
    KINDS,
    METHODS,
    POSITIONS,
    format_interpolation_report,
    frame_scores,
    interpolation_bars,
    latent_frame_mse,
    position_groups,
    summarize_frames,
    summarize_interpolation,
)
from minifusion.eval.pixel_metrics import psnr

SIZE = 32


def disc(x: float, y: float = 16.0, radius: float = 5.0, size: int = SIZE) -> torch.Tensor:
    """(3, H, W) white disc with hard edges centred at pixel coordinates (x, y) on black, in [-1, 1]."""
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    inside = (centres[None, :] - x) ** 2 + (centres[:, None] - y) ** 2 <= radius**2  # (H, W)
    return torch.where(inside, 1.0, -1.0).expand(3, size, size).clone()


def video(*frames: torch.Tensor) -> torch.Tensor:
    """Frames (3, H, W) -> one video (1, 3, F, H, W)."""
    return torch.stack(frames, dim=1)[None]


# -- per frame --------------------------------------------------------------------------------------
def test_identical_frames_score_perfectly():
    truth = video(disc(10), disc(14), disc(18))
    s = frame_scores(truth.clone(), truth)
    assert torch.allclose(s["ssim"], torch.ones(1, 3, dtype=torch.float64))
    assert (s["mse"] == 0).all() and (s["centroid_error_px"] == 0).all()
    assert (s["objects"] == 1).all() and s["right_count"].all() and s["hit"].all()
    r = summarize_frames(s, [0, 1, 2])
    assert r["psnr_db"] == math.inf and r["ssim"] == pytest.approx(1.0) and r["centroid_error_px"] == 0
    assert r["one_object_rate"] == 1 and r["hit_rate"] == 1 and r["num_frames"] == 3 and r["latent_mse"] is None


def test_a_shift_of_two_pixels_is_a_centroid_error_of_two_pixels_and_no_hit():
    truth = video(disc(12, 14), disc(12, 14))
    shifted = video(disc(14, 14), disc(12, 15))  # 2 px right; 1 px down
    s = frame_scores(shifted, truth)
    assert s["centroid_error_px"][0, 0].item() == pytest.approx(2.0, abs=0.1)
    assert s["centroid_error_px"][0, 1].item() == pytest.approx(1.0, abs=0.1)
    assert s["right_count"].all()
    assert s["hit"].tolist() == [[False, True]]  # 2 px > 1.5 px, 1 px <= 1.5 px
    assert frame_scores(shifted, truth, hit_pixels=2.5)["hit"].all()
    assert (s["ssim"] < 0.9).all()


def test_a_blend_of_two_far_apart_discs_is_two_objects_even_with_the_right_centroid():
    truth = video(disc(16))
    ghost = video(0.5 * disc(8) + 0.5 * disc(24))  # two half-strength copies around the true place
    s = frame_scores(ghost, truth)
    assert s["objects"].item() == 2 and s["true_objects"].item() == 1
    assert not s["right_count"].item() and not s["hit"].item()
    assert s["centroid_error_px"].item() == pytest.approx(0.0, abs=0.1)  # the centroid alone would not see it


def test_frames_without_foreground_have_no_centroid_and_no_hit():
    truth = video(disc(16))
    empty = -torch.ones_like(truth)
    s = frame_scores(empty, truth)
    assert math.isnan(s["centroid_error_px"].item()) and not s["hit"].item() and s["objects"].item() == 0
    assert math.isnan(summarize_frames(s, [0])["centroid_error_px"])


# -- positions, kinds, aggregation ------------------------------------------------------------------
def test_position_groups():
    g = position_groups(9, 3)  # keyframes at 0, 4, 8
    assert g == {"outer": [1, 3, 5, 7], "middle": [2, 6], "all": [1, 2, 3, 5, 6, 7]}
    assert position_groups(29, 3)["middle"] == [2, 6, 10, 14, 18, 22, 26]
    assert position_groups(7, 5)["middle"] == [2, 3, 4] and position_groups(3, 1)["middle"] == []


def test_aggregation_splits_outer_and_middle_positions():
    truth = video(*(disc(8 + j) for j in range(9)))  # (1, 3, 9, H, W): keyframes at 0, 4, 8
    frames = truth.clone()
    outer = position_groups(9, 3)["outer"]
    for j in outer:
        frames[0, :, j] = disc(8 + j + 2)  # the outer frames 2 px off, the middle ones exact
    latent = torch.full((1, 9), math.nan, dtype=torch.float64)
    latent[0, outer], latent[0, [2, 6]] = 0.5, 2.0
    out = summarize_interpolation({"model": frame_scores(frames, truth)}, kinds=["single_shape"],
                                  latent_mse={"model": latent})
    r = out["by_position"]["model"]
    assert r["outer"]["centroid_error_px"] == pytest.approx(2.0, abs=0.1) and r["outer"]["hit_rate"] == 0
    assert r["middle"]["centroid_error_px"] == pytest.approx(0.0) and r["middle"]["hit_rate"] == 1
    assert r["middle"]["psnr_db"] == math.inf and r["middle"]["ssim"] == pytest.approx(1.0)
    assert r["all"]["hit_rate"] == pytest.approx(2 / 6) and r["all"]["num_frames"] == 6
    assert r["outer"]["num_frames"] == 4 and r["middle"]["num_frames"] == 2
    assert r["outer"]["latent_mse"] == pytest.approx(0.5) and r["middle"]["latent_mse"] == pytest.approx(2.0)
    assert r["all"]["latent_mse"] == pytest.approx((4 * 0.5 + 2 * 2.0) / 6)  # keyframes (NaN) left out
    assert out["by_kind"]["single_shape"]["num_clips"] == 1 and out["by_kind"]["two_shapes"] is None
    assert out["by_kind"]["single_shape"]["by_position"] == out["by_position"]


def test_psnr_is_pooled_over_frames_like_the_recipe_psnr():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 3, 9, SIZE, SIZE, generator=g) - 0.5  # [-0.5, 0.5]: no clamping below
    offset = torch.zeros(9)
    offset[[1, 3, 5, 7]], offset[[2, 6]] = 0.1, 0.2
    frames = truth + offset[None, None, :, None, None]
    r = summarize_interpolation({"model": frame_scores(frames, truth)})["by_position"]["model"]
    assert r["outer"]["psnr_db"] == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-4)  # 26.02 dB
    assert r["middle"]["psnr_db"] == pytest.approx(10 * math.log10(4 / 0.04), abs=1e-4)  # 20.00 dB
    keep = [1, 2, 3, 5, 6, 7]
    assert r["all"]["psnr_db"] == pytest.approx(psnr(frames[:, :, keep], truth[:, :, keep]), abs=1e-4)


def test_aggregation_splits_clip_kinds():
    truth = torch.cat([video(*(disc(8 + j) for j in range(5)))] * 3)  # 3 clips of 5 frames (2 keyframes)
    frames = truth.clone()
    frames[1, :, 1:4] = torch.stack([disc(8 + j + 3) for j in range(1, 4)], dim=1)  # clip 1 off by 3 px
    out = summarize_interpolation({"model": frame_scores(frames, truth)}, kinds=["single_shape", "two_shapes", None])
    assert out["by_kind"]["single_shape"]["num_clips"] == 1 and out["by_kind"]["two_shapes"]["num_clips"] == 1
    assert out["by_kind"]["single_shape"]["by_position"]["model"]["all"]["hit_rate"] == 1
    assert out["by_kind"]["two_shapes"]["by_position"]["model"]["all"]["hit_rate"] == 0
    assert out["by_position"]["model"]["all"]["hit_rate"] == pytest.approx(2 / 3)  # unknown kinds count here only


def test_latent_frame_mse():
    a, b = torch.zeros(2, 4, 3, 2, 2), torch.zeros(2, 4, 3, 2, 2)
    b[1, :, 2] = 3.0
    assert latent_frame_mse(a, b).tolist() == [[0, 0, 0], [0, 0, 9]]


@pytest.mark.parametrize("call, message", [
    (lambda t: frame_scores(t[:, :, :2], t), r"same shape, got \(1, 3, 2, 32, 32\) and \(1, 3, 3, 32, 32\)"),
    (lambda t: frame_scores((t + 1) * 127.5, t), r"frames values span \[0, 255\]; frames must be in \[-1, 1\]"),
    (lambda t: frame_scores(t, t * 2), r"truth values span \[-2, 2\]"),
    (lambda t: frame_scores(t[:, :1], t[:, :1]), r"RGB videos \(B, 3, F, H, W\), got shape \(1, 1, 3, 32, 32\)"),
    (lambda t: frame_scores(t * math.nan, t), "NaN or inf"),
    (lambda t: frame_scores(t, t, hit_pixels=0), "hit_pixels 0 is not allowed"),
    (lambda t: position_groups(10, 3), "a window of 10 frames does not fit frames_per_pair 3"),
    (lambda t: position_groups(9, 0), "frames_per_pair 0 is not allowed"),
    (lambda t: summarize_interpolation({"model": frame_scores(t, t)}, kinds=["three_shapes"]),
     r"kinds \['three_shapes'\] are not allowed"),
    (lambda t: summarize_interpolation({"model": frame_scores(t, t)}, kinds=["single_shape"] * 2),
     "1 clips, got 2 kinds"),
    (lambda t: latent_frame_mse(torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 4, 3, 2, 2)), "same shape"),
])
def test_bad_inputs(call, message):
    truth = video(disc(10), disc(12), disc(14))
    with pytest.raises(ValueError, match=message):
        call(truth)


# -- bars and report --------------------------------------------------------------------------------
def _entry(psnr_db, ssim=0.9, latent_mse=None, hit_rate=1.0):
    return {"psnr_db": psnr_db, "ssim": ssim, "centroid_error_px": 0.3, "one_object_rate": 1.0, "hit_rate": hit_rate,
            "latent_mse": latent_mse, "num_frames": 8}


def _results(model: dict, latent_blend: dict) -> dict:
    other = {pos: _entry(30.0) for pos in POSITIONS}
    pass1 = {"frame_skip": 4.0, "by_position": {"model": model, "pixel_blend": other, "latent_blend": latent_blend,
                                                 "autoencoder": other},
             "by_kind": {"single_shape": None, "two_shapes": None}}
    return {"num_clips": 4, "pass1": pass1, "pass2": None}


def test_bars_pass_when_the_model_beats_the_latent_blend():
    blend = {pos: _entry(30.0, 0.90, 0.02, 0.8) for pos in POSITIONS}
    good = {"outer": _entry(32.2, 0.95, 0.01, 0.9), "middle": _entry(32.0, 0.95, 0.01, 0.9),
            "all": _entry(32.1, 0.95, 0.01, 0.9)}
    bars = interpolation_bars(_results(good, blend))
    assert len(bars) == 9 and all(b["passed"] for b in bars)
    assert set(bars[0]) == {"name", "value", "target", "passed"}
    flat = [b for b in bars if "outer - PSNR middle" in b["name"]][0]
    assert flat["value"] == pytest.approx(0.2) and flat["target"] == 0.5


def test_bars_fail_where_the_model_falls_short():
    blend = {pos: _entry(30.0, 0.90, 0.02, 0.8) for pos in POSITIONS}
    bad = {"outer": _entry(31.0, 0.95, 0.01, 0.9), "middle": _entry(29.0, 0.85, 0.03, 0.5),  # middle worse
           "all": _entry(30.5, 0.92, 0.015, 0.8)}
    bars = {b["name"]: b["passed"] for b in interpolation_bars(_results(bad, blend))}
    middle = {n: p for n, p in bars.items() if "middle frames" in n}
    assert len(middle) == 4 and not any(middle.values())
    every = {n: p for n, p in bars.items() if "all 3 positions" in n}
    assert all(every.values())  # equal hit rate passes ("at least")
    assert not bars["pass 1: model |PSNR outer - PSNR middle| (dB) at most"]  # 2 dB apart
    report = format_interpolation_report(_results(bad, blend))
    assert "FAIL  pass 1, middle frames: model PSNR" in report and "PASS  pass 1, all 3 positions" in report
    assert "pass1  middle   latent blend" in report


def test_bars_need_an_evaluation_result():
    with pytest.raises(ValueError, match="'pass1' holds 'by_position'"):
        interpolation_bars({"pass1": {"psnr_db": 30.0}})
    with pytest.raises(ValueError, match="'pass1' holds 'by_position'"):
        format_interpolation_report({"pass1": None})


# -- the evaluation set and evaluate_interpolation ----------------------------------------------------
def test_evaluation_clips_are_the_first_of_each_kind_over_the_speeds():
    sel = evaluation_clips(split="heldout", num_clips=6, num_two_shape_clips=2, num_keyframes=3, size=16)
    attrs = [sel.clip_params(i).attributes for i in range(len(sel))]
    assert len(sel) == 8 and sel.indices == sorted(sel.indices)
    assert all(a["motion"] == "moves" for a in attrs)
    assert sum(a["num_objects"] == 2 for a in attrs) == 2
    speeds = sorted(a["speed"] for a in attrs if a["num_objects"] == 1)
    assert speeds == ["fast", "fast", "normal", "normal", "slow", "slow"]
    # the first ones of each kind (and speed) in the split, none skipped
    base = sel.clips
    kinds = [(a["motion"], a["num_objects"], a["speed"]) for a in
             (base.clip_params(i).attributes for i in range(max(sel.indices) + 1))]
    for kind in [("moves", 2, "normal")] + [("moves", 1, speed) for speed in ("normal", "slow", "fast")]:
        first = [i for i, k in enumerate(kinds) if k == kind][:2]
        assert [i for i in sel.indices if kinds[i] == kind] == first, kind
    assert torch.equal(sel[0]["video"], base[sel.indices[0]]["video"])
    assert evaluation_clips(num_clips=8, num_keyframes=3, size=16).clip_params(0) is not None
    assert len(evaluation_clips(num_clips=8, num_keyframes=3, size=16)) == 10  # default: a quarter two-shape
    with pytest.raises(ValueError, match="num_two_shape_clips -1 is not allowed"):
        evaluation_clips(num_clips=2, num_two_shape_clips=-1)
    with pytest.raises(ValueError, match="hold .* two-shape clips; asked for"):
        evaluation_clips(num_clips=1, num_two_shape_clips=500, num_keyframes=3, size=16)


class _IdentityAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        return x

    def decode(self, x):
        return x


def test_evaluate_interpolation_reports_every_method_position_and_kind():
    """With the identity "autoencoder" the round trip is the truth (the ceiling is perfect) and a model that
    blends its keyframe latents scores exactly as both blends."""
    def blend(latents, *, frame_skip, generator):
        return linear_blend(latents, 3)

    res = evaluate_interpolation(None, None, _IdentityAutoencoder(), interpolate_fn=blend, num_clips=3,
                                 num_two_shape_clips=1, num_keyframes=3, size=16)
    assert res["num_clips"] == 4 and res["clip_kinds"] == {"single_shape": {"normal": 1, "slow": 1, "fast": 1},
                                                          "two_shapes": 1, "unknown": 0}
    for key in ("pass1", "pass2"):
        r = res[key]
        for name in ("psnr_db", "linear_blend_psnr_db", "latent_blend_psnr_db", "autoencoder_psnr_db", "latent_mse",
                     "latent_blend_latent_mse", "frame_skip", "interpolation_seconds"):
            assert name in r
        assert set(r["by_position"]) == set(METHODS) and set(r["by_kind"]) == set(KINDS)
        assert r["by_kind"]["single_shape"]["num_clips"] == 3 and r["by_kind"]["two_shapes"]["num_clips"] == 1
        for part in [r] + [r["by_kind"][k] for k in KINDS]:
            for method in METHODS:
                assert set(part["by_position"][method]) == set(POSITIONS)
        ceiling = r["by_position"]["autoencoder"]
        for pos in POSITIONS:
            assert ceiling[pos]["psnr_db"] == math.inf and ceiling[pos]["hit_rate"] == 1
            assert ceiling[pos]["centroid_error_px"] == 0 and ceiling[pos]["latent_mse"] is None
            model, pixel = r["by_position"]["model"][pos], r["by_position"]["pixel_blend"][pos]
            assert model["psnr_db"] == pytest.approx(pixel["psnr_db"]) and model["hit_rate"] == pixel["hit_rate"]
            assert model["latent_mse"] == pytest.approx(r["by_position"]["latent_blend"][pos]["latent_mse"])
        # the new numbers agree with the top-level keys
        assert r["by_position"]["model"]["all"]["psnr_db"] == pytest.approx(r["psnr_db"], abs=1e-3)
        assert r["by_position"]["pixel_blend"]["all"]["psnr_db"] == pytest.approx(r["linear_blend_psnr_db"], abs=1e-3)
        assert r["by_position"]["model"]["all"]["latent_mse"] == pytest.approx(r["latent_mse"], rel=1e-4)
    assert len(interpolation_bars(res)) == 9
    assert "two-shape clips (1)" in format_interpolation_report(res)


class _CountingDDIM(DDIMScheduler):
    calls = 0

    def set_timesteps(self, *args, **kwargs):
        type(self).calls += 1
        return super().set_timesteps(*args, **kwargs)


def test_evaluate_interpolation_on_a_tiny_model_uses_the_given_sampler():
    from minifusion.models import Autoencoder
    from minifusion.models.interpolation_unet import InterpolationUNet

    torch.manual_seed(0)
    model = InterpolationUNet({"block_out_channels": (8, 16), "layers_per_block": 1, "norm_groups": 4,
                               "attention_head_dim": 8, "cross_attention_dim": 16, "sample_size": 8}).eval()
    autoencoder = Autoencoder({"block_out_channels": (8, 16), "norm_groups": 4, "sample_size": 16}).eval()
    kwargs = dict(num_clips=2, num_two_shape_clips=1, num_keyframes=3, size=16, num_inference_steps=2)
    spy = _CountingDDIM(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    res = evaluate_interpolation(model, spy, autoencoder, **kwargs)  # default: a fresh DDIM from the config
    assert _CountingDDIM.calls == 0 and res["sampler"] == "DDIMScheduler (leading spacing)"
    res = evaluate_interpolation(model, None, autoencoder, sampler=spy, **kwargs)
    assert _CountingDDIM.calls == 2 and res["sampler"] == "_CountingDDIM (leading spacing)"  # used as is, once per pass
    dpm = DPMSolverMultistepScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                                      algorithm_type="sde-dpmsolver++")
    res = evaluate_interpolation(model, None, autoencoder, sampler=dpm, **kwargs)
    assert res["sampler"] == "DPMSolverMultistepScheduler (sde-dpmsolver++, linspace spacing)"
    trailing = DPMSolverMultistepScheduler.from_config(dpm.config, timestep_spacing="trailing", thresholding=True)
    res = evaluate_interpolation(model, None, autoencoder, sampler=trailing, **kwargs)
    assert res["sampler"] == "DPMSolverMultistepScheduler (sde-dpmsolver++, trailing spacing, thresholding)"
    for key in ("pass1", "pass2"):
        r = res[key]
        assert r["by_kind"]["two_shapes"]["num_clips"] == 1 and r["by_kind"]["single_shape"]["num_clips"] == 2
        for method in METHODS:
            entry = r["by_position"][method]["middle"]
            assert 0 <= entry["hit_rate"] <= 1 and math.isfinite(entry["psnr_db"])
            assert (entry["latent_mse"] is not None) == (method in ("model", "latent_blend"))
    with pytest.raises(ValueError, match="sampler or interpolate_fn, not both"):
        evaluate_interpolation(model, None, autoencoder, sampler=dpm, interpolate_fn=lambda *a, **k: None, **kwargs)
