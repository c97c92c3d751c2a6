"""The training stages by name: each stage's recipe class, train function and one-line help.

``STAGES`` is what ``python -m minifusion train STAGE`` offers and what ``train all`` runs (in
``all_stages.ORDER``, each once the stages it ``requires`` have finished).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minifusion.training.recipes.autoencoder import AutoencoderRecipe, train_autoencoder
from minifusion.training.recipes.decoder import DecoderRecipe, train_decoder
from minifusion.training.recipes.interpolation import InterpolationRecipe, train_interpolation
from minifusion.training.recipes.keyframes import KeyframesRecipe, train_keyframes
from minifusion.training.recipes.mfi import MFIRecipe, train_mfi
from minifusion.training.recipes.t2i import T2IRecipe, train_t2i
from minifusion.training.recipes.text_encoder import TextEncoderRecipe, train_text_encoder


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
