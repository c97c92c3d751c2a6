"""Every speed and memory benchmark in one run: tables on stdout, all figures in one JSON file.

    .venv/bin/python -m minifusion bench [--json FILE] [--quick] [--no-peers] [--checkpoint DIR] [--threads N]
    .venv/bin/python benchmarks/run_all.py --quick            # the same, from the checkout

Sections (``python -m minifusion bench --help`` says what each figure means):
``unet_training_step`` (``bench_unet.bench_unet_vs_peers``), ``interpolation``
(``bench_interpolation``), ``end_to_end`` (``bench_end_to_end``), ``data`` (``bench_data``),
``cuda`` (``bench_cuda``, only where a GPU is present), then ``targets`` (``bench_report.judge``) and
``meta`` (machine, versions, threads, load average). ``--quick`` runs every code path at tiny
sizes with one step: a correctness check (``make test`` runs it), not a measurement.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bench_report as report
import torch
from bench_data import bench_render
from bench_end_to_end import BASELINE, bench_end_to_end
from bench_interpolation import bench_interpolation
from bench_unet import DEFAULT_BATCH, bench_unet_vs_peers


@dataclass(frozen=True)
class Sizes:
    """What a full run and a quick run measure."""

    unet_batch: tuple[int, int, int, int, int]
    unet_steps: int
    unet_warmup: int
    matmul_size: int
    interpolation_keyframes: int
    interpolation_steps: int
    end_to_end_steps: int | None  # None: the checkpoint's default samplers and steps
    end_to_end_baseline: dict  # the older sampling the defaults are compared with
    end_to_end_threads: tuple[int, ...]  # thread counts of that comparison
    data_seconds: float


FULL = Sizes(unet_batch=DEFAULT_BATCH, unet_steps=5, unet_warmup=2, matmul_size=1024, interpolation_keyframes=8,
             interpolation_steps=25, end_to_end_steps=None, end_to_end_baseline=BASELINE, end_to_end_threads=(1, 2),
             data_seconds=3.0)
QUICK = Sizes(unet_batch=(1, 4, 2, 16, 16), unet_steps=1, unet_warmup=0, matmul_size=256, interpolation_keyframes=3,
              interpolation_steps=1, end_to_end_steps=2,
              end_to_end_baseline={**BASELINE, "steps": 2, "interpolation_steps": 2}, end_to_end_threads=(1,),
              data_seconds=0.2)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _meta(quick: bool, peers: bool) -> dict:
    return {
        "quick": quick,
        "peers": peers,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": _version("diffusers"),
        "video-diffusion-pytorch": _version("video-diffusion-pytorch"),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def run(*, quick: bool = False, peers: bool = True, checkpoint: str | Path | None = None, threads: int | None = None,
        json_path: str | Path | None = None, cuda: bool | None = None, log=None) -> dict:
    """Run every section; print nothing but ``log`` lines (progress); return (and write) the results.

    ``cuda``: None = the GPU section where ``torch.cuda.is_available()``; False skips it.
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    sizes = QUICK if quick else FULL
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    results: dict = {"meta": _meta(quick, peers)}
    timings = {}
    try:
        sections = [
            ("unet_training_step", lambda: bench_unet_vs_peers(
                batch=sizes.unet_batch, steps=sizes.unet_steps, warmup=sizes.unet_warmup,
                matmul_size=sizes.matmul_size, peers=peers)),
            ("interpolation", lambda: bench_interpolation(
                num_keyframes=sizes.interpolation_keyframes, steps=sizes.interpolation_steps)),
            ("end_to_end", lambda: bench_end_to_end(checkpoint=checkpoint, steps=sizes.end_to_end_steps,
                                                    threads=threads, baseline=sizes.end_to_end_baseline,
                                                    thread_counts=sizes.end_to_end_threads)),
            ("data", lambda: bench_render(seconds=sizes.data_seconds, warmup=5 if quick else 20)),
        ]
        if cuda if cuda is not None else torch.cuda.is_available():
            from bench_cuda import bench_cuda

            sections.append(("cuda", lambda: bench_cuda(quick=quick, checkpoint=checkpoint or _shipped())))
        for name, fn in sections:
            log(f"bench: {name} ...")
            start = time.perf_counter()
            results[name] = fn()
            timings[name] = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)
    results["targets"] = report.judge(results)
    results["meta"]["section_seconds"] = timings
    results["meta"]["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if json_path is not None:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _shipped() -> Path:
    from minifusion.pipelines import pretrained

    return Path(pretrained())


def main(argv: list[str] | None = None) -> int:
    from minifusion.cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
