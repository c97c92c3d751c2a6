"""How far from the target is each interpolator initialisation, before any training?

FusionFrames (arXiv 2311.13073, section 3.2) initialises the interpolation U-Net from the T2I U-Net
without saying how the 20 input / 12 output channels start. This prints the v-MSE of each predicted
frame at a few noise levels, at step 0, for

- ``middle``: the T2I input weights on the middle noisy slot only (the first design);
- ``slots``: every noisy slot at weight / 3 (the trunk sees their mean) plus the per-slot deviation
  path ``c (slot k - mean)`` with c = 0, 0.5 (the default ``SLOT_SKIP_INIT``) and 1;
- ``groups``: the alternative of giving each slot its own third of the first layer's channels
  (when the slots agree this is also exactly the T2I model), with c = 0 and 0.5.

On ``--clips`` training windows (8 keyframes, frame skip 4) of the shipped pipeline's autoencoder
and T2I U-Net, the same noise for every design. Run: ``python benchmarks/interpolation_init.py``.
"""

from __future__ import annotations

import argparse

import torch

from minifusion.data import MovingShapes
from minifusion.data.interpolation_windows import InterpolationClips
from minifusion.diffusion import DDPMScheduler
from minifusion.models import InterpolationUNet
from minifusion.training.objectives.interpolation import build_interpolation_input, split_clip_latents
from minifusion.training.recipes.t2i import load_t2i


def build(unet, design: str, c: float) -> InterpolationUNet:
    model = InterpolationUNet.from_t2i(unet, init="middle" if design == "middle" else "slots", sample_size=16,
                                       num_pairs=7)
    if design == "middle":
        return model
    with torch.no_grad():
        model.slot_skip.bias.fill_(c)
        if design == "groups":  # output channels split in three groups, group k reads slot k with the T2I weights
            w = unet.conv_in.weight  # (C0, 4, 3, 3)
            wide = torch.zeros_like(model.conv_in.weight)
            bounds = torch.linspace(0, w.shape[0], 4).round().long().tolist()
            for k in range(3):
                rows = slice(bounds[k], bounds[k + 1])
                wide[rows, 4 + 4 * k: 8 + 4 * k] = w[rows]
            model.conv_in.weight.copy_(wide)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=None, help="pipeline folder (default: the shipped moving-shapes one)")
    parser.add_argument("--clips", type=int, default=16, help="training windows to score (default 16)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    import minifusion

    folder = args.pipeline or minifusion.pretrained("moving-shapes")
    parts = load_t2i(folder, device=torch.device("cpu"))
    autoencoder, unet = parts["autoencoder"], parts["unet"]
    clips = MovingShapes(split="train", num_frames=8, size=64, frame_skip=4, seed=0, length=args.clips,
                         backgrounds=("black", "light"))
    windows = InterpolationClips(clips, frame_skip=4.0, num_keyframes=8, frames_per_pair=3, seed=0)
    with torch.no_grad():
        latents = autoencoder.encode(torch.stack([windows[i]["video"] for i in range(len(windows))]))  # (B, 4, 29, h, w)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    keyframes, middle = split_clip_latents(latents, 3)  # (B, 4, 8, h, w), (B, 12, 7, h, w)
    noise = torch.randn(middle.shape, generator=torch.Generator().manual_seed(0))
    levels = [50, 200, 400, 600, 800, 950]
    designs = [("middle", 0.0), ("slots", 0.0), ("slots", 0.5), ("slots", 1.0), ("groups", 0.0), ("groups", 0.5)]
    print(f"v-MSE at initialisation, mean of the 3 predicted frames, {len(windows)} training windows")
    print(f"{'design':14s} " + " ".join(f"{'t=' + str(t):>7s}" for t in levels) + "   frames 1 / 2 / 3 at t=400")
    for design, c in designs:
        model = build(unet, design, c).eval()
        with torch.no_grad():
            model.null_encoder_hidden_states[0, 0] = parts["text_encoder"].null_token
        row, per_frame = [], None
        for t in levels:
            tt = torch.full((middle.shape[0],), t)
            target = scheduler.get_velocity(middle, noise, tt)
            with torch.no_grad():
                pred = model(build_interpolation_input(keyframes, scheduler.add_noise(middle, noise, tt)), tt,
                             frame_skip=4.0)
            err = (pred - target).pow(2).mean(dim=(0, 2, 3, 4)).view(3, 4).mean(1)  # (3,) per frame of a gap
            row.append(err.mean().item())
            per_frame = err if t == 400 else per_frame
        name = design if design == "middle" else f"{design} c={c:g}"
        print(f"{name:14s} " + " ".join(f"{v:7.3f}" for v in row) + "   " + " / ".join(f"{v:.3f}" for v in per_frame))


if __name__ == "__main__":
    main()
