"""``python -m minifusion demo`` and ``render``: Moving Shapes clips as GIFs, and the forward noising process."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minifusion import argtypes


def cmd_render(args: argparse.Namespace) -> int:
    """Render Moving Shapes clips as GIFs."""
    from minifusion.data import MovingShapes
    from minifusion.viz import save_gif

    args.out.mkdir(parents=True, exist_ok=True)
    ds = MovingShapes(split=args.split, num_frames=args.frames, size=args.size, seed=args.seed)
    lines = []
    for i in range(args.num):
        item = ds[i]
        path = save_gif(item["video"], args.out / f"{args.split}_{i:03d}.gif", fps=args.fps, scale=args.scale)
        lines.append(f"{path.name}\t{item['caption']}")
        print(f"{path}  {item['caption']!r}")
    (args.out / "captions.txt").write_text("\n".join(lines) + "\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job for now: a few Moving Shapes clips and the forward noising process."""
    import torch

    from minifusion.data import MovingShapes
    from minifusion.diffusion import DDPMScheduler
    from minifusion.viz import forward_noising_video, save_gif, show_frames

    start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ds = MovingShapes(split="train", num_frames=16, size=64, seed=args.seed)
    written = []
    clips = [ds[i] for i in range(args.num)]
    for i, item in enumerate(clips):
        written.append((save_gif(item["video"], out / f"clip_{i}.gif", fps=8, scale=2), item["caption"]))
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    x0 = clips[0]["video"][:, 0]  # (C, H, W): the first frame of the first clip
    timesteps = torch.linspace(0, scheduler.num_train_timesteps - 1, 24).round().long()
    noising = forward_noising_video(x0, scheduler, timesteps, seed=args.seed)
    written.append((save_gif(noising, out / "forward_noising.gif", fps=6, scale=2), "forward process x_t, t = 0..999"))
    fig = show_frames(noising[:, ::4], labels=[f"t={int(t)}" for t in timesteps[::4]])
    fig.savefig(out / "forward_noising.png", dpi=100, bbox_inches="tight")
    written.append((out / "forward_noising.png", "the same, as a strip"))
    for path, what in written:
        print(f"{path}  ({what})")
    print(f"wrote {len(written)} files to {out}/ in {time.perf_counter() - start:.1f} s")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="render sample clips and the forward noising process to a folder",
                       description=cmd_demo.__doc__)
    p.add_argument("--out", type=argtypes.output_folder, default=Path("outputs"), help="output folder (created)")
    p.add_argument("--num", type=argtypes.positive_int, default=4, help="number of clips (default 4)")
    p.add_argument("--seed", type=int, default=0, help="dataset and noise seed (default 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("render", help="render Moving Shapes clips as GIFs with a captions file",
                       description=cmd_render.__doc__)
    p.add_argument("--out", type=argtypes.output_folder, required=True, help="output folder (created)")
    p.add_argument("--split", default="train", help="train, val or heldout (default train)")
    p.add_argument("--num", type=argtypes.positive_int, default=8, help="number of clips (default 8)")
    p.add_argument("--frames", type=argtypes.positive_int, default=16, help="frames per clip (default 16)")
    p.add_argument("--size", type=argtypes.positive_int, default=64, help="frame size in pixels (default 64)")
    p.add_argument("--fps", type=argtypes.positive_int, default=8, help="GIF frame rate (default 8)")
    p.add_argument("--scale", type=argtypes.positive_int, default=1, help="GIF upscale factor (default 1)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.set_defaults(func=cmd_render)
