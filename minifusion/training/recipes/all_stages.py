"""Stage ``all``: every stage in training order into one pipeline folder.

FusionFrames (arXiv 2311.13073, sections 3-4) trains its parts one after another: the text
encoder (on text alone), the latent autoencoder, the text-to-image model, the keyframe model on top of the frozen T2I U-Net, the
interpolation model (initialised from the T2I U-Net) and the temporal video decoder. ``train_all``
runs the recipes in that order (``ORDER``), each with its defaults unless the config file names it:

    {"t2i": {"training": {"steps": 4000}}, "keyframes": {"temporal": "conv1d_attn3d_blocks"}}

A stage whose run already finished its step budget (``OUT/runs/STAGE/metrics.json`` at the target
step, and its parts present) is skipped, so ``train all`` can be re-run after an interruption;
``--resume`` also continues a stage that stopped part-way from its newest checkpoint. The masked-frame
baseline ``mfi`` is trained last; it is not part of the pipeline and ``skip=("mfi",)`` leaves it out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from minifusion.training.recipes.common import METRICS_NAME, load_recipe, run_dir

ORDER = ("text_encoder", "autoencoder", "t2i", "keyframes", "interpolation", "decoder", "mfi")  # training order


def _stage_configs(config) -> dict:
    """Per-stage overrides from a dict or a JSON file ``{"stage": {...}}``; unknown stages are an error."""
    if config is None:
        return {}
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"the config of stage 'all' must map stage names to recipe overrides, got {config!r}")
    unknown = sorted(set(config) - set(ORDER))
    if unknown:
        raise ValueError(f"config names unknown stages {unknown}; allowed: {', '.join(ORDER)}")
    return config


def _finished(out_dir: Path, stage: str, target_steps: int) -> bool:
    metrics = run_dir(out_dir, stage) / METRICS_NAME
    if not metrics.is_file():
        return False
    try:
        return int(json.loads(metrics.read_text()).get("step", -1)) == target_steps
    except (json.JSONDecodeError, ValueError, TypeError):
        return False


def train_all(out_dir: str | Path, *, steps: int | None = None, config=None, resume: bool = False,
              data_dir: str | Path | None = None, seed: int | None = None, progress: bool = True,
              temporal: str | None = None, variant: str | None = None, skip: Sequence[str] = ()) -> Path:
    """Train every stage of ``ORDER`` (minus ``skip``) into ``out_dir``; returns ``out_dir``.

    Args:
        steps: optimiser steps of *every* stage (default: each recipe's own budget).
        config: ``{"stage": overrides}`` as a dict or JSON file (see the module docstring).
        resume: continue a stage that stopped part-way; finished stages are always skipped.
        data_dir, seed, progress: passed to every stage.
        temporal: the keyframe model's temporal variant; variant: the video decoder's variant.
        skip: stage names to leave out, e.g. ("mfi",).
    """
    from minifusion.training.distributed import init_distributed
    from minifusion.training.recipes import STAGES

    progress = progress and init_distributed().is_main  # under torchrun rank 0 alone prints (and writes files)
    skip = tuple(skip or ())
    bad = sorted(set(skip) - set(ORDER))
    if bad:
        raise ValueError(f"cannot skip {bad}: not stages; allowed: {', '.join(ORDER)}")
    configs = _stage_configs(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = {}
    for name in ORDER:
        if name in skip:
            continue
        stage = STAGES[name]
        stage_config = configs.get(name)
        target = steps if steps is not None else load_recipe(stage.recipe_class, stage_config).training.steps
        if _finished(out_dir, name, target):
            if progress:
                print(f"all: {name} already trained to step {target} in {out_dir}; skipped", flush=True)
            continue
        extra = {}
        if name == "keyframes" and temporal is not None:
            extra["temporal"] = temporal
        if name == "decoder" and variant is not None:
            extra["variant"] = variant
        has_checkpoints = any((run_dir(out_dir, name) / "checkpoints").glob("step_*.pt"))
        if progress:
            print(f"all: training {name} ({target} steps) into {out_dir}", flush=True)
        start = time.perf_counter()
        stage.train(out_dir, steps=steps, config=stage_config, resume=resume and has_checkpoints,
                    data_dir=data_dir, seed=seed, progress=progress, **extra)
        timings[name] = time.perf_counter() - start
    if progress:
        done = ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()) or "nothing to do"
        print(f"all: {out_dir} complete ({done})", flush=True)
    return out_dir


__all__ = ["ORDER", "train_all"]
