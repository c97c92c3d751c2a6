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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minifusion.training.recipes.all_stages import ORDER, train_all
from minifusion.training.recipes.autoencoder import AutoencoderRecipe, AutoencoderTask, train_autoencoder
from minifusion.training.recipes.common import (
    DataOptions,
    FrameDataset,
    load_recipe,
    load_scheduler,
    psnr,
    recipe_to_dict,
    save_scheduler_config,
)
from minifusion.training.recipes.decoder import DecoderRecipe, train_decoder
from minifusion.training.recipes.interpolation import InterpolationRecipe, evaluate_interpolation, train_interpolation
from minifusion.training.recipes.keyframes import KeyframesRecipe, train_keyframes
from minifusion.training.recipes.mfi import MFIRecipe, mfi_interpolate_pass, train_mfi
from minifusion.training.recipes.t2i import (
    T2IRecipe,
    T2ITask,
    load_t2i,
    sample_t2i,
    save_sample_grid,
    train_t2i,
)
from minifusion.training.recipes.text_encoder import TextEncoderOptions, TextEncoderRecipe, train_text_encoder


@dataclass(frozen=True)
class Stage:
    name: str  # the CLI name
    recipe_class: type  # its recipe dataclass
    train: Callable[..., Path]  # train(out_dir, *, steps, config, resume, data_dir, seed, progress) -> Path
    help: str  # one line for --help
    requires: tuple[str, ...] = ()  # stages whose output it reads


STAGES: dict[str, Stage] = {
    "text_encoder": Stage("text_encoder", TextEncoderRecipe, train_text_encoder,
                          "text encoder trained on the captions alone (every word recoverable: corrupted tokens "
                          "predicted at every position), frozen for every later stage; writes OUT/text_encoder"),
    "autoencoder": Stage("autoencoder", AutoencoderRecipe, train_autoencoder,
                         "latent autoencoder (64x64 frames <-> 4x16x16 latents) on single frames; "
                         "writes OUT/autoencoder with its latent scaling factor"),
    "t2i": Stage("t2i", T2IRecipe, train_t2i,
                 "text-to-image U-Net on single captioned frames with the frozen text encoder, 10% caption "
                 "dropout; writes OUT/unet, OUT/scheduler", requires=("text_encoder", "autoencoder")),
    "keyframes": Stage("keyframes", KeyframesRecipe, train_keyframes,
                       "keyframe U-Net = frozen T2I U-Net + trained temporal parts (--temporal VARIANT) on 8 "
                       "keyframes at frame skip 4, motion/colour check every N steps; writes OUT/keyframe_unet, "
                       "OUT/model_index.json", requires=("text_encoder", "autoencoder", "t2i")),
    "interpolation": Stage("interpolation", InterpolationRecipe, train_interpolation,
                           "FusionFrames interpolation U-Net (3 frames per keyframe pair) initialised from the T2I "
                           "U-Net, trained on both passes (skip 4 and quarter frames), v-prediction; writes "
                           "OUT/interpolation_unet, OUT/interpolation_scheduler, OUT/model_index.json",
                           requires=("text_encoder", "autoencoder", "t2i")),
    "decoder": Stage("decoder", DecoderRecipe, train_decoder,
                     "temporal video decoder (--variant conv1d, conv3d, conv1d_attn, conv3d_attn) fine-tuned on "
                     "8-frame clips, encoder and spatial decoder frozen; writes OUT/video_decoder (FusionFrames "
                     "Table 3)", requires=("autoencoder",)),
    "mfi": Stage("mfi", MFIRecipe, train_mfi,
                 "masked-frame-interpolation baseline (Video LDM style) with the interpolation stage's budget; "
                 "writes OUT/mfi_unet (not used by the pipeline)", requires=("text_encoder", "autoencoder", "t2i")),
}


def train_stage(name: str, out_dir: str | Path, **kwargs) -> Path:
    """Run stage ``name`` (a key of ``STAGES``, or ``"all"``) with ``train_<stage>``'s keyword arguments."""
    if name == "all":
        return train_all(out_dir, **kwargs)
    if name not in STAGES:
        raise ValueError(f"stage {name!r} is not one of {', '.join(map(repr, [*STAGES, 'all']))}")
    return STAGES[name].train(out_dir, **kwargs)


__all__ = [
    "STAGES", "AutoencoderRecipe", "AutoencoderTask", "DataOptions", "FrameDataset", "Stage", "T2IRecipe", "T2ITask",
    "TextEncoderOptions", "load_recipe", "load_scheduler", "load_t2i", "psnr", "recipe_to_dict", "sample_t2i",
    "save_sample_grid", "save_scheduler_config", "train_autoencoder", "train_stage", "train_t2i",
    "InterpolationRecipe", "MFIRecipe", "evaluate_interpolation", "mfi_interpolate_pass", "train_interpolation",
    "train_mfi", "ORDER", "train_all", "DecoderRecipe", "train_decoder", "TextEncoderRecipe", "train_text_encoder",
]
