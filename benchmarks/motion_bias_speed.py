"""MotionBiasedAttention's relative-position bias: the plain form against the factored one, side by side.

    python benchmarks/motion_bias_speed.py            # one torch thread, batch 8, 8 keyframes

The plain form builds the (B, heads, N, N, 2) gap ``(p - p') - (k - k') v`` and squares it; the factored
form (what the layer's forward uses) is one product of (B, heads, 4) weights with four fixed (N, N) maps.
Prints forward + backward milliseconds of each at the 8x8 and 4x4 levels, their ratio and their largest
difference.
"""

from __future__ import annotations

import argparse
import time

import torch


def time_ms(fn, repeats: int) -> float:
    for _ in range(2):  # warm-up
        fn().sum().backward()
    started = time.perf_counter()
    for _ in range(repeats):
        fn().sum().backward()
    return (time.perf_counter() - started) / repeats * 1000


def main(argv=None) -> int:
    from minifusion.argtypes import int_at_least
    from minifusion.nn import MotionBiasedAttention

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int_at_least(1), default=8)
    parser.add_argument("--keyframes", type=int_at_least(2), default=8)
    parser.add_argument("--repeats", type=int_at_least(1), default=5)
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layer = MotionBiasedAttention(128, 128, head_dim=64, norm_groups=8)
    text = torch.randn(args.batch_size, 10, 128)
    print(f"batch {args.batch_size}, {args.keyframes} keyframes, {layer.heads} heads, {args.threads} thread(s)")
    print(f"{'level':>6} {'tokens':>7} {'plain ms':>9} {'factored ms':>12} {'ratio':>6} {'max diff':>9}")
    for side in (8, 4):
        f = args.keyframes
        plain = time_ms(lambda: layer.motion_bias(layer.velocity(text, None), f, side, side), args.repeats)
        fast = time_ms(lambda: layer.motion_bias_factored(layer.velocity(text, None), f, side, side), args.repeats)
        with torch.no_grad():
            v = layer.velocity(text, None)
            diff = (layer.motion_bias(v, f, side, side) - layer.motion_bias_factored(v, f, side, side)).abs().max()
        print(f"{side}x{side:<4} {f * side * side:>7} {plain:>9.1f} {fast:>12.1f} {plain / fast:>6.1f} {diff:>9.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
