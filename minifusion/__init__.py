"""minifusion: FusionFrames (Kandinsky Video 1.0) text-to-video, rebuilt small.

Paper: Arkhipkin et al., "FusionFrames: Efficient Architectural Aspects for
Text-to-Video Generation Pipeline", arXiv 2311.13073.

Pipeline: text -> keyframes -> frame interpolation -> decode, all in latent space.
Video tensors are (B, C, F, H, W) everywhere inside the package.
"""

__version__ = "0.1.0"
