"""How far the trained temporal parts of each Table 1 variant move the frozen T2I features.

Every temporal part of ``KeyframeUNet`` is a residual branch, ``x + branch(x)``, that starts at
0 (FusionFrames section 3.1). After training, ``|branch(x)| / |x|`` says how much a part changes
what the frozen spatial layers computed: near 0 the variant still draws the T2I model's frames,
large values mean it redraws them. This reads the weights of ``python -m minifusion ablate table1``
runs (they stay on the machine that trained them), noises cached training latents at a few
timesteps with their own captions, and prints the mean ratio per variant and kind of part.

    .venv/bin/python scripts/temporal_branch_sizes.py --out results --seed 1
"""

from __future__ import annotations

import argparse
import glob
import warnings
from collections import defaultdict
from pathlib import Path

import torch

from minifusion.models import KeyframeUNet, TextEncoder
from minifusion.models.keyframe_unet import TEMPORAL_VARIANTS
from minifusion.nn.temporal import TemporalResidual
from minifusion.training.recipes.common import load_scheduler


def branch_ratios(model: KeyframeUNet, scheduler, latents, hidden, mask, timesteps, positions) -> dict[str, float]:
    """Mean |branch(x)| / |x| over the calls of each kind of temporal part ("conv" or "attention")."""
    sums: dict[str, list[float]] = defaultdict(list)

    def hook(module, inputs, output):
        x = inputs[0]
        kind = "attention" if "Attention" in type(module.branch).__name__ else "conv"
        sums[kind].append(float((output - x).norm() / x.norm().clamp_min(1e-12)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, TemporalResidual)]
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            for t in timesteps:
                tt = torch.full((len(latents),), t, dtype=torch.long)
                model(scheduler.add_noise(latents, noise, tt), tt, hidden, mask, frame_positions=positions)
    finally:
        for h in handles:
            h.remove()
    return {kind: sum(v) / len(v) for kind, v in sums.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results"), help="the ablate results folder (default results/)")
    p.add_argument("--seed", type=int, default=1, help="which seed's runs to read (default 1)")
    p.add_argument("--clips", type=int, default=16, help="cached training clips to noise (default 16)")
    p.add_argument("--timesteps", type=int, nargs="+", default=[250, 500, 750, 950])
    args = p.parse_args(argv)
    if args.clips < 1 or any(not 0 <= t < 1000 for t in args.timesteps):
        raise ValueError(f"--clips {args.clips} must be >= 1 and --timesteps {args.timesteps} in 0..999")
    caches = glob.glob(str(args.out / "table1" / f"cache_seed_{args.seed}" / "latents_*.pt"))
    if not caches:
        raise ValueError(f"no latent cache under {args.out / 'table1' / f'cache_seed_{args.seed}'}; "
                         f"run `python -m minifusion ablate table1` on this machine first")
    cache = torch.load(caches[0], weights_only=False)
    latents = cache["latents"][: args.clips].float()  # (N, 4, 8, 16, 16)
    captions = list(cache["captions"][: args.clips])
    positions = torch.arange(latents.shape[2], dtype=torch.float32) * 4  # keyframes 4 source frames apart
    print(f"table1 seed {args.seed}: {len(latents)} training clips, timesteps {args.timesteps}")
    print(f"{'variant':24s} {'conv parts':>11s} {'attention parts':>16s}   |branch(x)| / |x|, mean over calls")
    for variant in TEMPORAL_VARIANTS:
        folder = args.out / "table1" / variant / f"seed_{args.seed}"
        if not (folder / "keyframe_unet" / "config.json").is_file():
            print(f"{variant:24s} (no weights here)")
            continue
        model = KeyframeUNet.from_pretrained(folder / "keyframe_unet").eval()
        text_encoder = TextEncoder.from_pretrained(folder / "text_encoder").eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            hidden, mask = text_encoder.encode(captions)
        r = branch_ratios(model, load_scheduler(folder), latents, hidden, mask, args.timesteps, positions)
        print(f"{variant:24s} {r.get('conv', float('nan')):11.4f} {r.get('attention', float('nan')):16.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
