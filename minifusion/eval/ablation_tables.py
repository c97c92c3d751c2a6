"""What each of the paper's ablation tables trains and measures at toy scale (run by ``ablation``).

- **Table 1** (FusionFrames section 4.1): the keyframes stage with each of the four temporal variants
  (``KeyframeUNet``'s ``conv1d_attn1d_layers``, ``conv1d_attn1d_blocks``, ``conv3d_attn1d_blocks``,
  ``conv1d_attn3d_blocks``), all from the same frozen T2I U-Net. Measured on generated keyframe
  videos: FVD, IS, CLIPSIM and caption accuracy (``minifusion.eval`` metrics), plus the pixel
  direction accuracy the motion check uses.
- **Table 2** (section 4.2): the FusionFrames interpolation network against masked-frame
  interpolation (``interpolation`` and ``mfi`` stages), same budget, both from the T2I U-Net. Measured
  by interpolating the true keyframes of held-out clips: PSNR of the middle frames (pass 1 and 2),
  flicker ratio, FVD against the true clips, and seconds per video.
- **Table 3** (section 4.3): the image decoder against the temporal video decoders (``decoder``
  stage, ``--variant``), decoding held-out clips: PSNR, SSIM, flicker ratio and parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from minifusion.eval.ablation import AblationOptions, Column, TableSpec

KEYFRAME_VARIANTS = ("conv1d_attn1d_layers", "conv1d_attn1d_blocks", "conv3d_attn1d_blocks", "conv1d_attn3d_blocks")
DECODER_VARIANTS = ("conv1d", "conv3d", "conv1d_attn", "conv3d_attn")
T2I_PARTS = ("autoencoder", "text_encoder", "unet", "scheduler")


def _device(options: AblationOptions) -> torch.device:
    from minifusion.training.precision import resolve_device

    return resolve_device(options.device)


# -- table 1 -----------------------------------------------------------------------------------------
def evaluate_keyframes(folder: Path, variant: str, seed: int, options: AblationOptions) -> dict:
    """Generate keyframe videos from the run's pipeline and score them (see the module docstring)."""
    from minifusion.eval.keyframe_scores import score_keyframe_pipeline

    return score_keyframe_pipeline(folder, num_videos=options.num_videos, seed=seed,
                                   num_inference_steps=options.num_inference_steps, device=_device(options))


# -- table 2 -----------------------------------------------------------------------------------------
def _load_interpolator(folder: Path, variant: str):
    from minifusion.diffusion import DDPMScheduler
    from minifusion.models import InterpolationUNet, MaskedInterpolationUNet

    model_class, name = {"fusionframes": (InterpolationUNet, "interpolation"),
                         "mfi": (MaskedInterpolationUNet, "mfi")}[variant]
    model = model_class.from_pretrained(folder / f"{name}_unet")
    from minifusion.training.recipes.interpolation import INTERPOLATION_SAMPLER_OPTIONS

    config = json.loads((folder / f"{name}_scheduler" / "scheduler_config.json").read_text())
    config.pop("_class_name", None)
    # every run sampled alike, whichever spacing its folder was written with (the pipeline's: trailing)
    config.update(INTERPOLATION_SAMPLER_OPTIONS)
    return model, DDPMScheduler.from_config(config)


