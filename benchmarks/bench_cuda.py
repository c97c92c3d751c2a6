"""On a GPU: fp32 against bf16 / fp16 autocast for training and sampling, peak GPU memory, and torch.compile.

    .venv/bin/python benchmarks/bench_cuda.py [--quick]

Runs only where ``torch.cuda.is_available()`` (``python -m minifusion bench`` leaves the section out
on a CPU). Mixed precision as the trainer does it: the forward pass under
``torch.autocast``, backward outside it, a gradient scaler for fp16. Three measurements:

1. training step (forward + backward) of a keyframe U-Net of the wider ``GPU_PRESET`` on a
   (8, 4, 8, 32, 32) batch: seconds, TFLOP/s, peak allocated GPU memory, per precision; the
   speed-up of each autocast dtype over fp32 (target: bf16 >= 1.8x);
2. sampling step (inference forward of the guided batch, 2B videos) of the same model, per precision;
3. ``torch.compile``: the training step compiled, in the fastest precision: compile time and the
   speed-up of the compiled step over the eager one ("helps" when >= 1.05x);
4. with a checkpoint: the pipeline's 29-frame video with and without its own autocast.

The functions take a device, so the same code paths run (slowly) on a CPU in the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_measure import count_flops, median_seconds, synchronize
from bench_unet import matmul_peak_flops, training_inputs

from minifusion.models import KeyframeUNet, KeyframeUNetConfig

GPU_PRESET = {"block_out_channels": (128, 256, 512), "attention_head_dim": 64, "norm_groups": 32,
              "cross_attention_dim": 256, "sample_size": 32}
GPU_BATCH = (8, 4, 8, 32, 32)
TINY_PRESET = {"block_out_channels": (16, 32), "attention_head_dim": 16, "norm_groups": 4, "cross_attention_dim": 32,
               "sample_size": 8}
TINY_BATCH = (1, 4, 2, 8, 8)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
COMPILE_HELPS = 1.05  # compiled / eager speed-up above which compile "helps"


def available_precisions(device: str | torch.device) -> list[str]:
    """fp32, bf16 where the GPU supports it, fp16 (CUDA); fp32 and bf16 elsewhere."""
    if torch.device(device).type != "cuda":
        return ["float32", "bfloat16"]
    return ["float32"] + (["bfloat16"] if torch.cuda.is_bf16_supported() else []) + ["float16"]


def _autocast(device: str | torch.device, precision: str):
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[precision])


def _reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if torch.device(device).type == "cuda" else None


def training_step(model, inputs: dict, device, precision: str):
    """Forward under autocast (none for fp32), loss in fp32, backward outside autocast, scaler for fp16."""
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=precision == "float16")

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            out = model(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"],
                        inputs["encoder_attention_mask"])
        scaler.scale(F.mse_loss(out.float(), inputs["target"])).backward()
    return step


def sampling_step(model, inputs: dict, device, precision: str):
    """One denoising step's network call: the guided batch (cond + uncond, 2B videos), no gradients."""
    doubled = {k: torch.cat([v, v]) for k, v in inputs.items()}

    def step() -> None:
        with torch.inference_mode(), _autocast(device, precision):
            model(doubled["sample"], doubled["timestep"], doubled["encoder_hidden_states"],
                  doubled["encoder_attention_mask"])
    return step


