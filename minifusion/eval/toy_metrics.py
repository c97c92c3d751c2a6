"""The learned toy metrics together: caption accuracy, FVD, IS and CLIPSIM of a set of videos.

FusionFrames (arXiv 2311.13073, section 5, Tables 1-2) judges its ablations by FVD and IS on
UCF-101 and CLIPSIM on MSR-VTT. This project replaces the downloaded networks by two
trained on Moving Shapes and shipped in ``data_samples/checkpoints/eval/``:

- ``AttributeClassifier``: its penultimate features give the **FVD analogue** (Frechet distance
  between Gaussian fits of the features of generated and of real clips, ``frechet``), its class
  probabilities the **IS analogue** per attribute head (``inception_score``), and its answers on
  generated videos, against the attributes their prompts state, the **caption accuracy**;
- ``TextVideoModel``: the mean cosine similarity of generated videos with their prompts is the
  **CLIPSIM analogue**.

    metrics = ToyMetrics.from_pretrained()                     # the shipped weights
    gen = metrics.measure(videos, value_range=(0, 1))          # pipeline output (B, 3, F, 64, 64)
    real = metrics.measure(real_clips)                         # [-1, 1] renders of the same prompts
    metrics.report(gen, prompts, reference=real)               # every figure as plain floats

Every network runs in eval mode (BatchNorm with its stored statistics), so a video's numbers do
not depend on the batch it is measured in. Videos follow ``prepare_video``'s contract.

Taught in notebook 12 (notebooks/12_evaluation.ipynb).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from minifusion.data.captions import parse_caption
from minifusion.eval.attribute_classifier import ATTRIBUTES, AttributeClassifier, caption_accuracy
from minifusion.eval.frechet import feature_frechet_distance
from minifusion.eval.inception_score import inception_score
from minifusion.eval.text_video import TextVideoModel
from minifusion.models.tokenizer import check_prompts
from minifusion.pipelines.model_index import CHECKPOINTS_DIR

EVAL_WEIGHTS_DIR = CHECKPOINTS_DIR / "eval"  # shipped weights: attribute_classifier/ and text_video/


@dataclass
class VideoMeasurements:
    """What the two networks say about N videos: classifier features (N, D) and class probabilities
    {attribute: (N, K)}, and the text-video model's unit video embeddings (N, E)."""

    features: torch.Tensor
    probabilities: dict[str, torch.Tensor]
    embeddings: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, indices: list[int] | torch.Tensor) -> VideoMeasurements:
        index = torch.as_tensor(indices, dtype=torch.long)
        return VideoMeasurements(self.features[index], {k: v[index] for k, v in self.probabilities.items()},
                                 self.embeddings[index])

    def predictions(self) -> dict[str, list[str]]:
        """{attribute: predicted class name per video}."""
        return {name: [ATTRIBUTES[name][i] for i in p.argmax(dim=-1).tolist()]
                for name, p in self.probabilities.items()}


def prompt_attributes(prompts: list[str]) -> list[dict | None]:
    """``parse_caption`` of each prompt, or None where the classifier cannot judge it (outside the Moving
    Shapes grammar, or two shapes)."""
    out = []
    for prompt in prompts:
        try:
            attrs = parse_caption(prompt)
        except ValueError:
            out.append(None)
            continue
        out.append(None if attrs["color2"] != "none" else attrs)
    return out


