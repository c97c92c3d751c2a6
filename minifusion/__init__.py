"""minifusion: FusionFrames (Kandinsky Video 1.0) text-to-video, rebuilt small.

Paper: Arkhipkin et al., "FusionFrames: Efficient Architectural Aspects for
Text-to-Video Generation Pipeline", arXiv 2311.13073.

Pipeline: text -> keyframes -> frame interpolation -> decode, all in latent space.
Video tensors are (B, C, F, H, W) everywhere inside the package.
"""

__version__ = "0.1.0"

_LAZY = {
    "FusionFramesPipeline": "minifusion.pipeline",
    "FusionFramesPipelineOutput": "minifusion.pipeline",
    "PipelineSettings": "minifusion.pipelines.model_index",
    "pretrained": "minifusion.pipelines.model_index",
}


def __getattr__(name: str):
    # Lazy: `import minifusion` stays cheap (no torch) until a pipeline name is used.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'minifusion' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
