"""Helpers of ``minifusion.pipeline.FusionFramesPipeline``, one stage per file.

- ``model_index``: the pipeline folder layout, ``PipelineSettings``, ``write_model_index``, ``pretrained``;
- ``denoising``: the guided sampling loop with callbacks and progress bars;
- ``keyframes``: text -> keyframe latents with classifier-free guidance;
- ``interpolation``: one FusionFrames interpolation pass (T -> 4T - 3 frames) with context guidance.
"""

from minifusion.pipelines.interpolation import interleave, interpolate_pass, interpolation_frame_skips
from minifusion.pipelines.keyframes import encode_text, sample_keyframes
from minifusion.pipelines.model_index import (
    MODEL_INDEX_NAME,
    PipelineSettings,
    pretrained,
    read_model_index,
    write_model_index,
)

__all__ = [
    "MODEL_INDEX_NAME",
    "PipelineSettings",
    "encode_text",
    "interleave",
    "interpolate_pass",
    "interpolation_frame_skips",
    "pretrained",
    "read_model_index",
    "sample_keyframes",
    "write_model_index",
]
