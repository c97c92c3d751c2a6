"""The paper's ablation tables at toy scale: train every variant from the same weights, evaluate, tabulate.

FusionFrames (arXiv 2311.13073) argues from three comparisons: separate temporal blocks against
temporal layers mixed into the spatial blocks (Table 1), its interpolation network against
masked-frame interpolation (Table 2), temporal video decoders against the image decoder (Table 3).
``python -m minifusion ablate table1|table2|table3`` re-runs one of them here
(``minifusion.eval.ablation_tables`` says what each trains and measures).

Every (variant, seed) run is a folder ``OUT/TABLE/VARIANT/seed_K/``: a pipeline folder whose frozen
parts (autoencoder, text encoder, T2I U-Net, ...) are links to the base pipeline's, the stage's
training run (``runs/STAGE/``, resumable), and ``result.json`` once it has been evaluated. A run
with a result at the same step budget is neither retrained nor re-evaluated, and an interrupted one
resumes from its last checkpoint, so a table can be filled over several sittings. The table is
rendered from the results that exist (mean and sample standard deviation over seeds) to
``OUT/TABLE.md`` and ``OUT/TABLE.json``, with the hardware, the command and what is still missing.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from minifusion.checks import positive_int

RESULT_NAME = "result.json"


@dataclass(frozen=True)
class Column:
    key: str  # the key in result.json
    header: str  # the markdown header
    fmt: str = "{:.3f}"
    better: str = ""  # "higher" / "lower" / "" (shown as an arrow in the header)


@dataclass(frozen=True)
class TableSpec:
    """One ablation table: which stage trains which variants, and how a finished run is measured."""

    key: str  # "table1"
    title: str
    paper: str  # what the paper reports, for the markdown
    variants: tuple[str, ...]
    stage_of: Callable[[str], str | None]  # the training stage of a variant (None: nothing to train)
    train_kwargs: Callable[[str], dict]  # extra keyword arguments of train_<stage> for a variant
    config_of: Callable[[str], dict]  # the recipe overrides of a variant's stage
    links: tuple[str, ...]  # base pipeline entries every run folder links to
    default_steps: int
    columns: tuple[Column, ...]
    evaluate: Callable[..., dict]  # evaluate(run_folder, variant, seed, options) -> {column key: number}
    notes: tuple[str, ...] = field(default_factory=tuple)
    eval_version: int = 1  # raised when ``evaluate`` changes: results of another version are evaluated again


@dataclass
class AblationOptions:
    """What a run is evaluated with; part of the cache key of every result."""

    num_videos: int = 28  # generated videos per run (table 1)
    num_clips: int = 16  # held-out clips per run (tables 2 and 3)
    num_inference_steps: int = 25  # sampling steps of the evaluation
    device: str = "auto"


def run_folder(out: Path, spec: TableSpec, variant: str, seed: int) -> Path:
    return Path(out) / spec.key / variant / f"seed_{seed}"


def prepare_run_folder(folder: Path, base: Path, spec: TableSpec, seed: int) -> None:
    """Link the base pipeline's frozen parts into ``folder``; a latent cache shared by the runs of one seed."""
    from minifusion.training.recipes.common import cache_dir

    folder.mkdir(parents=True, exist_ok=True)
    for name in spec.links:
        target, link = (Path(base) / name).resolve(), folder / name
        if not target.exists():
            raise ValueError(f"the base pipeline {str(base)!r} has no {name!r}; table {spec.key} needs "
                             f"{', '.join(spec.links)} (train them with `python -m minifusion train all`)")
        if not link.exists() and not link.is_symlink():
            link.symlink_to(target, target_is_directory=target.is_dir())
    shared = folder.parent.parent / f"cache_seed_{seed}"  # same seed = same training clips: encode them once
    shared.mkdir(parents=True, exist_ok=True)
    link = cache_dir(folder)
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(shared.resolve(), target_is_directory=True)


