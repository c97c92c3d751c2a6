"""What every stage recipe shares: JSON-loadable recipe configs, data options, single-frame datasets,
the pipeline-folder layout, the scheduler config file and PSNR.

Pipeline folder (``OUT``) written by the stages, diffusers-style::

    OUT/autoencoder/          save_pretrained of the autoencoder (with its latent scaling_factor)
    OUT/text_encoder/         save_pretrained of the text encoder (vocabulary in its config)
    OUT/unet/                 save_pretrained of the T2I U-Net
    OUT/scheduler/scheduler_config.json
    OUT/runs/<stage>/         the run folder: recipe.json, training_config.json, log.csv, loss.png,
                              checkpoints/, model/ (the trainer's export), metrics.json, samples.png
    OUT/runs/cache/           latent caches (``LatentCache``)

Recipe configs are dataclasses of dataclasses (model configs, ``TrainingConfig``, ``DataOptions``)
and plain values. A JSON config file holds any subset of the keys: the given ones replace the
defaults, nested objects are merged, and an unknown key raises a ValueError listing the allowed ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from minifusion.checks import check_int, positive_int
from minifusion.json_files import read_json
from minifusion.models.modeling_utils import atomic_write_bytes

R = TypeVar("R")
SCHEDULER_CONFIG_NAME = "scheduler_config.json"
RECIPE_NAME = "recipe.json"
METRICS_NAME = "metrics.json"


# -- recipe configs <-> JSON ---------------------------------------------------------------------
def recipe_to_dict(recipe: Any) -> dict:
    """A (nested) dataclass as plain JSON-able values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(recipe), default=str))


