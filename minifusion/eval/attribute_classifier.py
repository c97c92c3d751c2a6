"""A video attribute classifier: the toy stand-in for I3D / Inception in FVD, IS and caption accuracy.

FusionFrames (arXiv 2311.13073, section 5) reports FVD (from I3D features) and IS (from a
video classifier's class probabilities); this project replaces both by one small network
trained on Moving Shapes: ``VideoEncoder`` features (its penultimate layer, used for the Frechet
distance) and one linear head per attribute (``ATTRIBUTES``), each reading only the encoder
streams of ``HEAD_STREAMS`` (colour never sees shape and shape never sees colour, so pairs never
seen together in training are judged as well as the others):

    color (7)  shape (4)  motion (5)  direction (8 + "none")  speed (3)  size (3)  background (2)

It judges clips with **one** shape (a two-shape clip has no single colour or shape). "direction"
is "none" for rotates / grows / shrinks; for "bounces" the direction attribute is the direction
before the wall contact, which a caption never states, so it is not a training target
(``IGNORE``). The accuracy of each head on held-out real clips is in the shipped card
(``data_samples/checkpoints/eval/README.md``); caption accuracy compares the heads' answers on
generated videos with the attributes their prompts state (``minifusion.data.parse_caption``).

Videos go in as for every learned metric (``prepare_video``): (B, 3, F, 64, 64) in ``value_range``.

Taught in notebook 12 (notebooks/12_evaluation.ipynb).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minifusion.data.vocabulary import (
    BACKGROUND_NAMES,
    COLOR_NAMES,
    DIRECTION_NAMES,
    MOTIONS,
    NONE,
    SHAPES,
    SIZES,
    SPEEDS,
)
from minifusion.eval.video_encoder import FRAME_SIZE, NUM_FRAMES, VideoEncoder, prepare_video
from minifusion.models.modeling_utils import ModelMixin

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": COLOR_NAMES,
    "shape": SHAPES,
    "motion": MOTIONS,
    "direction": DIRECTION_NAMES + (NONE,),
    "speed": SPEEDS,
    "size": SIZES,
    "background": BACKGROUND_NAMES,
}
IGNORE = -100  # label of an attribute a clip does not show (cross_entropy's ignore_index)
# the VideoEncoder streams each head reads: colour and shape never see each other's stream
HEAD_STREAMS: dict[str, tuple[str, ...]] = {
    "color": ("color",),
    "shape": ("shape",),
    "motion": ("shape", "motion"),  # rotation shows in the shape's outline, bounces and growth in the moments
    "direction": ("motion",),
    "speed": ("shape", "motion"),  # how far it turns, moves or grows
    "size": ("shape", "motion"),
    "background": ("context",),
}


def attribute_labels(attributes: dict) -> dict[str, int]:
    """Class index per attribute of one single-shape clip's attribute dict (``MovingShapes`` items or
    ``parse_caption`` output); ``IGNORE`` where the clip does not show it (the direction of a bounce)."""
    if attributes.get("color2", NONE) != NONE or attributes.get("num_objects", 1) != 1:
        raise ValueError("the attribute classifier judges clips with one shape; this one has two "
                         f"({attributes.get('color')} {attributes.get('shape')}, {attributes.get('color2')} "
                         f"{attributes.get('shape2')})")
    out = {}
    for name, classes in ATTRIBUTES.items():
        value = attributes.get(name, NONE if name == "direction" else None)
        if name == "direction" and attributes.get("motion") == "bounces":
            out[name] = IGNORE
        elif value not in classes:
            raise ValueError(f"attribute {name} = {value!r} is not one of {', '.join(classes)}")
        else:
            out[name] = classes.index(value)
    return out


@dataclass
class AttributeClassifierConfig:
    block_out_channels: tuple[int, ...] = (24, 32, 48, 64, 64)  # VideoEncoder: the shape window CNN's 5 convs
    context_channels: tuple[int, ...] = (16, 32, 32)  # VideoEncoder: the whole-frame CNN's 3 convs
    stream_dims: tuple[int, ...] = (16, 32, 32, 16)  # colour, shape, motion, context widths (features: their sum)
    num_frames: int = NUM_FRAMES  # frames seen per video (videos are resampled to this)
    sample_size: int = FRAME_SIZE  # frame height and width
    window: int = 32  # side of the window around the shape that the shape and colour streams see


class AttributeClassifier(ModelMixin):
    """Videos -> per-attribute logits; ``features`` gives the penultimate layer (B, sum(stream_dims)).

    Each head is a linear layer on the streams of ``HEAD_STREAMS`` only, so the colour head cannot
    use shape and the shape head cannot use colour (see ``minifusion.eval.video_encoder``).
    """

    config_class = AttributeClassifierConfig

    def __init__(self, config: AttributeClassifierConfig | dict | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.encoder = VideoEncoder(block_out_channels=c.block_out_channels,
                                    context_channels=c.context_channels, stream_dims=c.stream_dims,
                                    num_frames=c.num_frames, sample_size=c.sample_size, window=c.window)
        slices = self.encoder.stream_slices()
        self._inputs = {name: [slices[s] for s in HEAD_STREAMS[name]] for name in ATTRIBUTES}
        self.heads = nn.ModuleDict({name: nn.Linear(sum(self.encoder.stream_dims[s] for s in HEAD_STREAMS[name]),
                                                    len(classes)) for name, classes in ATTRIBUTES.items()})

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Prepared videos (B, 3, num_frames, size, size) in [-1, 1] -> {attribute: logits (B, classes)}."""
        return self.classify(self.encoder(video))

    def classify(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features (B, D) -> {attribute: logits (B, classes)}, each head on its own streams."""
        return {name: head(torch.cat([features[:, s] for s in self._inputs[name]], dim=1))
                for name, head in self.heads.items()}

    def _prepare(self, video, value_range) -> torch.Tensor:
        param = next(self.parameters())
        return prepare_video(video, value_range=value_range, num_frames=self.config.num_frames,
                             size=self.config.sample_size).to(param.device, param.dtype)

    @torch.no_grad()
    def features(self, video: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0),
                 batch_size: int = 64) -> torch.Tensor:
        """Penultimate features (B, D) of any videos ``prepare_video`` accepts (eval mode, float32)."""
        x = self._prepare(video, value_range)
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self.encoder(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).float().cpu()
        finally:
            self.train(was_training)

    @torch.no_grad()
    def probabilities(self, video: torch.Tensor | None = None, *, features: torch.Tensor | None = None,
                      value_range: tuple[float, float] = (-1.0, 1.0)) -> dict[str, torch.Tensor]:
        """{attribute: class probabilities (B, classes)} of videos, or of their precomputed ``features``."""
        if (video is None) == (features is None):
            raise ValueError("pass either video or features")
        if features is None:
            features = self.features(video, value_range=value_range)
        param = next(self.parameters())
        logits = self.classify(features.to(param.device, param.dtype))
        return {name: v.float().softmax(dim=-1).cpu() for name, v in logits.items()}

    def predict(self, video: torch.Tensor | None = None, *, features: torch.Tensor | None = None,
                value_range: tuple[float, float] = (-1.0, 1.0)) -> dict[str, list[str]]:
        """{attribute: predicted class name per video}."""
        probs = self.probabilities(video, features=features, value_range=value_range)
        return {name: [ATTRIBUTES[name][i] for i in p.argmax(dim=-1).tolist()] for name, p in probs.items()}

    def example_inputs(self) -> tuple[tuple, dict, int]:
        c = self.config
        return (torch.zeros(1, 3, c.num_frames, c.sample_size, c.sample_size),), {}, c.num_frames


def caption_accuracy(predictions: dict[str, list[str]], attributes: list[dict]) -> dict[str, float]:
    """Share of videos whose predicted attribute equals the prompt's, per attribute the prompts state.

    ``attributes``: one dict per video (e.g. ``parse_caption(prompt)``); an attribute counts for a
    video when the dict has it and the classifier has a head for it (the direction of a bounce is
    never counted). Attributes no video states are left out.
    """
    out = {}
    for name, predicted in predictions.items():
        pairs = [(p, a[name]) for p, a in zip(predicted, attributes, strict=True)
                 if name in a and not (name == "direction" and a.get("motion") == "bounces")]
        if pairs:
            out[name] = sum(p == t for p, t in pairs) / len(pairs)
    return out


__all__ = ["ATTRIBUTES", "HEAD_STREAMS", "IGNORE", "AttributeClassifier", "AttributeClassifierConfig",
           "attribute_labels",
           "caption_accuracy"]