def evaluate_interpolator(folder: Path, variant: str, seed: int, options: AblationOptions) -> dict:
    from minifusion.eval.interpolation_eval import evaluate_interpolation
    from minifusion.eval.video_metrics import frame_difference
    from minifusion.models import Autoencoder

    device = _device(options)
    autoencoder = Autoencoder.from_pretrained(folder / "autoencoder").to(device).eval()
    if variant == "latent_blend":  # no network: the keyframe latents blended linearly
        from minifusion.eval.interpolation_eval import linear_blend

        model, scheduler = None, None
        interpolate_fn = lambda latents, frame_skip, generator: linear_blend(latents, 3)  # noqa: E731
    else:
        model, scheduler = _load_interpolator(folder, variant)
        model, interpolate_fn = model.to(device).eval(), None
    result = evaluate_interpolation(model, scheduler, autoencoder, num_clips=options.num_clips,
                                    num_inference_steps=options.num_inference_steps, seed=1000 + seed,
                                    interpolate_fn=interpolate_fn, return_frames=True)
    pass1, pass2 = result["pass1"], result["pass2"]
    frames = pass1["frames"]
    by_position = pass1["by_position"]
    model_all = by_position["model"]["all"]
    metrics = {"psnr_pass1_db": pass1["psnr_db"], "psnr_pass2_db": pass2["psnr_db"] if pass2 else None,
               "latent_mse_pass1": pass1["latent_mse"],
               # from the pixels, every generated frame of pass 1 (minifusion.eval.interpolation_metrics)
               "ssim_pass1": model_all["ssim"], "centroid_error_px_pass1": model_all["centroid_error_px"],
               "one_object_rate_pass1": model_all["one_object_rate"], "hit_rate_pass1": model_all["hit_rate"],
               # next to a keyframe (positions 1, 3) against the middle (2): an interpolator whose outer
               # noisy slots have no input path at init is blurred there
               "outer_middle_gap_db": abs(by_position["model"]["outer"]["psnr_db"]
                                          - by_position["model"]["middle"]["psnr_db"]),

               # mean |frame-to-frame change| of the interpolated clips relative to the true clips' (1 = as much)
               "flicker_ratio": float(frame_difference(frames["model"]).mean() / frame_difference(frames["truth"]).mean()),
               "seconds_per_video": pass1["interpolation_seconds"] / result["num_clips"],
               # CPU time of this process: with one torch thread, the pass's cost whatever else the machine runs
               "cpu_seconds_per_video": pass1["interpolation_cpu_seconds"] / result["num_clips"],
               "parameters": 0 if model is None else sum(p.numel() for p in model.parameters())}
    from minifusion.eval.keyframe_scores import frechet_video_distance_of_clips

    # The metric networks see 8 frames 4 source frames apart; on a 29-frame clip those are exactly the
    # given keyframes, the same for every interpolator. So FVD is taken on the frames the interpolator
    # made: for each phase 1, 2, 3 the 7 frames phase, phase + 4, ... (resampled to 8 by the metric)
    # against the true frames at the same positions, and the mean over the three phases is reported.
    model_frames, truth = frames["model"], frames["truth"]
    per_phase = [frechet_video_distance_of_clips(model_frames[:, :, p::4], truth[:, :, p::4]) for p in (1, 2, 3)]
    metrics["fvd"] = sum(per_phase) / len(per_phase)
    metrics["fvd_per_phase"] = per_phase
    return metrics


# -- table 3 -----------------------------------------------------------------------------------------
def evaluate_decoder(folder: Path, variant: str, seed: int, options: AblationOptions) -> dict:
    """The decoder stage's own held-out evaluation (image and video decoder on the same clips)."""
    if variant == "image":  # the image decoder is not trained: read it from the conv1d run of the same seed
        folder = folder.parent.parent / DECODER_VARIANTS[0] / f"seed_{seed}"
    path = folder / "runs" / "decoder" / "metrics.json"
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist: the image decoder row is measured inside the "
                         f"{DECODER_VARIANTS[0]} run of the same seed; run that variant first")
    metrics = json.loads(path.read_text())
    report = metrics["image_decoder" if variant == "image" else "video_decoder"]
    parameters = metrics["parameters"] - (metrics["trainable_parameters"] if variant == "image" else 0)
    return {"psnr_db": report["psnr_db"], "ssim": report["ssim"], "flicker_ratio": report["flicker_ratio"],
            "temporal_error": report["temporal_error"], "parameters": parameters,
            "trainable_parameters": 0 if variant == "image" else metrics["trainable_parameters"]}


