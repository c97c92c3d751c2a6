"""Building blocks of the U-Net family (Kandinsky 3.0 blocks + FusionFrames temporal layers).

Images are (B, C, H, W); videos are (B, C, F, H, W).
"""

from minifusion.nn.attention import (
    Attention,
    AttentionPooling,
    attention_reference,
    check_key_padding_mask,
    scaled_dot_product_attention,
)
from minifusion.nn.attention_block import AttentionBlock
from minifusion.nn.embeddings import FramePositionEmbedding, TimestepEmbedding, sinusoidal_embedding
from minifusion.nn.normalization import ConditionalGroupNorm, group_norm
from minifusion.nn.resnet import BottleneckResBlock, ConvBlock
from minifusion.nn.sampling import Downsample, Upsample
from minifusion.nn.temporal import (
    AlphaMerge,
    AlphaMergedTemporal,
    SpatioTemporalAttention,
    TemporalAttention,
    TemporalConv1d,
    TemporalConv3d,
    TemporalResidual,
    WindowedTemporalAttention,
    apply_to_frames,
    conv3d_hidden_channels,
    conv_over_frames,
)
from minifusion.nn.temporal_text import MotionBiasedAttention, TemporalTextAttention

__all__ = [
    "AlphaMerge",
    "AlphaMergedTemporal",
    "MotionBiasedAttention",
    "Attention",
    "AttentionBlock",
    "AttentionPooling",
    "BottleneckResBlock",
    "ConditionalGroupNorm",
    "ConvBlock",
    "Downsample",
    "FramePositionEmbedding",
    "SpatioTemporalAttention",
    "TemporalAttention",
    "TemporalConv1d",
    "TemporalConv3d",
    "TemporalResidual",
    "TemporalTextAttention",
    "TimestepEmbedding",
    "Upsample",
    "WindowedTemporalAttention",
    "apply_to_frames",
    "attention_reference",
    "check_key_padding_mask",
    "conv3d_hidden_channels",
    "conv_over_frames",
    "group_norm",
    "scaled_dot_product_attention",
    "sinusoidal_embedding",
]
