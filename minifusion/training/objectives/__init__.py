"""The training objectives, one module per stage: what each stage's loss is, written as the equations.

Each is a task for the ``Trainer`` (``minifusion.training.tasks`` has the protocol):
``task.loss(model, batch, sample_indices, generators) -> scalar``, the mean over the samples of the
micro-batch, every random draw from the sample's own generator. The recipes
(``minifusion.training.recipes``) only orchestrate: data, model, trainer, files.
"""

from minifusion.training.objectives.autoencoder import AutoencoderTask, image_gradient_l1
from minifusion.training.objectives.decoder import DecoderTask, temporal_gradient_l1
from minifusion.training.objectives.interpolation import (
    InterpolationTask,
    build_interpolation_input,
    draw_sample_randomness,
    split_clip_latents,
)
from minifusion.training.objectives.keyframes import LOSS_WEIGHTINGS, KeyframesTask
from minifusion.training.objectives.mfi import MFITask
from minifusion.training.objectives.t2i import T2ITask
from minifusion.training.objectives.text_encoder import TextDenoisingTask, corrupt_tokens

__all__ = [
    "LOSS_WEIGHTINGS", "AutoencoderTask", "DecoderTask", "InterpolationTask", "KeyframesTask", "MFITask", "T2ITask",
    "TextDenoisingTask", "build_interpolation_input", "corrupt_tokens", "draw_sample_randomness", "image_gradient_l1",
    "split_clip_latents", "temporal_gradient_l1",
]