TABLES: dict[str, TableSpec] = {
    "table1": TableSpec(
        key="table1", title="Table 1 at toy scale: temporal layers in the spatial blocks vs separate temporal blocks",
        paper="separate temporal blocks (Conv1dAttn1dBlocks) give the best FVD and CLIPSIM; temporal layers mixed "
              "into the spatial blocks the worst (FusionFrames Table 1, section 4.1).",
        variants=KEYFRAME_VARIANTS, stage_of=lambda v: "keyframes", train_kwargs=lambda v: {"temporal": v},
        # motion checks only at the end, one video per prompt: the table scores every run itself
        config_of=lambda v: {"training": {"lr": 1e-3}, "motion_check_every": 0, "motion_samples_per_prompt": 1},
        links=T2I_PARTS,
        default_steps=1000,
        columns=(Column("fvd", "FVD", "{:.2f}", "lower"), Column("inception_score", "IS", "{:.3f}", "higher"),
                 Column("clipsim", "CLIPSIM", "{:.4f}", "higher"),
                 Column("caption_accuracy", "caption accuracy", "{:.3f}", "higher"),
                 Column("whole_caption_accuracy", "whole caption", "{:.3f}", "higher"),
                 Column("classifier_direction_accuracy", "direction (classifier)", "{:.3f}", "higher"),
                 Column("direction_accuracy", "direction (pixels)", "{:.3f}", "higher")),
        evaluate=evaluate_keyframes,
        notes=("FVD/IS/CLIPSIM/caption accuracy use the project's own small classifier and text-video model "
               "(minifusion.eval), not I3D / Inception / CLIP; compare variants with each other, not with the "
               "paper's absolute numbers.",
               "caption accuracy: the classifier's accuracy averaged over the 7 attributes a prompt fixes "
               "(colour, shape, motion, direction, speed, size, background; guessing uniformly scores 0.27); "
               "whole caption: the share of videos with all of them right; direction: the share moving the "
               "prompted way, judged by the classifier (9 classes: 8 directions and none) and by the "
               "object's centroid in the pixels.")),
    "table2": TableSpec(
        key="table2", title="Table 2 at toy scale: FusionFrames interpolation vs masked-frame interpolation (MFI)",
        paper="FusionFrames interpolation has better FVD than MFI and is over 3x faster per video "
              "(FusionFrames Table 2, section 4.2).",
        variants=("fusionframes", "mfi", "latent_blend"),
        stage_of=lambda v: {"fusionframes": "interpolation", "mfi": "mfi", "latent_blend": None}[v],
        train_kwargs=lambda v: {}, links=T2I_PARTS,
        # the stage's own held-out report is skipped: the table evaluates every run itself (more clips)
        config_of=lambda v: {"training": {"lr": 3e-4}, "eval_clips": 0},
        default_steps=1500,
        columns=(Column("psnr_pass1_db", "PSNR pass 1 (dB)", "{:.2f}", "higher"),
                 Column("ssim_pass1", "SSIM pass 1", "{:.4f}", "higher"),
                 Column("centroid_error_px_pass1", "centroid error pass 1 (px)", "{:.2f}", "lower"),
                 Column("one_object_rate_pass1", "one object pass 1", "{:.3f}", "higher"),
                 Column("hit_rate_pass1", "hit pass 1", "{:.3f}", "higher"),
                 Column("outer_middle_gap_db", "outer - middle gap (dB)", "{:.2f}", "lower"),
                 Column("psnr_pass2_db", "PSNR pass 2 (dB)", "{:.2f}", "higher"),
                 Column("flicker_ratio", "flicker ratio", "{:.3f}", "lower"),
                 Column("fvd", "FVD", "{:.2f}", "lower"),
                 Column("cpu_seconds_per_video", "CPU s / video", "{:.2f}", "lower"),
                 Column("seconds_per_video", "wall s / video", "{:.2f}", "lower"),
                 Column("parameters", "parameters", "{:,.0f}")),
        # 2: FVD of the interpolated frames (1 saw keyframes only); 3: CPU seconds next to wall seconds;
        # 4: SSIM, centroid, one object, hit, outer-middle gap, the latent blend row; 5: trailing spacing
        evaluate=evaluate_interpolator, eval_version=5,
        notes=("Interpolating the true keyframes of held-out clips (8 -> 29 frames) with DDIM (the evaluation's "
               "steps, trailing timestep spacing, context guidance 1.25); s / video: the "
               "interpolation pass's time divided by the batch of clips, as CPU time of the process (with "
               "--threads 1 it does not depend on what else runs on the machine) and as wall time.",
               "SSIM, centroid error, one object (as many objects as the truth), hit (right count and "
               "centroid within 1.5 px) and the outer - middle gap (|PSNR at positions 1, 3 - PSNR at 2| of "
               "each keyframe pair): every generated frame of pass 1, from the pixels "
               "(minifusion.eval.interpolation_metrics).",
               "latent_blend: no network, the keyframe latents blended linearly and decoded (the baseline a "
               "latent interpolator must beat); the same clips, so its row repeats over seeds only through "
               "the clip windows.",
               "FVD: of the interpolated frames only (frames 1, 5, ..., 25 and the two other phases, each "
               "against the true frames at the same positions, mean of the three); the metric's 8 frames of a "
               "29-frame clip would be the given keyframes.")),
    "table3": TableSpec(
        key="table3", title="Table 3 at toy scale: the image decoder vs temporal video decoders",
        paper="temporal decoders improve PSNR/SSIM and flicker over the image decoder; 3D-conv + temporal "
              "attention is best (FusionFrames Table 3, section 4.3).",
        variants=("image", *DECODER_VARIANTS),
        stage_of=lambda v: None if v == "image" else "decoder",
        train_kwargs=lambda v: {"variant": v}, config_of=lambda v: {}, links=("autoencoder",),
        default_steps=600,
        columns=(Column("psnr_db", "PSNR (dB)", "{:.2f}", "higher"), Column("ssim", "SSIM", "{:.4f}", "higher"),
                 Column("flicker_ratio", "flicker ratio", "{:.3f}", "lower"),
                 Column("parameters", "parameters", "{:,.0f}"),
                 Column("trainable_parameters", "trained parameters", "{:,.0f}")),
        evaluate=evaluate_decoder,
        notes=("The image decoder row is the same held-out evaluation inside each conv1d run (it is not "
               "retrained), so run the video variants first.",)),
}
