"""The learned toy metrics as the ablation tables use them (``minifusion.eval.ablation_tables``).

- Table 1 (FusionFrames section 4.1): ``score_keyframe_pipeline`` generates keyframe videos (no
  interpolation, so only the temporal variant under test differs between runs) from a trained
  pipeline folder and reduces ``evaluate_pipeline``'s report to one number per column: FVD, IS of the
  direction head (the attribute a temporal layer has to get right), CLIPSIM, caption accuracy (the
  mean over the prompt's attributes; the share with every attribute right is kept as
  ``whole_caption_accuracy``), and the weight-free pixel direction check.
- Table 2 (section 4.2): ``frechet_video_distance_of_clips`` compares interpolated clips with the
  true clips they were interpolated from.
"""

from __future__ import annotations

from pathlib import Path

import torch


def score_keyframe_pipeline(folder: str | Path, *, num_videos: int, seed: int, num_inference_steps: int,
                            device: torch.device | str = "cpu") -> dict:
    """Table 1's columns for the pipeline in ``folder`` (keyframes only), over ``num_videos`` prompts."""
    from minifusion.eval.evaluate import evaluate_pipeline
    from minifusion.pipeline import FusionFramesPipeline

    pipe = FusionFramesPipeline.from_pretrained(folder, device=device)
    result = evaluate_pipeline(pipe, num_videos=num_videos, seed=seed, passes=0, steps=num_inference_steps,
                               reconstruction_clips=0, progress=False)
    scores = {}
    for group in ("all", "heldout_pairs"):
        g = result["groups"].get(group)
        if g is None:
            continue
        prefix = "" if group == "all" else "heldout_"
        scores.update({f"{prefix}fvd": g["fvd"], f"{prefix}inception_score": g["inception_score"]["direction"],
                       f"{prefix}clipsim": g["clipsim"], f"{prefix}caption_accuracy": g["caption_accuracy"]["mean"],
                       f"{prefix}caption_accuracy_chance": g["caption_accuracy"]["mean_chance"],
                       f"{prefix}whole_caption_accuracy": g["caption_accuracy"]["caption"],
                       f"{prefix}shape_accuracy": g["caption_accuracy"].get("shape"),
                       f"{prefix}color_accuracy": g["caption_accuracy"].get("color"),
                       f"{prefix}classifier_direction_accuracy": g["caption_accuracy"].get("direction"),
                       f"{prefix}direction_accuracy": g["pixel"]["direction_accuracy"]})
    scores["fvd_real_vs_real"] = result["groups"]["all"]["real"]["fvd_real_vs_real"]
    scores["seconds_per_video"] = result["seconds"]["generation"] / result["num_videos"]
    return scores


def frechet_video_distance_of_clips(videos: torch.Tensor, reference: torch.Tensor) -> float:
    """FVD analogue between two sets of clips (N, 3, F, 64, 64) in [-1, 1] (at least 2 each), on the CPU."""
    from minifusion.eval.toy_metrics import ToyMetrics

    metrics = ToyMetrics.from_pretrained()
    return metrics.fvd(metrics.measure(videos.cpu()), metrics.measure(reference.cpu()))
