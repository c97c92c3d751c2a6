"""Stage recipes: each a config (a dataclass, loadable from JSON) plus a ``train_<stage>`` function.

FusionFrames (arXiv 2311.13073) trains its pipeline in stages; the recipes here write them into
one pipeline folder (layout in ``minifusion.training.recipes.common``):

- ``text_encoder``: a language model of the captions alone (denoising objective), frozen afterwards;
- ``autoencoder``: the latent autoencoder (image decoder) on single frames, then its latent scale;
- ``t2i``: the text-to-image U-Net on single frames with captions and the frozen text encoder (10% caption dropout);
- ``keyframes``: temporal parts added to the frozen T2I U-Net, trained on keyframe clips;
- ``interpolation``: the FusionFrames interpolation U-Net, both passes; ``mfi``: the masked baseline;
- ``decoder``: the temporal video decoder; ``all``: every stage in order (``all_stages``).

``STAGES`` maps a stage name to its ``Stage`` (recipe class, train function, one-line help); the
CLI (``python -m minifusion train STAGE``) offers exactly these names.
"""

from __future__ import annotations

from pathlib import Path

from minifusion.eval.interpolation_eval import evaluate_interpolation
from minifusion.eval.pixel_metrics import psnr
from minifusion.pipelines.mfi import mfi_interpolate_pass
from minifusion.training.recipes.all_stages import ORDER, train_all
from minifusion.training.recipes.autoencoder import AutoencoderRecipe, AutoencoderTask, train_autoencoder
from minifusion.training.recipes.common import (
    DataOptions,
    FrameDataset,
    load_recipe,
    load_scheduler,
    recipe_to_dict,
    save_scheduler_config,
)
from minifusion.training.recipes.decoder import DecoderRecipe, train_decoder
from minifusion.training.recipes.interpolation import InterpolationRecipe, train_interpolation
from minifusion.training.recipes.keyframes import KeyframesRecipe, train_keyframes
from minifusion.training.recipes.mfi import MFIRecipe, train_mfi
from minifusion.training.recipes.stages import STAGES, Stage
from minifusion.training.recipes.t2i import (
    T2IRecipe,
    T2ITask,
    load_t2i,
    sample_t2i,
    save_sample_grid,
    train_t2i,
)
from minifusion.training.recipes.text_encoder import TextEncoderOptions, TextEncoderRecipe, train_text_encoder


def train_stage(name: str, out_dir: str | Path, **kwargs) -> Path:
    """Run stage ``name`` (a key of ``STAGES``, or ``"all"``) with ``train_<stage>``'s keyword arguments."""
    if name == "all":
        return train_all(out_dir, **kwargs)
    if name not in STAGES:
        raise ValueError(f"stage {name!r} is not one of {', '.join(map(repr, [*STAGES, 'all']))}")
    return STAGES[name].train(out_dir, **kwargs)


__all__ = [
    "STAGES", "AutoencoderRecipe", "AutoencoderTask", "DataOptions", "FrameDataset", "Stage", "T2IRecipe",
    "T2ITask", "TextEncoderOptions", "load_recipe", "load_scheduler", "load_t2i", "psnr", "recipe_to_dict",
    "sample_t2i", "save_sample_grid", "save_scheduler_config", "train_autoencoder", "train_stage", "train_t2i",
    "InterpolationRecipe", "KeyframesRecipe", "MFIRecipe", "evaluate_interpolation", "mfi_interpolate_pass",
    "train_interpolation", "train_keyframes", "train_mfi", "ORDER", "train_all", "DecoderRecipe", "train_decoder",
    "TextEncoderRecipe", "train_text_encoder",
]
