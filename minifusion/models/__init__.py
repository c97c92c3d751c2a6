"""Models: autoencoder, tokenizer and text encoder, T2I U-Net, keyframe U-Net, interpolation U-Nets.

Every model is a ``ModelMixin`` with a dataclass config, ``save_pretrained`` / ``from_pretrained``
and ``summary()``.
"""

from minifusion.models.autoencoder import Autoencoder, AutoencoderConfig, chunk_windows
from minifusion.models.interpolation_unet import InterpolationUNet, InterpolationUNetConfig
from minifusion.models.keyframe_unet import TEMPORAL_VARIANTS, KeyframeUNet, KeyframeUNetConfig
from minifusion.models.masked_interpolation_unet import MaskedInterpolationUNet, MaskedInterpolationUNetConfig
from minifusion.models.modeling_utils import ModelMixin
from minifusion.models.text_encoder import TextEncoder, TextEncoderConfig
from minifusion.models.tokenizer import Tokenizer, moving_shapes_vocabulary
from minifusion.models.unet import PREDICTION_TYPES, UNet, UNetConfig

__all__ = [
    "Autoencoder",
    "AutoencoderConfig",
    "TextEncoder",
    "TextEncoderConfig",
    "Tokenizer",
    "chunk_windows",
    "moving_shapes_vocabulary",
    "InterpolationUNet",
    "InterpolationUNetConfig",
    "KeyframeUNet",
    "KeyframeUNetConfig",
    "MaskedInterpolationUNet",
    "MaskedInterpolationUNetConfig",
    "ModelMixin",
    "PREDICTION_TYPES",
    "TEMPORAL_VARIANTS",
    "UNet",
    "UNetConfig",
]
