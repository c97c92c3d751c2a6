"""Stage ``autoencoder``: train the latent autoencoder (image decoder) on single frames.

FusionFrames (arXiv 2311.13073, section 3.3) takes MoVQ-GAN from Kandinsky as its latent
autoencoder; here the toy ``Autoencoder`` (4x downsampling, 4 latent channels, MoVQ-style
spatially modulated decoder) is trained from scratch on random single frames of Moving Shapes
(or of ``--data DIR``) with a reconstruction loss

    loss = mse_weight * MSE + l1_weight * L1 + gradient_weight * L1(image gradients)
           + latent_weight * mean(z^2)

Afterwards the latent scaling factor (Rombach et al. 2022, section 4.3.2) is measured on a batch
of training frames and stored in the saved config, so ``encode`` gives unit-variance latents,
and the validation PSNR is recorded in ``runs/autoencoder/metrics.json`` (with a picture of
reconstructions in ``runs/autoencoder/reconstructions.png``).

Writes ``OUT/autoencoder/`` (EMA weights) and the run folder ``OUT/runs/autoencoder/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from minifusion.checks import check_int, check_number
from minifusion.eval.pixel_metrics import psnr
from minifusion.models.autoencoder import Autoencoder, AutoencoderConfig
from minifusion.training.config import TrainingConfig
from minifusion.training.distributed import finish_stage
from minifusion.training.objectives.autoencoder import AutoencoderTask
from minifusion.training.randomness import seed_everything
from minifusion.training.recipes.common import (
    METRICS_NAME,
    DataOptions,
    FrameDataset,
    build_clips,
    collate_frames,
    prepare_recipe,
    run_dir,
    spread_indices,
    stack_frames,
    train_run,
    write_json,
)
from minifusion.training.trainer import Trainer

STAGE = "autoencoder"


def _default_training() -> TrainingConfig:
    return TrainingConfig(steps=2000, batch_size=16, lr=1e-3, warmup_steps=100, ema_decay=0.999, ema_warmup=True,
                          checkpoint_every=500, log_every=10, extra={"recipe": STAGE})


@dataclass
class AutoencoderRecipe:
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)  # the autoencoder to build
    training: TrainingConfig = field(default_factory=_default_training)  # optimiser, steps, batch, EMA, ...
    data: DataOptions = field(default_factory=DataOptions)  # which clips the frames come from
    mse_weight: float = 1.0  # weight of the mean squared error
    l1_weight: float = 0.0  # weight of the mean absolute error
    gradient_weight: float = 0.0  # weight of the L1 error of horizontal/vertical pixel differences (edges)
    latent_weight: float = 1e-4  # weight of mean(z^2), keeps the latent scale bounded
    val_frames: int = 64  # validation frames for the PSNR (Moving Shapes "val" split; the folder with --data)
    scaling_frames: int = 256  # training frames the latent scaling factor is measured on

    def validate(self) -> None:
        for name in ("mse_weight", "l1_weight", "gradient_weight", "latent_weight"):
            check_number(name, getattr(self, name), minimum=0)
        if self.mse_weight + self.l1_weight + self.gradient_weight == 0:
            raise ValueError("mse_weight, l1_weight and gradient_weight are all 0: there is no reconstruction loss")
        for name in ("val_frames", "scaling_frames"):
            check_int(name, getattr(self, name), minimum=2)
        if self.model.decoder_temporal != "none":
            raise ValueError(f"the autoencoder stage trains the image decoder: model.decoder_temporal must be "
                             f"'none', got {self.model.decoder_temporal!r} (the decoder stage adds temporal layers)")


def validation_frames(recipe: AutoencoderRecipe, train_frames: FrameDataset) -> tuple[torch.Tensor, str]:
    """(N, C, H, W) frames for the PSNR and where they come from."""
    data = recipe.data
    if data.folder is not None:  # no held-out split of a user's folder: report it honestly
        return stack_frames(train_frames, spread_indices(len(train_frames), recipe.val_frames)), "training folder"
    from minifusion.data import MovingShapes

    val = MovingShapes(split="val", num_frames=data.num_frames, size=data.size, frame_skip=data.frame_skip,
                       seed=data.seed, length=recipe.val_frames, backgrounds=data.backgrounds)
    frames = FrameDataset(val, frames_per_clip=1, seed=data.seed)
    return stack_frames(frames, list(range(len(frames)))), "Moving Shapes val split"


@torch.no_grad()
def evaluate_psnr(autoencoder: Autoencoder, frames: torch.Tensor, *, batch_size: int = 64) -> float:
    """PSNR (dB) of ``autoencoder(frames)`` against ``frames`` (N, C, H, W) in [-1, 1]."""
    device = next(autoencoder.parameters()).device
    autoencoder.eval()
    recon = torch.cat([autoencoder(part.to(device)).cpu() for part in frames.split(batch_size)])
    return psnr(recon, frames)


def save_reconstructions(autoencoder: Autoencoder, frames: torch.Tensor, path: str | Path) -> Path:
    """A PNG of ``frames`` (N, C, H, W) above their reconstructions (look at edges and small shapes)."""
    from minifusion.viz import show_frames

    device = next(autoencoder.parameters()).device
    with torch.no_grad():
        recon = autoencoder(frames.to(device)).clamp(-1, 1).cpu()
    rows = {"validation frames": frames.transpose(0, 1), f"reconstructions ({psnr(recon, frames):.1f} dB)":
            recon.transpose(0, 1)}  # (C, N, H, W) each
    fig = show_frames(rows)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def train_autoencoder(out_dir: str | Path, *, steps: int | None = None,
                      config: AutoencoderRecipe | dict | str | Path | None = None, resume: bool = False,
                      data_dir: str | Path | None = None, seed: int | None = None, progress: bool = True) -> Path:
    """Train the autoencoder stage into the pipeline folder ``out_dir``; returns ``out_dir / "autoencoder"``.

    Args:
        out_dir: the pipeline folder (created).
        steps: optimiser steps (overrides the recipe's ``training.steps``).
        config: an ``AutoencoderRecipe``, a dict or JSON file of overrides; None = defaults (or,
            with ``resume``, the recipe saved by the run being resumed).
        resume: continue the run in ``out_dir/runs/autoencoder`` from its newest checkpoint.
        data_dir: train on this clip folder (``ClipFolder``) instead of Moving Shapes.
        seed: overrides the training and data seeds.
        progress: show progress bars.
    """
    recipe = prepare_recipe(AutoencoderRecipe, STAGE, out_dir, config=config, steps=steps, resume=resume,
                            data_dir=data_dir, seed=seed, progress=progress)
    out_dir, run = Path(out_dir), run_dir(out_dir, STAGE)
    frames = FrameDataset(build_clips(recipe.data), seed=recipe.data.seed)  # every frame of every clip
    seed_everything(recipe.training.seed)  # the initial weights depend on the seed only
    model = Autoencoder(recipe.model)
    task = AutoencoderTask(mse_weight=recipe.mse_weight, l1_weight=recipe.l1_weight,
                           gradient_weight=recipe.gradient_weight, latent_weight=recipe.latent_weight)
    trainer = Trainer(model, task, frames, recipe.training, run, collate_fn=collate_frames)
    result, seconds = train_run(trainer, recipe, run, resume=resume)
    if not trainer.is_main:  # under torchrun rank 0 alone writes the stage's files; the others wait for it
        return finish_stage(out_dir / STAGE)
    if result.model_dir is None:  # stopped early (only possible with max_steps, kept for safety)
        raise RuntimeError(f"training stopped at step {result.step} of {recipe.training.steps}")

    # The exported (EMA) weights: measure the latent scale on training frames, then the PSNR.
    autoencoder = Autoencoder.from_pretrained(result.model_dir).to(trainer.device).eval()
    scale_frames = stack_frames(frames, spread_indices(len(frames), recipe.scaling_frames)).to(trainer.device)
    autoencoder.set_scaling_factor(autoencoder.estimate_scaling_factor(scale_frames))
    val, val_source = validation_frames(recipe, frames)
    val_psnr = evaluate_psnr(autoencoder, val)
    final = autoencoder.save_pretrained(out_dir / STAGE)
    save_reconstructions(autoencoder, val[:8], run / "reconstructions.png")
    metrics = {"stage": STAGE, "step": result.step, "val_psnr_db": val_psnr, "val_frames": int(val.shape[0]),
               "val_source": val_source, "scaling_factor": autoencoder.scaling_factor, "last_loss": result.last_loss,
               "session_seconds": seconds}
    write_json(run / METRICS_NAME, metrics)
    if recipe.training.progress:
        print(f"autoencoder: step {result.step}, val PSNR {val_psnr:.2f} dB ({val_source}), "
              f"scaling_factor {autoencoder.scaling_factor:.4f} -> {final}")
    return finish_stage(final)