def bench_precision(*, preset: dict = GPU_PRESET, batch: tuple = GPU_BATCH, device: str | torch.device = "cuda",
                    precisions: list[str] | None = None, steps: int = 5, warmup: int = 2, compile: bool = True,
                    seed: int = 0) -> dict:
    """Training and sampling per precision, and torch.compile; see the module docstring."""
    precisions = precisions or available_precisions(device)
    torch.manual_seed(seed)
    model = KeyframeUNet(KeyframeUNetConfig(**preset)).to(device).train()
    inputs = training_inputs(batch, cross_attention_dim=model.config.cross_attention_dim, device=device, seed=seed)
    flops = {"training": count_flops(training_step(model, inputs, device, "float32")),
             "sampling": count_flops(sampling_step(model, inputs, device, "float32"))}
    result: dict = {"preset": {k: list(v) if isinstance(v, tuple) else v for k, v in preset.items()},
                    "batch": list(batch), "params": model.num_parameters(), "flops": flops,
                    "device_name": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda"
                    else str(device), "training": {}, "sampling": {}}
    for precision in precisions:
        result.setdefault("matmul_peak_tflops", {})[precision] = matmul_peak_flops(
            2048 if torch.device(device).type == "cuda" else 256, device=device, dtype=DTYPES[precision]) / 1e12
        for kind, make in (("training", training_step), ("sampling", sampling_step)):
            model.zero_grad(set_to_none=True)  # the sampling peak holds no gradients
            _reset_peak(device)
            seconds = median_seconds(make(model, inputs, device, precision), steps=steps, warmup=warmup, device=device)
            result[kind][precision] = {"seconds": seconds, "tflops": flops[kind] / seconds / 1e12,
                                       "peak_memory_bytes": _peak(device)}
    for kind in ("training", "sampling"):
        fp32 = result[kind]["float32"]["seconds"]
        for precision, r in result[kind].items():
            r["speedup_vs_fp32"] = fp32 / r["seconds"]
    if compile:
        best = min(result["training"], key=lambda p: result["training"][p]["seconds"])
        result["compile"] = bench_compile(model, inputs, device, best, steps=steps, warmup=warmup,
                                          eager_seconds=result["training"][best]["seconds"])
    return result


def bench_compile(model, inputs: dict, device, precision: str, *, steps: int, warmup: int,
                  eager_seconds: float) -> dict:
    """The training step with ``torch.compile(model)``; a failure is reported, not raised."""
    try:
        compiled = torch.compile(model)
        step = training_step(compiled, inputs, device, precision)
        synchronize(device)
        start = time.perf_counter()
        step()  # compiles
        synchronize(device)
        compile_seconds = time.perf_counter() - start
        seconds = median_seconds(step, steps=steps, warmup=warmup, device=device)
    except Exception as e:  # noqa: BLE001  (no compiler, an unsupported op: a finding, not a crash)
        return {"precision": precision, "status": "failed", "reason": f"{type(e).__name__}: {str(e)[:300]}"}
    speedup = eager_seconds / seconds
    return {"precision": precision, "status": "ok", "compile_seconds": compile_seconds, "seconds": seconds,
            "eager_seconds": eager_seconds, "speedup": speedup, "helps": speedup >= COMPILE_HELPS}


def bench_pipeline_autocast(checkpoint: str | Path, *, device: str | torch.device = "cuda", steps: int = 25,
                            seed: int = 0) -> dict:
    """The shipped-size pipeline, 29 frames, without and with its own autocast (bf16, else fp16, on CUDA)."""
    from minifusion.pipeline import FusionFramesPipeline

    pipe = FusionFramesPipeline.from_pretrained(checkpoint, device=device)
    out = {}
    for label, enabled in (("float32", False), ("autocast", True)):
        pipe.use_autocast = enabled

        def call() -> None:
            pipe("a red circle moves right", num_inference_steps=steps, interpolation_num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(seed), output_type="pt", progress=False)

        _reset_peak(device)
        seconds = median_seconds(call, steps=1, warmup=1, device=device)
        out[label] = {"seconds": seconds, "peak_memory_bytes": _peak(device)}
    out["speedup"] = out["float32"]["seconds"] / out["autocast"]["seconds"]
    return out


def bench_cuda(*, quick: bool = False, checkpoint: str | Path | None = None, device: str = "cuda") -> dict:
    """The whole GPU section (``--quick``: tiny preset, one step)."""
    result = {"precision": bench_precision(preset=TINY_PRESET if quick else GPU_PRESET,
                                           batch=TINY_BATCH if quick else GPU_BATCH, device=device,
                                           steps=1 if quick else 5, warmup=1 if quick else 2)}
    if checkpoint is not None:
        result["pipeline"] = bench_pipeline_autocast(checkpoint, device=device, steps=2 if quick else 25)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.exit(2, "error: no CUDA device: this benchmark needs a GPU\n")
    import bench_report as report

    result = bench_cuda(quick=args.quick, checkpoint=args.checkpoint)
    print(report.cuda_table(result))
    print(json.dumps(result, default=str)[:2000])


if __name__ == "__main__":
    main()