def _read_result(path: Path, steps: int, options: AblationOptions, eval_version: int = 1) -> dict | None:
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # an unreadable result is re-made, never trusted
    same = (result.get("steps") == steps and result.get("options") == options.__dict__
            and result.get("eval_version", 1) == eval_version)
    return result if same else None


def run_one(spec: TableSpec, variant: str, seed: int, *, out: Path, base: Path, steps: int,
            options: AblationOptions, progress: bool = True) -> dict:
    """Train (or resume) and evaluate one (variant, seed); cached in ``result.json``."""
    from minifusion.training.recipes import train_stage
    from minifusion.training.recipes.common import run_dir, write_json

    folder = run_folder(out, spec, variant, seed)
    cached = _read_result(folder / RESULT_NAME, steps, options, spec.eval_version)
    if cached is not None:
        return cached
    prepare_run_folder(folder, base, spec, seed)
    stage = spec.stage_of(variant)
    train_seconds = None
    if stage is not None:
        run = run_dir(folder, stage)
        done = _finished_steps(run)
        if done != steps:
            resume = (run / "log.csv").is_file()
            start = time.perf_counter()
            train_stage(stage, folder, steps=steps, config=spec.config_of(variant), resume=resume, seed=seed,
                        progress=progress, **spec.train_kwargs(variant))
            train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    metrics = spec.evaluate(folder, variant, seed, options)
    result = {"table": spec.key, "variant": variant, "seed": seed, "steps": steps, "options": options.__dict__,
              "eval_version": spec.eval_version,
              "metrics": metrics, "train_seconds": train_seconds, "eval_seconds": time.perf_counter() - start,
              "train_seconds_per_step": train_seconds_per_step(folder, stage),
              "finished": datetime.datetime.now().isoformat(timespec="seconds")}
    write_json(folder / RESULT_NAME, result)
    return result


def train_seconds_per_step(folder: Path, stage: str | None) -> float | None:
    """Median seconds per training step over the rows of the run's ``log.csv`` (None without a log).

    The median of the logged rows, not total time / steps: a run filled over several sittings, or
    slowed for a while by other work on the machine, still gets its typical cost."""
    path = Path(folder) / "runs" / str(stage) / "log.csv"
    if stage is None or not path.is_file():
        return None
    import csv

    with path.open(newline="") as f:
        speeds = [float(row["steps_per_sec"]) for row in csv.DictReader(f) if row.get("steps_per_sec")]
    speeds = [v for v in speeds if v > 0]
    return 1.0 / statistics.median(speeds) if speeds else None


def _finished_steps(run: Path) -> int | None:
    metrics = run / "metrics.json"
    if not metrics.is_file():
        return None
    try:
        return json.loads(metrics.read_text()).get("step")
    except json.JSONDecodeError:
        return None


def run_table(spec: TableSpec, *, out: Path, base: Path, steps: int | None = None, seeds: int = 3,
              variants: tuple[str, ...] | None = None, options: AblationOptions | None = None,
              progress: bool = True, command: str | None = None) -> Path:
    """Every (variant, seed) of ``spec`` (cached), then the table; returns the markdown's path."""
    steps = spec.default_steps if steps is None else steps
    positive_int("steps", steps)
    positive_int("seeds", seeds)
    chosen = spec.variants if variants is None else tuple(variants)
    unknown = [v for v in chosen if v not in spec.variants]
    if unknown:
        raise ValueError(f"variants {unknown} are not in {spec.key}; allowed: {list(spec.variants)}")
    options = options or AblationOptions()
    order = sorted(chosen, key=lambda v: spec.stage_of(v) is None)  # untrained rows read the trained runs
    for seed in range(seeds):
        for variant in order:
            if progress:
                print(f"{spec.key}: {variant}, seed {seed} ({steps} steps)", flush=True)
            run_one(spec, variant, seed, out=out, base=base, steps=steps, options=options, progress=progress)
    return write_table(spec, out=out, steps=steps, seeds=seeds, options=options, command=command)