class ToyMetrics:
    """Holds both metric networks; see the module docstring."""

    def __init__(self, classifier: AttributeClassifier, text_video: TextVideoModel) -> None:
        self.classifier, self.text_video = classifier.eval(), text_video.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> ToyMetrics:
        """Load ``path/attribute_classifier`` and ``path/text_video`` (default: the shipped ``EVAL_WEIGHTS_DIR``)."""
        folder = Path(path) if path is not None else EVAL_WEIGHTS_DIR
        if not folder.is_dir():
            raise ValueError(f"metric weights folder {str(folder)!r} does not exist; train it with "
                             "`python -m minifusion.eval.train_metrics --out FOLDER`")
        return cls(AttributeClassifier.from_pretrained(folder / "attribute_classifier"),
                   TextVideoModel.from_pretrained(folder / "text_video"))

    def measure(self, videos: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0),
                batch_size: int = 64) -> VideoMeasurements:
        """Run both networks on videos (B, 3, F, 64, 64) in ``value_range`` (see ``prepare_video``)."""
        features = self.classifier.features(videos, value_range=value_range, batch_size=batch_size)
        return VideoMeasurements(features, self.classifier.probabilities(features=features),
                                 self.text_video.encode_videos(videos, value_range=value_range, batch_size=batch_size))

    # -- single metrics ------------------------------------------------------------------------------
    @staticmethod
    def fvd(a: VideoMeasurements, b: VideoMeasurements) -> float:
        """FVD analogue: Frechet distance between Gaussian fits of the classifier features of two sets."""
        return feature_frechet_distance(a.features, b.features)

    @staticmethod
    def inception_scores(m: VideoMeasurements) -> dict[str, float]:
        """IS analogue per attribute head (see ``inception_score``)."""
        return {name: inception_score(p) for name, p in m.probabilities.items()}

    def similarities(self, m: VideoMeasurements, prompts: list[str]) -> torch.Tensor:
        """(N,) cosine similarity of each video with its prompt (text-video model)."""
        prompts = check_prompts(prompts)
        if len(prompts) != len(m):
            raise ValueError(f"need one prompt per video: {len(m)} videos, {len(prompts)} prompts")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown words become <unk>; the tokenizer would warn per call
            text = self.text_video.encode_text(prompts)
        return (m.embeddings * text).sum(dim=-1)

    def clipsim(self, m: VideoMeasurements, prompts: list[str]) -> float:
        """CLIPSIM analogue: mean cosine similarity of the videos with their prompts."""
        return float(self.similarities(m, prompts).mean())

    @staticmethod
    def caption_accuracy(m: VideoMeasurements, prompts: list[str]) -> dict:
        """Per attribute, the share of judged videos whose predicted attribute is the prompt's, and
        ``caption`` = the share with every stated attribute right, ``mean`` = the mean over attributes
        (``mean_chance``: the same mean for uniform guessing); ``num_judged`` = videos whose prompt
        the classifier can judge (one shape, in the Moving Shapes grammar)."""
        attrs = prompt_attributes(check_prompts(prompts))
        keep = [i for i, a in enumerate(attrs) if a is not None]
        if not keep:
            return {"num_judged": 0}
        preds = m.subset(keep).predictions()
        judged = [attrs[i] for i in keep]
        out: dict = {"num_judged": len(keep), **caption_accuracy(preds, judged)}
        every = [all(preds[n][k] == a[n] for n in ATTRIBUTES if not (n == "direction" and a["motion"] == "bounces"))
                 for k, a in enumerate(judged)]
        out["caption"] = sum(every) / len(every)
        # the mean over attributes, and what guessing uniformly would score on the same attributes
        named = [n for n in ATTRIBUTES if n in out]
        out["mean"] = sum(out[n] for n in named) / len(named)
        out["mean_chance"] = sum(1 / len(ATTRIBUTES[n]) for n in named) / len(named)
        return out

    # -- everything ----------------------------------------------------------------------------------
    def report(self, generated: VideoMeasurements, prompts: list[str], *,
               reference: VideoMeasurements | None = None, reference_2: VideoMeasurements | None = None) -> dict:
        """Every figure for generated videos and their prompts, as plain floats.

        ``reference``: real clips of the same prompts (same order) for FVD, the real clips' own IS,
        CLIPSIM and caption accuracy (the ceilings); ``reference_2``: a second, disjoint set of real
        clips of the same prompts, whose FVD to ``reference`` is the floor for sets of this size.
        """
        prompts = check_prompts(prompts)
        out = {"num_videos": len(generated), "caption_accuracy": self.caption_accuracy(generated, prompts),
               "clipsim": self.clipsim(generated, prompts),
               "inception_score": self.inception_scores(generated)}
        # CLIPSIM with every video paired with the next video's prompt: the level of another prompt
        # (in the evaluate command's prompt order the next prompt has another colour and another shape)
        shift = [prompts[(i + 1) % len(prompts)] for i in range(len(prompts))]
        out["clipsim_other_prompts"] = self.clipsim(generated, shift) if len(set(prompts)) > 1 else math.nan
        if reference is not None:
            if len(reference) != len(generated):
                raise ValueError(f"reference must hold one real clip per prompt: {len(generated)} generated, "
                                 f"{len(reference)} real")
            enough = len(generated) >= 2
            out["fvd"] = self.fvd(generated, reference) if enough else math.nan
            out["real"] = {"caption_accuracy": self.caption_accuracy(reference, prompts),
                           "clipsim": self.clipsim(reference, prompts),
                           "inception_score": self.inception_scores(reference)}
            if reference_2 is not None:
                out["real"]["fvd_real_vs_real"] = self.fvd(reference_2, reference) if enough else math.nan
        return out


__all__ = ["EVAL_WEIGHTS_DIR", "ToyMetrics", "VideoMeasurements", "prompt_attributes"]
