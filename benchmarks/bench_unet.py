"""Training-step speed of the default keyframe U-Net, against the machine's matmul peak and against peers.

    .venv/bin/python benchmarks/bench_unet.py                # default: conv1d_attn1d_blocks, ours only
    .venv/bin/python benchmarks/bench_unet.py --temporal conv3d_attn1d_blocks --steps 5
    .venv/bin/python benchmarks/bench_unet.py --peers        # + diffusers / video-diffusion-pytorch U-Nets

One training step (forward + backward of an MSE loss) of ``KeyframeUNet()`` (toy default) on a
(4, 4, 8, 16, 16) latent batch with text context (4 x 8 tokens, some padded). FLOPs are counted with
``torch.utils.flop_counter`` (forward + backward, attention included); the matmul peak is the best
of a loop of fp32 ``n x n`` matrix products in the same process, so the fraction of it a model
reaches (model FLOP utilisation, MFU) compares like with like. ``bench_unet_vs_peers`` runs the
same step, on the same input, for the peers of ``bench_peers.py``. Small convs, norms and attention over
few tokens keep a toy U-Net far below the peak; the number says how far. Timings are only
comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from bench_measure import count_flops, median_seconds, synchronize

from minifusion.models import KeyframeUNet, KeyframeUNetConfig

DEFAULT_BATCH = (4, 4, 8, 16, 16)  # (B, C, F, H, W): 4 videos of 8 frames of 4x16x16 latents
DEFAULT_TEXT_LENGTH = 8


def matmul_peak_flops(n: int = 1024, repeats: int = 10, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32) -> float:
    """Best matmul throughput (FLOP/s) over ``repeats`` products of n x n matrices of ``dtype``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def training_inputs(batch: tuple[int, int, int, int, int] = DEFAULT_BATCH, *, text_length: int = DEFAULT_TEXT_LENGTH,
                    cross_attention_dim: int = 128, device: str | torch.device = "cpu", seed: int = 0) -> dict:
    """One batch every U-Net of the comparison trains on: latents, timesteps, text tokens + mask, target."""
    b, c, f, h, w = batch
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, text_length, dtype=torch.bool)
    mask[:, text_length // 2:] = (torch.arange(b) % 2 == 0)[:, None]  # every other prompt padded to half length
    inputs = {
        "sample": torch.randn(b, c, f, h, w, generator=g),  # (B, C, F, H, W)
        "timestep": torch.randint(0, 1000, (b,), generator=g),
        "encoder_hidden_states": torch.randn(b, text_length, cross_attention_dim, generator=g),  # (B, L, D)
        "encoder_attention_mask": mask,  # (B, L), True = real token
        "target": torch.randn(b, c, f, h, w, generator=g),
    }
    return {k: v.to(device) for k, v in inputs.items()}


def keyframe_unet_step(model: KeyframeUNet, inputs: dict):
    """A closure: zero grads, forward, MSE loss, backward (one training step without the optimiser)."""
    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = model(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"],
                    inputs["encoder_attention_mask"])
        F.mse_loss(out, inputs["target"]).backward()
    return step


def measure_step(step, *, params: int, steps: int, warmup: int, device: str | torch.device, peak_flops: float) -> dict:
    """FLOPs, median seconds, achieved GFLOP/s and MFU of one training-step closure."""
    flops = count_flops(step)  # also the first warm-up call
    seconds = median_seconds(step, steps=steps, warmup=warmup, device=device)
    synchronize(device)
    return {
        "status": "ok",
        "params": params,
        "flops_per_step": flops,
        "seconds_per_step": seconds,
        "achieved_gflops": flops / seconds / 1e9,
        "mfu": flops / seconds / peak_flops,
    }


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
    shape = (batch, cfg.in_channels, frames, size, size)
    inputs = training_inputs(shape, text_length=text_length, cross_attention_dim=cfg.cross_attention_dim,
                             device=device, seed=seed)
    peak = matmul_peak_flops(matmul_size, device=device)
    r = measure_step(keyframe_unet_step(model, inputs), params=model.num_parameters(), steps=steps, warmup=warmup,
                     device=device, peak_flops=peak)
    return {
        "temporal": temporal,
        "params": r["params"],
        "batch": shape,
        "flops_per_step": r["flops_per_step"],
        "seconds_per_step": r["seconds_per_step"],
        "achieved_gflops": r["achieved_gflops"],
        "matmul_peak_gflops": peak / 1e9,
        "fraction_of_peak": r["mfu"],
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def bench_unet_vs_peers(
    *,
    batch: tuple[int, int, int, int, int] = DEFAULT_BATCH,
    text_length: int = DEFAULT_TEXT_LENGTH,
    steps: int = 3,
    warmup: int = 1,
    matmul_size: int = 1024,
    peers: bool = True,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict:
    """The default keyframe U-Net and its peers (``bench_peers.py``), one training step each on the same batch.

    Returns {"batch", "text_length", "matmul_peak_gflops", "models": {name: measure_step dict or
    {"status": "unavailable", "reason"}}, "best_peer", "mfu_ratio"} where mfu_ratio is ours over
    the best available peer's MFU (None when no peer ran).
    """
    import bench_peers as peer_models

    torch.manual_seed(seed)
    ours = KeyframeUNet().to(device).train()
    cfg = ours.config
    inputs = training_inputs(batch, text_length=text_length, cross_attention_dim=cfg.cross_attention_dim,
                             device=device, seed=seed)
    peak = matmul_peak_flops(matmul_size, device=device)
    models = {"minifusion KeyframeUNet": measure_step(keyframe_unet_step(ours, inputs), params=ours.num_parameters(),
                                                      steps=steps, warmup=warmup, device=device, peak_flops=peak)}
    del ours
    for name, (build, package) in peer_models.PEERS.items():
        if not peers:
            models[name] = {"status": "skipped", "reason": "--no-peers"}
            continue
        try:
            model, step = build(cfg, inputs, device=device, seed=seed)
        except peer_models.PeerUnavailable as e:
            models[name] = {"status": "unavailable", "reason": str(e)}
            continue
        models[name] = measure_step(step, params=sum(p.numel() for p in model.parameters()), steps=steps,
                                    warmup=warmup, device=device, peak_flops=peak)
        models[name]["package"] = f"{package} {peer_models.version(package)}"
        del model, step
    ran = {n: r for n, r in models.items() if r["status"] == "ok" and n != "minifusion KeyframeUNet"}
    best = max(ran, key=lambda n: ran[n]["mfu"]) if ran else None
    return {
        "batch": list(batch),
        "text_length": text_length,
        "steps": steps,
        "matmul_peak_gflops": peak / 1e9,
        "models": models,
        "best_peer": best,
        "mfu_ratio": models["minifusion KeyframeUNet"]["mfu"] / ran[best]["mfu"] if best else None,
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
    parser.add_argument("--peers", action="store_true", help="also the peer U-Nets, on the same batch (default model)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peers:
        import bench_report as report

        result = bench_unet_vs_peers(steps=args.steps, matmul_size=args.matmul_size, device=args.device)
        print(report.unet_table(result))
    else:
        result = bench_unet_step(temporal=args.temporal, steps=args.steps, matmul_size=args.matmul_size,
                                 device=args.device)
        print(format_table(result))
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end of the run)")


if __name__ == "__main__":
    main()