def collect(spec: TableSpec, out: Path, steps: int, seeds: int, options: AblationOptions) -> dict[str, list[dict]]:
    """The cached results of every variant (those with the same budget and options)."""
    found: dict[str, list[dict]] = {}
    for variant in spec.variants:
        for seed in range(seeds):
            path = run_folder(out, spec, variant, seed) / RESULT_NAME
            result = _read_result(path, steps, options, spec.eval_version)
            if result is not None:
                found.setdefault(variant, []).append(result)
    return found


def summarise(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for one value) and count."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def _cell(summary: dict, fmt: str) -> str:
    if summary["mean"] is None:
        return "-"
    text = fmt.format(summary["mean"])
    return text + (f" ± {fmt.format(summary['std'])}" if summary["std"] is not None else " (1 seed)")


def hardware() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()} CPU, {os.cpu_count()} cores, {device}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; Python {platform.python_version()}")


def write_table(spec: TableSpec, *, out: Path, steps: int, seeds: int, options: AblationOptions,
                command: str | None = None, machine: str | None = None) -> Path:
    """Render ``OUT/TABLE.md`` and ``OUT/TABLE.json`` from the cached results.

    ``command`` and ``machine``: what the table states ran it (default: this process's command line
    and ``hardware()``)."""
    from minifusion.training.recipes.common import write_json

    found = collect(spec, Path(out), steps, seeds, options)
    rows = {variant: {c.key: summarise([r["metrics"].get(c.key) for r in results]) for c in spec.columns}
            for variant, results in found.items()}
    missing = [f"{v} seed {s}" for v in spec.variants for s in range(seeds)
               if not any(r["seed"] == s for r in found.get(v, []))]
    command = command or "python -m minifusion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    machine = machine or hardware()
    arrows = {"higher": " ↑", "lower": " ↓", "": ""}
    lines = [f"# {spec.title}", "", f"- budget: {steps} training steps per run, seeds 0..{seeds - 1}; evaluation: "
             f"{json.dumps(options.__dict__)}", f"- hardware: {machine}", f"- command: `{command}`",
             f"- made: {datetime.datetime.now().isoformat(timespec='minutes')}", "",
             "| variant | " + " | ".join(c.header + arrows[c.better] for c in spec.columns) + " |",
             "| --- | " + " | ".join("---" for _ in spec.columns) + " |"]
    for variant in spec.variants:
        if variant in rows:
            lines.append(f"| {variant} | " + " | ".join(_cell(rows[variant][c.key], c.fmt) for c in spec.columns)
                         + " |")
    cost = {}
    for variant, results in found.items():
        stage = spec.stage_of(variant)
        per_step = [r.get("train_seconds_per_step") or
                    train_seconds_per_step(run_folder(out, spec, variant, r["seed"]), stage) for r in results]
        cost[variant] = summarise(per_step)
        if variant in rows:
            rows[variant]["train_seconds_per_step"] = cost[variant]
    measured = {v: c for v, c in cost.items() if c["mean"] is not None}
    lines += ["", "Cells: mean ± sample standard deviation over the seeds that finished."]
    if measured:
        lines += ["", "Training cost, seconds per step (median of each run's logged rows, on the hardware above): " + ", ".join(f"{v} {_cell(c, '{:.2f}')}" for v, c in measured.items()) + "."]
    lines += ["", f"Paper: {spec.paper}"]
    lines += [f"- {note}" for note in spec.notes]
    if missing:
        lines += ["", f"Not run yet ({len(missing)}): {', '.join(missing)}."]
    path = Path(out) / f"{spec.key}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    write_json(Path(out) / f"{spec.key}.json", {"table": spec.key, "steps": steps, "seeds": seeds,
                                                 "options": options.__dict__, "hardware": machine,
                                                 "command": command, "rows": rows, "missing": missing,
                                                 "runs": found})
    return path
