"""Moving Shapes clips for training and checking the learned metrics (``minifusion.eval.train_metrics``).

- ``ClipStream``: an endless, deterministic stream of training batches. Batch ``k`` is a pure
  function of (seed, k): clips ``k * batch_size ...`` of a ``MovingShapes("train")`` split with
  both backgrounds and more of the rarer motions (``simple_fraction`` 0.3 instead of 0.65), each
  rendered from a random start time in [0, frame_skip) source frames (the keyframe recipe does
  the same), optionally with Gaussian pixel noise. Two-shape clips are left out for the classifier
  (``single_shape=True``: it has one colour and one shape head) and kept for the text-video model.
- ``labelled_clips``: a fixed set of clips of a split ("val": seen colour-shape pairs, "heldout":
  only the held-out pairs), as they are, for measuring accuracy;
- ``shuffle_frames``: the same clips with their frames in another order (what a metric of video,
  not of frames, must notice; the FVD sanity check).

Videos are (B, 3, 8, 64, 64) in [-1, 1], frames ``frame_skip`` = 4 source frames apart: the
keyframes of the pipeline (``prepare_video`` picks the same frames out of 29- or 113-frame videos).
"""

from __future__ import annotations

import numpy as np
import torch

from minifusion.data import MovingShapes, render_clip
from minifusion.eval.attribute_classifier import ATTRIBUTES, attribute_labels
from minifusion.eval.video_encoder import FRAME_SIZE, NUM_FRAMES

FRAME_SKIP = 4  # source frames between the frames the metrics see (the keyframe model's skip)
BACKGROUNDS = ("black", "light")  # both, as the pipeline's recipes train on


def _batch(items: list[dict]) -> dict:
    videos = torch.stack([it["video"] for it in items])  # (B, 3, F, H, W)
    out = {"video": videos, "caption": [it["caption"] for it in items],
           "attributes": [it["attributes"] for it in items]}
    if all(it["attributes"]["num_objects"] == 1 for it in items):
        labels = [attribute_labels(it["attributes"]) for it in items]
        out["labels"] = {name: torch.tensor([lab[name] for lab in labels]) for name in ATTRIBUTES}
    return out


class ClipStream:
    """Training batches: ``stream.batch(k)`` -> {"video", "caption", "attributes", "labels"} (see module docstring)."""

    def __init__(self, *, batch_size: int = 64, seed: int = 0, single_shape: bool = True, noise: float = 0.0,
                 time_offset: bool = True, simple_fraction: float = 0.3) -> None:
        self.dataset = MovingShapes("train", num_frames=NUM_FRAMES, size=FRAME_SIZE, frame_skip=FRAME_SKIP,
                                    seed=seed, length=2**40, backgrounds=BACKGROUNDS, simple_fraction=simple_fraction)
        self.batch_size, self.seed, self.single_shape = batch_size, seed, single_shape
        self.noise, self.time_offset = float(noise), time_offset

    def item(self, index: int) -> dict | None:
        """Clip ``index`` as a training item, or None when it is a two-shape clip and ``single_shape``."""
        params = self.dataset.clip_params(index)
        if self.single_shape and params.attributes["num_objects"] != 1:
            return None
        rng = np.random.default_rng((self.seed, 11, index))
        times = params.times + (rng.uniform(0, FRAME_SKIP) if self.time_offset else 0.0)
        video = render_clip(params, times, FRAME_SIZE)
        if self.noise > 0:  # per-clip noise level in [0, noise]: generated videos are not clean renders
            sigma = rng.uniform(0, self.noise)
            video = video + sigma * torch.from_numpy(rng.standard_normal(video.shape).astype(np.float32))
        return {"video": video, "caption": params.caption, "attributes": dict(params.attributes)}

    def batch(self, k: int) -> dict:
        """Batch ``k``: the first ``batch_size`` usable clips from index ``k * 2 * batch_size`` on."""
        items, index = [], k * 2 * self.batch_size  # a stride of 2 batches leaves room for skipped clips
        while len(items) < self.batch_size:
            item = self.item(index)
            index += 1
            if item is not None:
                items.append(item)
        return _batch(items)


def labelled_clips(split: str, num_clips: int, *, seed: int = 0, single_shape: bool = True,
                   simple_fraction: float = 0.65) -> dict:
    """The first ``num_clips`` (single-shape, if asked) clips of a Moving Shapes split, both backgrounds, as a batch."""
    ds = MovingShapes(split, num_frames=NUM_FRAMES, size=FRAME_SIZE, frame_skip=FRAME_SKIP, seed=seed,
                      length=2**40, backgrounds=BACKGROUNDS, simple_fraction=simple_fraction)
    items, index = [], 0
    while len(items) < num_clips:
        if not single_shape or ds.clip_params(index).attributes["num_objects"] == 1:
            items.append(ds[index])
        index += 1
    return _batch(items)


def shuffle_frames(videos: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Videos (B, C, F, H, W), each with its frames in a random order other than the original (seeded)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty_like(videos)
    identity = torch.arange(videos.shape[2])
    for i, clip in enumerate(videos):
        order = identity
        while torch.equal(order, identity):
            order = torch.randperm(len(identity), generator=g)
        out[i] = clip[:, order]
    return out


__all__ = ["BACKGROUNDS", "FRAME_SKIP", "ClipStream", "labelled_clips", "shuffle_frames"]
