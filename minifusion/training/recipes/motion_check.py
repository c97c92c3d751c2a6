"""The keyframes stage's motion check: sample motion prompts during training and measure them.

A video model learns appearance long before motion, and its loss says
nothing about motion. ``MotionCheck`` is a trainer callback that, every N steps, samples the
prompts ``a {color} {shape} moves {direction}`` with the EMA weights through the pipeline's
keyframe sampler and measures the decoded keyframes from their pixels
(``minifusion.eval.motion_report``): the fraction with the prompted colour, the fraction moving
in the prompted direction (chance 1/8) and the background flicker. One row per check goes to
``motion.csv`` (rewritten atomically; a resumed run replaces its later rows);
``motion_samples.png`` shows the latest check. Used by ``recipes/keyframes.py``.

Taught in notebook 08 (notebooks/08_keyframes.ipynb).
"""

from __future__ import annotations

import contextlib
import csv
import time
from pathlib import Path

import torch

from minifusion.data import parse_caption
from minifusion.models.keyframe_unet import KeyframeUNet
from minifusion.models.text_encoder import TextEncoder
from minifusion.training.trainer import Trainer

MOTION_CSV = "motion.csv"
MOTION_COLUMNS = ("step", "num_videos", "color_accuracy", "direction_accuracy", "moving_fraction",
                  "background_flicker", "seconds")
# one prompt per direction; no held-out (colour, shape) pair
DEFAULT_MOTION_PROMPTS = ("a red circle moves right", "a blue square moves left", "a green triangle moves up",
                          "a yellow star moves down", "a purple circle moves up-right",
                          "a cyan square moves down-left", "a white triangle moves up-left",
                          "a red star moves down-right")


def motion_targets(prompts) -> tuple[list[str], list[str]]:
    """(colours, directions) that prompts of the form ``a {color} {shape} moves {direction}`` ask for."""
    if isinstance(prompts, str) or not prompts:
        raise ValueError(f"motion_prompts {prompts!r} must be a non-empty list of prompts")
    colors, directions = [], []
    for p in prompts:
        try:
            attrs = parse_caption(p)
        except ValueError as e:
            raise ValueError(f"motion prompt {p!r} is not a Moving Shapes caption: {e}") from None
        if attrs["motion"] != "moves" or attrs["direction"] == "none" or attrs["color2"] != "none":
            raise ValueError(f"motion prompt {p!r} must be one shape that moves in a direction, "
                             "e.g. 'a red circle moves right'")
        colors.append(attrs["color"])
        directions.append(attrs["direction"])
    return colors, directions



class MotionCheck:
    """Trainer callback: sample the motion prompts with the EMA weights, measure, log (module docstring).

    Call ``check(keyframe_unet, step)`` directly to measure any keyframe model (the final check).
    """

    def __init__(self, *, every_n_steps: int, autoencoder, text_encoder: TextEncoder, scheduler, settings,
                 prompts, samples_per_prompt: int = 2, num_inference_steps: int = 20, guidance_scale: float = 5.0,
                 num_keyframes: int = 8, seed: int = 0, run: Path, verbose: bool = True) -> None:
        self.every_n_steps = max(int(every_n_steps), 1)
        self.autoencoder, self.text_encoder, self.scheduler, self.settings = autoencoder, text_encoder, scheduler, settings
        self.prompts = [p for p in prompts for _ in range(samples_per_prompt)]
        self.colors, self.directions = motion_targets(self.prompts)
        self.num_inference_steps, self.guidance_scale = num_inference_steps, guidance_scale
        self.num_keyframes, self.seed, self.run, self.verbose = num_keyframes, seed, Path(run), verbose
        self.last_report: dict | None = None

    def __call__(self, trainer: Trainer, step: int) -> None:
        ema = trainer.ema.average_parameters(trainer.model) if trainer.ema is not None else contextlib.nullcontext()
        with ema:
            self.check(trainer.model, step)

    def sample(self, keyframe_unet: KeyframeUNet) -> torch.Tensor:
        """Decoded keyframes (B, 3, K, H, W) in [0, 1] for the prompts, from a generator seeded with ``seed``."""
        from minifusion.pipeline import FusionFramesPipeline

        pipe = FusionFramesPipeline(autoencoder=self.autoencoder, text_encoder=self.text_encoder,
                                    keyframe_unet=keyframe_unet, scheduler=self.scheduler, settings=self.settings)
        out = pipe(self.prompts, num_keyframes=self.num_keyframes, num_inference_steps=self.num_inference_steps,
                   guidance_scale=self.guidance_scale, interpolation_passes=0, output_type="pt", progress=False,
                   generator=torch.Generator().manual_seed(self.seed))
        return out.keyframes

    def check(self, keyframe_unet: KeyframeUNet, step: int) -> dict:
        from minifusion.eval import motion_report

        was_training = keyframe_unet.training
        start = time.perf_counter()
        try:
            videos = self.sample(keyframe_unet)
        finally:
            keyframe_unet.train(was_training)
        report = motion_report(videos, self.colors, self.directions, value_range=(0.0, 1.0))
        report.update(step=step, seconds=time.perf_counter() - start)
        self._append_row(report)
        self._save_picture(videos, report)
        self.last_report = report
        if self.verbose:
            n = report["num_videos"]
            print(f"keyframes step {step}: colour {report['color_accuracy'] * n:.0f}/{n}, direction "
                  f"{report['direction_accuracy'] * n:.0f}/{n} (chance {n / 8:g}), moving "
                  f"{report['moving_fraction'] * n:.0f}/{n}, background flicker {report['background_flicker']:.4f}",
                  flush=True)
        return report

    def _append_row(self, report: dict) -> None:
        path = self.run / MOTION_CSV
        rows = []
        if path.is_file():  # a resumed run re-measures steps after its checkpoint: drop the old rows
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) < report["step"]]
        rows.append({k: report[k] for k in MOTION_COLUMNS})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=MOTION_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(path)

    def _save_picture(self, videos: torch.Tensor, report: dict) -> None:
        from minifusion.viz import show_frames

        titles = [f"{p}  -> {c}, {d}" for p, c, d in zip(self.prompts, report["colors"], report["directions"])]
        fig = show_frames(videos, titles=titles, value_range=(0, 1))
        fig.suptitle(f"step {report['step']} (EMA, {self.num_inference_steps} DDIM steps, s={self.guidance_scale:g})",
                     fontsize=10)
        fig.savefig(self.run / "motion_samples.png", dpi=80, bbox_inches="tight")
