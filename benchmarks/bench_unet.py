"""Forward + backward speed of the default keyframe U-Net on the CPU, against the machine's matmul peak.

    .venv/bin/python benchmarks/bench_unet.py                # default: conv1d_attn1d_blocks
    .venv/bin/python benchmarks/bench_unet.py --temporal conv3d_attn1d_blocks --steps 5

One training step of ``KeyframeUNet()`` (toy default) on a (4, 4, 8, 16, 16) latent batch with
text context (4 x 8 tokens, some padded). FLOPs are counted with ``torch.utils.flop_counter``
(forward + backward, attention included); the matmul peak is the best of a loop of fp32
``n x n`` matrix products in the same process, so the fraction compares like with like.
Small convs, norms and attention over few tokens keep a toy U-Net far below the peak; the number
says how far. Timings are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from minifusion.models import KeyframeUNet, KeyframeUNetConfig


def matmul_peak_flops(n: int = 1024, repeats: int = 10, device: str | torch.device = "cpu") -> float:
    """Best fp32 matmul throughput (FLOP/s) over ``repeats`` products of n x n matrices."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def bench_unet_step(
    *,
    temporal: str = "conv1d_attn1d_blocks",
    batch: int = 4,
    frames: int = 8,
    size: int = 16,
    text_length: int = 8,
    steps: int = 3,
    warmup: int = 1,
    matmul_size: int = 1024,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict:
    """Time forward + backward of the default KeyframeUNet; count its FLOPs; compare with matmul peak.

    Returns a dict: params, batch shape, flops_per_step (forward + backward), seconds_per_step
    (median of ``steps``), achieved_gflops, matmul_peak_gflops, fraction_of_peak, threads.
    """
    torch.manual_seed(seed)
    model = KeyframeUNet(KeyframeUNetConfig(temporal=temporal)).to(device).train()
    cfg = model.config
    sample = torch.randn(batch, cfg.in_channels, frames, size, size, device=device)
    text = torch.randn(batch, text_length, cfg.cross_attention_dim, device=device)
    mask = torch.ones(batch, text_length, dtype=torch.bool, device=device)
    mask[:, text_length // 2 :] = torch.arange(batch, device=device)[:, None] % 2 == 0  # half the prompts padded
    timestep = torch.randint(0, 1000, (batch,), device=device)
    target = torch.randn_like(sample)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(sample, timestep, text, mask), target)
        loss.backward()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    peak = matmul_peak_flops(matmul_size, device=device)
    return {
        "temporal": temporal,
        "params": model.num_parameters(),
        "batch": (batch, cfg.in_channels, frames, size, size),
        "flops_per_step": flops,
        "seconds_per_step": seconds,
        "achieved_gflops": flops / seconds / 1e9,
        "matmul_peak_gflops": peak / 1e9,
        "fraction_of_peak": flops / seconds / peak,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def format_table(result: dict) -> str:
    rows = [
        ("model", f"KeyframeUNet ({result['temporal']}), {result['params'] / 1e6:.2f}M params"),
        ("batch (B, C, F, H, W)", str(result["batch"])),
        ("device / threads", f"{result['device']} / {result['threads']}"),
        ("FLOPs per step (fwd + bwd)", f"{result['flops_per_step'] / 1e9:.2f} GFLOP"),
        ("time per step (median)", f"{result['seconds_per_step'] * 1e3:.0f} ms"),
        ("achieved", f"{result['achieved_gflops']:.1f} GFLOP/s"),
        ("fp32 matmul peak", f"{result['matmul_peak_gflops']:.1f} GFLOP/s"),
        ("fraction of peak", f"{100 * result['fraction_of_peak']:.1f} %"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--temporal", default="conv1d_attn1d_blocks")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--matmul-size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = bench_unet_step(temporal=args.temporal, steps=args.steps, matmul_size=args.matmul_size, device=args.device)
    print(format_table(result))
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end of the run)")


if __name__ == "__main__":
    main()
