"""Models: T2I U-Net, keyframe U-Net, interpolation U-Nets (agent U); autoencoder and text encoder (agent A).

Every model is a ``ModelMixin`` with a dataclass config, ``save_pretrained`` / ``from_pretrained``
and ``summary()``.
"""

from minifusion.models.interpolation_unet import InterpolationUNet, InterpolationUNetConfig
from minifusion.models.keyframe_unet import TEMPORAL_VARIANTS, KeyframeUNet, KeyframeUNetConfig
from minifusion.models.masked_interpolation_unet import MaskedInterpolationUNet, MaskedInterpolationUNetConfig
from minifusion.models.modeling_utils import ModelMixin
from minifusion.models.unet import PREDICTION_TYPES, UNet, UNetConfig

__all__ = [
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