def _merge(obj: Any, changes: dict, where: str) -> Any:
    """``obj`` (a dataclass) with ``changes`` applied; nested dataclasses are merged recursively."""
    if not isinstance(changes, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(changes).__name__}: {changes!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise ValueError(f"unknown {where} keys {unknown}; allowed: {sorted(fields)}")
    updates = {}
    for key, value in changes.items():
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            updates[key] = _merge(current, value, f"{where}.{key}")
        elif isinstance(value, list) and (isinstance(current, tuple) or current is None):
            updates[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            updates[key] = value
    try:
        return dataclasses.replace(obj, **updates)  # runs __post_init__ validation again
    except TypeError as e:
        raise ValueError(f"bad {where} values {updates}: {e}") from None


def load_recipe(recipe_class: type[R], config: R | dict | str | os.PathLike | None) -> R:
    """A recipe from None (defaults), a recipe object, a dict of overrides or a JSON file of overrides."""
    if config is None:
        return recipe_class()
    if isinstance(config, recipe_class):
        return dataclasses.replace(config)
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist")
        config = read_json(path, "config file")
    if not isinstance(config, dict):
        raise ValueError(f"config must be a {recipe_class.__name__}, a dict, a JSON file path or None, "
                         f"got {type(config).__name__}")
    recipe = _merge(recipe_class(), config, recipe_class.__name__)
    if hasattr(recipe, "validate"):
        recipe.validate()
    return recipe


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())
    return path


# -- data ----------------------------------------------------------------------------------------
@dataclass
class DataOptions:
    split: str = "train"  # Moving Shapes split: "train", "val" or "heldout"
    num_clips: int = 10_000  # Moving Shapes clips (the folder's clip count with `folder`)
    num_frames: int = 8  # frames per clip the single frames are picked from
    frame_skip: int = 4  # source frames between those frames (Moving Shapes)
    folder_frame_skip: int = 1  # the same for a clip folder (its frame rate is unknown)
    size: int = 64  # frame height and width in pixels
    backgrounds: tuple[str, ...] = ("black", "light")  # Moving Shapes backgrounds
    seed: int = 0  # dataset seed (which clips, which frames)
    folder: str | None = None  # a ClipFolder to train on instead of Moving Shapes (CLI: --data DIR)


def build_clips(data: DataOptions) -> Dataset:
    """The clip dataset of ``data``: ``MovingShapes`` or, with ``data.folder``, a ``ClipFolder``."""
    from minifusion.data import ClipFolder, MovingShapes

    if data.folder is not None:
        root = Path(data.folder)
        if not root.is_dir():
            raise ValueError(f"--data folder {str(root)!r} does not exist or is not a folder")
        try:
            return ClipFolder(root, num_frames=data.num_frames, size=data.size, frame_skip=data.folder_frame_skip)
        except FileNotFoundError as e:  # e.g. no captions.txt: bad input, not a crash
            raise ValueError(str(e)) from None
    return MovingShapes(split=data.split, num_frames=data.num_frames, size=data.size, frame_skip=data.frame_skip,
                        seed=data.seed, length=data.num_clips, backgrounds=data.backgrounds)


class FrameDataset(Dataset):
    """Single frames of a clip dataset, as 1-frame videos (what image-level stages train on).

    Item i is ``{"video": (C, 1, H, W) in [-1, 1], "caption": str, "attributes": dict}``: frame
    ``frames[i % k]`` of clip ``i // k``, where the k frames of each clip are all its frames
    (``frames_per_clip=None``) or k of them drawn without replacement from (seed, clip) - so item
    i is a pure function of i. Moving Shapes frames are rendered alone (cheap); other datasets
    decode the clip.
    """

    def __init__(self, clips: Dataset, *, frames_per_clip: int | None = None, seed: int = 0) -> None:
        self.clips, self.seed = clips, int(seed)
        self.num_frames = int(clips.num_frames)
        k = self.num_frames if frames_per_clip is None else frames_per_clip
        self.frames_per_clip = check_int("frames_per_clip", k, minimum=1, maximum=self.num_frames,
                                         note="(the clips' num_frames) or None (all frames)")

    def __len__(self) -> int:
        return len(self.clips) * self.frames_per_clip

    def frame_index(self, index: int) -> tuple[int, int]:
        """(clip, frame) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a FrameDataset of {len(self)} frames")
        clip, j = divmod(int(index), self.frames_per_clip)
        if self.frames_per_clip == self.num_frames:
            return clip, j
        chosen = np.sort(np.random.default_rng((self.seed, clip)).choice(self.num_frames, self.frames_per_clip,
                                                                         replace=False))
        return clip, int(chosen[j])

    def __getitem__(self, index: int) -> dict:
        clip, frame = self.frame_index(index)
        if hasattr(self.clips, "clip_params") and hasattr(self.clips, "render"):  # Moving Shapes: render one frame
            params = self.clips.clip_params(clip)
            time = float(params.times[frame])
            video = self.clips.render(clip, [time])  # (C, 1, H, W)
            attributes = {**params.attributes, "frame_time": time}
            return {"video": video, "caption": params.caption, "attributes": attributes}
        item = self.clips[clip]
        return {"video": item["video"][:, frame : frame + 1], "caption": item["caption"],
                "attributes": dict(item.get("attributes") or {})}

    def fingerprint_fields(self) -> dict:
        """What defines the items (for ``LatentCache``), including a clip folder's files."""
        from minifusion.training.latent_cache import dataset_description

        fields = {"clips": dataset_description(self.clips), "frames_per_clip": self.frames_per_clip,
                  "seed": self.seed}
        if hasattr(self.clips, "entries"):  # ClipFolder: its path, files and captions
            fields["root"] = str(Path(self.clips.root).resolve())
            fields["files"] = [[p.name, caption, p.stat().st_mtime_ns if p.is_file() else 0]
                               for p, caption in self.clips.entries]
        return fields


def collate_frames(items: list[dict]) -> dict:
    """Items of a ``FrameDataset`` -> {"video": (B, C, H, W)} (captions and attributes dropped)."""
    return {"video": torch.stack([it["video"][:, 0] for it in items])}


def spread_indices(length: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(length)`` (all of them if count >= length)."""
    if count >= length:
        return list(range(length))
    return torch.linspace(0, length - 1, count).round().long().tolist()


def stack_frames(dataset: Dataset, indices: list[int]) -> torch.Tensor:
    """Frames of a ``FrameDataset`` at ``indices`` -> (N, C, H, W)."""
    return torch.stack([dataset[i]["video"][:, 0] for i in indices])


# -- layout --------------------------------------------------------------------------------------
def run_dir(out_dir: str | os.PathLike, stage: str) -> Path:
    return Path(out_dir) / "runs" / stage


def cache_dir(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "runs" / "cache"


def check_steps(steps: int | None) -> None:
    if steps is not None:
        positive_int("steps", steps)


def prepare_recipe(recipe_class: type[R], stage: str, out_dir: str | os.PathLike, *, config, steps, resume,
                   data_dir, seed, progress) -> R:
    """The recipe of a run: ``config`` (or, resuming without one, the run's saved recipe) + CLI overrides."""
    from minifusion.training.checkpointing import list_checkpoints

    check_steps(steps)
    run = run_dir(out_dir, stage)
    if not resume and ((run / "log.csv").is_file() or list_checkpoints(run / "checkpoints")):
        raise ValueError(f"{str(run)!r} already holds a training run; pass resume=True (CLI: --resume) to "
                         "continue it, or choose another --out")
    saved = run / RECIPE_NAME
    if config is None and resume and saved.is_file():
        config = saved
    recipe = load_recipe(recipe_class, config)
    changes: dict[str, Any] = {"progress": bool(progress)}
    if steps is not None:
        changes["steps"] = steps
    if seed is not None:
        changes["seed"] = seed
    recipe.training = recipe.training.replace(**changes)
    data_changes: dict[str, Any] = {}
    if data_dir is not None:
        data_changes["folder"] = str(data_dir)
    if seed is not None:
        data_changes["seed"] = seed
    if data_changes:
        recipe.data = dataclasses.replace(recipe.data, **data_changes)
    if hasattr(recipe, "validate"):
        recipe.validate()
    return recipe


def train_run(trainer, recipe, run: Path, *, resume: bool):
    """Write the run's recipe (rank 0 only), train, and return (the ``TrainingResult``, the session's seconds)."""
    import time

    if trainer.is_main:
        write_json(run / RECIPE_NAME, recipe_to_dict(recipe))
    start = time.perf_counter()
    result = trainer.train(resume=resume)
    return result, time.perf_counter() - start


def check_resumed_field(run: Path, recipe, field: str, *, resume: bool) -> None:
    """A resumed run keeps the variant it was started with (``temporal``, ``variant``): another needs another --out."""
    saved_file = run / RECIPE_NAME
    if not resume or not saved_file.is_file():
        return
    saved, wanted = getattr(load_recipe(type(recipe), saved_file), field), getattr(recipe, field)
    if saved != wanted:
        raise ValueError(f"the run in {str(run)!r} trains {field} {saved!r}; it cannot resume as {wanted!r} "
                         "(use another --out for another variant)")


def seconds_per_step(log_path: Path) -> float:
    """Median training seconds per step over the logged windows of ``log.csv`` (NaN without any)."""
    from minifusion.training.metrics import read_log

    rates = [float(r["steps_per_sec"]) for r in read_log(log_path) if float(r.get("steps_per_sec") or 0) > 0]
    return 1.0 / float(np.median(rates)) if rates else math.nan


# -- scheduler config ----------------------------------------------------------------------------
def save_scheduler_config(scheduler, out_dir: str | os.PathLike) -> Path:
    """``OUT/scheduler/scheduler_config.json``: the pipeline's sampler for a model trained with ``scheduler``
    (its noise schedule and prediction type; ``sampling_scheduler_config``)."""
    from minifusion.pipelines.model_index import sampling_scheduler_config

    return write_json(Path(out_dir) / "scheduler" / SCHEDULER_CONFIG_NAME, sampling_scheduler_config(scheduler))


def load_scheduler(out_dir: str | os.PathLike, scheduler_class=None):
    """The scheduler saved in ``OUT/scheduler`` as ``scheduler_class`` (default: the saved class)."""
    from minifusion import diffusion

    path = Path(out_dir) / "scheduler" / SCHEDULER_CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"no scheduler config at {str(path)!r}; train the t2i stage first: "
                         f"python -m minifusion train t2i --out {out_dir}")
    config = json.loads(path.read_text())
    name = config.pop("_class_name", "DDPMScheduler")
    cls = scheduler_class or getattr(diffusion, name, None)
    if cls is None:
        raise ValueError(f"{str(path)!r} names an unknown scheduler class {name!r}")
    return cls.from_config(config)


# -- metrics -------------------------------------------------------------------------------------
