"""Interpolation windows: K keyframes ``frame_skip`` source frames apart and the n frames between each pair.

The data the interpolation and MFI stages train on and the interpolation evaluation measures on:
pass 1 (frame skip 4) gives keyframes at source times t0 + 4k and the targets at t0 + 4k + 1, 2, 3;
pass 2 (frame skip 1) gives keyframes at t0 + k and the quarter frames t0 + k + 0.25, 0.5, 0.75,
which Moving Shapes renders exactly (continuous-time trajectories).

Taught in notebook 09 (notebooks/09_interpolation.ipynb).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset


def window_length(num_keyframes: int, frames_per_pair: int) -> int:
    """Frames of a window: K keyframes + n between each pair = (n + 1)(K - 1) + 1 (8, 3 -> 29)."""
    return (frames_per_pair + 1) * (num_keyframes - 1) + 1


class InterpolationClips(Dataset):
    """Windows of K keyframes ``frame_skip`` source frames apart and the n frames between each pair.

    Item i: ``{"video": (C, (n + 1)(K - 1) + 1, H, W) in [-1, 1], "caption", "attributes": {"start"}}``
    rendered at times ``start + j * frame_skip / (n + 1)``. ``start`` is 0 when the window fills the
    clip, else a whole source frame drawn from (seed, i). Moving Shapes renders any (float) time;
    other datasets (``ClipFolder``) give whole frames only, so they need ``frame_skip == n + 1``
    and their clips must have exactly that many frames.
    """

    def __init__(self, clips: Dataset, *, frame_skip: float, num_keyframes: int, frames_per_pair: int = 3,
                 seed: int = 0) -> None:
        self.clips, self.frame_skip, self.seed = clips, float(frame_skip), int(seed)
        self.num_keyframes, self.frames_per_pair = int(num_keyframes), int(frames_per_pair)
        self.num_frames = window_length(self.num_keyframes, self.frames_per_pair)
        self.renders = hasattr(clips, "render") and hasattr(clips, "clip_params")
        if not self.renders and (self.frame_skip != self.frames_per_pair + 1 or clips.num_frames != self.num_frames):
            raise ValueError(f"a {type(clips).__name__} gives whole frames only: frame_skip {frame_skip!r} must be "
                             f"{self.frames_per_pair + 1} and its clips must have {self.num_frames} frames, got "
                             f"{clips.num_frames} (the quarter-frame pass needs Moving Shapes)")

    def __len__(self) -> int:
        return len(self.clips)

    def times(self, index: int) -> np.ndarray:
        """Source times of item ``index``'s frames (Moving Shapes)."""
        clip_times = self.clips.clip_params(index).times
        duration = float(clip_times[-1] - clip_times[0])
        span = self.frame_skip * (self.num_keyframes - 1)
        if span > duration + 1e-9:
            raise ValueError(f"a window of {self.num_keyframes} keyframes {self.frame_skip:g} apart spans {span:g} "
                             f"source frames; the clips last only {duration:g}")
        slack = int(np.floor(duration - span + 1e-9))
        start = 0 if slack == 0 else int(np.random.default_rng((self.seed, int(index))).integers(slack + 1))
        return clip_times[0] + start + np.arange(self.num_frames) * self.frame_skip / (self.frames_per_pair + 1)

    def __getitem__(self, index: int) -> dict:
        if not self.renders:
            item = self.clips[index]
            return {"video": item["video"], "caption": item.get("caption", ""), "attributes": {"start": 0.0}}
        params, times = self.clips.clip_params(index), self.times(index)
        return {"video": self.clips.render(index, times), "caption": params.caption,
                "attributes": {"start": float(times[0])}}

    def fingerprint_fields(self) -> dict:
        """What defines the items (for ``LatentCache``), including a clip folder's files."""
        from minifusion.training.latent_cache import dataset_description  # the cache key of the wrapped clips

        fields = {"clips": dataset_description(self.clips), "frame_skip": self.frame_skip, "seed": self.seed,
                  "num_keyframes": self.num_keyframes, "frames_per_pair": self.frames_per_pair}
        if hasattr(self.clips, "entries"):  # ClipFolder: without these, another folder's latents would be reused
            fields["root"] = str(Path(self.clips.root).resolve())
            fields["files"] = [[p.name, caption, p.stat().st_mtime_ns if p.is_file() else 0]
                               for p, caption in self.clips.entries]
        return fields
