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

Stages that do not read each other's parts may train side by side (``jobs=2``, ``--jobs 2``): each
stage then runs as its own ``python -m minifusion train STAGE`` process, started once the stages it
reads (``NEEDS``) have finished, with its output in ``OUT/logs/STAGE.log``. On two cores the wall
time is that of the longest chain, autoencoder -> t2i -> keyframes, instead of the sum of all stages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from minifusion.checks import positive_int
from minifusion.json_files import read_json
from minifusion.training.recipes.common import METRICS_NAME, load_recipe, run_dir
from minifusion.training.recipes.stages import STAGES

ORDER = ("text_encoder", "autoencoder", "t2i", "keyframes", "interpolation", "decoder", "mfi")  # training order
# the stages whose parts each stage reads from the pipeline folder: it starts once they have finished
NEEDS = {name: stage.requires for name, stage in STAGES.items()}


class StageFailed(RuntimeError):
    """A stage trained side by side (``jobs`` > 1) exited with an error; the message names its log."""


def _stage_configs(config) -> dict:
    """Per-stage overrides from a dict or a JSON file ``{"stage": {...}}``; unknown stages are an error."""
    if config is None:
        return {}
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist")
        config = read_json(path, "config file")
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
              temporal: str | None = None, variant: str | None = None, skip: Sequence[str] = (),
              jobs: int = 1) -> Path:
    """Train every stage of ``ORDER`` (minus ``skip``) into ``out_dir``; returns ``out_dir``.

    Args:
        steps: optimiser steps of *every* stage (default: each recipe's own budget).
        config: ``{"stage": overrides}`` as a dict or JSON file (see the module docstring).
        resume: continue a stage that stopped part-way; finished stages are always skipped.
        data_dir, seed, progress: passed to every stage.
        temporal: the keyframe model's temporal variant; variant: the video decoder's variant.
        skip: stage names to leave out, e.g. ("mfi",).
        jobs: stages trained at once, each in its own process (1: one after another, in this process).
    """
    from minifusion.training.distributed import init_distributed

    positive_int("jobs", jobs, note="(stages trained at once)")
    ctx = init_distributed()
    if jobs > 1 and ctx.world_size > 1:
        raise ValueError(f"jobs {jobs} trains stages in separate processes; under torchrun ({ctx.world_size} "
                         "processes) use jobs 1, each stage then runs on every process")
    progress = progress and ctx.is_main  # under torchrun rank 0 alone prints (and writes files)
    skip = tuple(skip or ())
    bad = sorted(set(skip) - set(ORDER))
    if bad:
        raise ValueError(f"cannot skip {bad}: not stages; allowed: {', '.join(ORDER)}")
    configs = _stage_configs(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = {}  # stage -> target steps, in ORDER
    for name in ORDER:
        if name in skip:
            continue
        target = steps if steps is not None else load_recipe(STAGES[name].recipe_class, configs.get(name)).training.steps
        if _finished(out_dir, name, target):
            if progress:
                print(f"all: {name} already trained to step {target} in {out_dir}; skipped", flush=True)
            continue
        todo[name] = target
    if jobs > 1:
        _train_side_by_side(out_dir, todo, jobs, config=config, steps=steps, resume=resume, data_dir=data_dir,
                            seed=seed, temporal=temporal, variant=variant, progress=progress)
        return out_dir
    timings = {}
    for name, target in todo.items():
        stage = STAGES[name]
        stage_config = configs.get(name)
        extra = {}
        if name == "keyframes" and temporal is not None:
            extra["temporal"] = temporal
        if name == "decoder" and variant is not None:
            extra["variant"] = variant
        has_checkpoints = _has_checkpoints(out_dir, name)
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


def _has_checkpoints(out_dir: Path, stage: str) -> bool:
    return any((run_dir(out_dir, stage) / "checkpoints").glob("step_*.pt"))


def _stage_command(name: str, out_dir: Path, config_file: Path | None, *, steps, resume, data_dir, seed,
                   temporal, variant) -> list[str]:
    """The ``python -m minifusion train STAGE`` command line that trains one stage as ``train all`` would."""
    cmd = [sys.executable, "-m", "minifusion", "train", name, "--out", str(out_dir), "--no-progress"]
    options = {"--config": config_file, "--steps": steps, "--data": data_dir, "--seed": seed,
               "--temporal": temporal if name == "keyframes" else None,
               "--variant": variant if name == "decoder" else None}
    for flag, value in options.items():
        if value is not None:
            cmd += [flag, str(value)]
    if resume and _has_checkpoints(out_dir, name):
        cmd.append("--resume")
    return cmd


def _train_side_by_side(out_dir: Path, todo: dict, jobs: int, *, config, steps, resume, data_dir, seed,
                        temporal, variant, progress: bool, poll_seconds: float = 1.0, command=None) -> None:
    """Train the stages of ``todo`` in up to ``jobs`` processes at once, each after the stages it ``NEEDS``.

    ``command(name, out_dir, config_file, **options)`` gives a stage's command line (default
    ``_stage_command``; the tests pass stand-ins that only sleep or fail).
    """
    command = command or _stage_command
    config_file = None
    if isinstance(config, dict):  # the stage commands read a file: write the dict next to the logs
        config_file = out_dir / "logs" / "all_config.json"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps(config, indent=2) + "\n")
    elif config is not None:
        config_file = Path(config).resolve()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))  # the cores, shared out
    pending, running, timings, failed = list(todo), {}, {}, []
    start_all = time.perf_counter()
    while pending or running:
        for name in list(pending):
            if len(running) >= jobs:
                break
            if any(need in pending or need in running for need in NEEDS[name]):
                continue
            log = out_dir / "logs" / f"{name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            cmd = command(name, out_dir.resolve(), config_file, steps=steps, resume=resume, data_dir=data_dir,
                          seed=seed, temporal=temporal, variant=variant)
            handle = open(log, "w")
            handle.write(" ".join(cmd) + "\n")
            handle.flush()
            running[name] = (subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env),
                             handle, time.perf_counter(), log)
            pending.remove(name)
            if progress:
                beside = [other for other in running if other != name]
                print(f"all: training {name} ({todo[name]} steps){' beside ' + ', '.join(beside) if beside else ''}; "
                      f"log {log}", flush=True)
        time.sleep(poll_seconds)
        for name, (proc, handle, start, log) in list(running.items()):
            if proc.poll() is None:
                continue
            handle.close()
            del running[name]
            timings[name] = time.perf_counter() - start
            if proc.returncode != 0:
                failed.append((name, proc.returncode, log))
                pending.clear()  # start nothing new; let the running stages finish
            elif progress:
                print(f"all: {name} finished in {timings[name] / 60:.1f} min", flush=True)
    if failed:
        said = "; ".join(f"{name} (exit code {code}, log {log})" for name, code, log in failed)
        raise StageFailed(f"train all stopped: {said}; the stages that finished are kept, re-run to continue")
    if progress:
        done = ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()) or "nothing to do"
        print(f"all: {out_dir} complete in {(time.perf_counter() - start_all) / 60:.1f} min, {jobs} stages at once "
              f"({done})", flush=True)


__all__ = ["NEEDS", "ORDER", "StageFailed", "train_all"]
