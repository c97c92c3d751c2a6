"""Stage ``mfi``: the masked-frame-interpolation baseline, trained with the interpolation stage's budget.

FusionFrames (arXiv 2311.13073, Table 2) compares its pair-wise interpolator with masked frame
interpolation (MFI) in the style of Video LDM (Blattmann et al. 2023, section 3.1.1): a video
U-Net runs on *every* frame of the up-sampled sequence, with the known frames and a mask as
extra input channels (``MaskedInterpolationUNet``, initialised from the T2I U-Net).

Same data, samples, randomness and budget as the ``interpolation`` stage (``InterpolationRecipe``
defaults, ``draw_sample_randomness`` in the same order, so both see the same windows, timesteps,
noise, t_p and dropouts): a window of (n + 1)(K - 1) + 1 = 29 latents (pass 1: whole frames,
pass 2: quarter frames); per frame the input is [noisy latent (4) | known latent or zeros (4) |
mask (1)], the known frames at every (n + 1)-th position, perturbed to t_p and zeroed for the 10%
dropout like the interpolator's keyframes. Frame positions are source times relative to the first
frame (0, 1, 2, ... in pass 1; 0, 0.25, 0.5, ... in pass 2), which is how the baseline (it has no
frame-skip embedding) tells the passes apart. The loss is the v-prediction MSE over *all* frames
(the model denoises the whole sequence; the known frames are replaced by the given ones at the end
of sampling, ``mfi_interpolate_pass``).

Writes ``OUT/mfi_unet/`` and ``OUT/mfi_scheduler/`` (the default pipeline does not use them) and
``OUT/runs/mfi/metrics.json`` with the same ``evaluate_interpolation`` as the interpolation stage.

Taught in notebook 09 (notebooks/09_interpolation.ipynb).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch

from minifusion.models.keyframe_unet import TEMPORAL_VARIANTS
from minifusion.models.masked_interpolation_unet import MaskedInterpolationUNet
from minifusion.training.config import TrainingConfig
from minifusion.training.distributed import finish_stage
from minifusion.training.objectives.mfi import MFITask
from minifusion.training.recipes.interpolation import (
    InterpolationRecipe,
    run_interpolation_stage,
    task_from_recipe,
    window_length,
)
from minifusion.training.recipes.interpolation import _default_training as _interpolation_training

STAGE = "mfi"


def _default_training() -> TrainingConfig:
    """The interpolation stage's training settings, saved under this recipe's name."""
    return dataclasses.replace(_interpolation_training(), extra={"recipe": STAGE})


@dataclass
class MFIRecipe(InterpolationRecipe):
    training: TrainingConfig = field(default_factory=_default_training)  # the interpolation stage's budget
    temporal: str = "conv1d_attn1d_blocks"  # temporal layers of the baseline's video U-Net (keyframe variants)

    def validate(self) -> None:
        super().validate()
        if self.temporal not in TEMPORAL_VARIANTS:
            raise ValueError(f"temporal {self.temporal!r} is not one of {', '.join(map(repr, TEMPORAL_VARIANTS))}")


def _build_mfi_unet(recipe: MFIRecipe, unet, text_encoder, latent_size: int) -> MaskedInterpolationUNet:
    model = MaskedInterpolationUNet.from_t2i(unet, recipe.temporal, sample_size=latent_size, null_context_length=1,
                                             num_frames=window_length(recipe.data.num_frames, recipe.frames_per_pair))
    with torch.no_grad():  # the T2I model's unconditional input: the text encoder's null token, alone
        model.null_encoder_hidden_states[0, 0] = text_encoder.null_token
    return model.freeze_spatial() if recipe.freeze_spatial else model


def train_mfi(out_dir: str | Path, *, steps: int | None = None, config: MFIRecipe | dict | str | Path | None = None,
              resume: bool = False, data_dir: str | Path | None = None, seed: int | None = None,
              progress: bool = True) -> Path:
    """Train the MFI baseline into ``out_dir`` (which must hold the autoencoder and t2i stages).

    Arguments as ``train_autoencoder``. Returns ``out_dir / "mfi_unet"``; ``model_index.json`` is not touched.
    """
    final, _ = run_interpolation_stage(STAGE, MFIRecipe, out_dir, build_model=_build_mfi_unet,
                                       make_task=functools.partial(task_from_recipe, task_class=MFITask),
                                       component="mfi_unet", steps=steps, config=config, resume=resume,
                                       data_dir=data_dir, seed=seed, progress=progress)
    return finish_stage(final)  # under torchrun every rank returns once rank 0 has written OUT/mfi_unet
