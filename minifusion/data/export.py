"""Export the shipped sample clips as GIFs (via `minifusion.viz.save_gif`, Pillow only).

`export_samples` made `data_samples/clips/`:

    python -c "from minifusion.data import export_samples; export_samples('data_samples/clips')"

The captions file it writes is the format `ClipFolder` reads: one line per clip,
``filename<TAB>caption``, lines starting with '#' are comments.
"""

from __future__ import annotations

from pathlib import Path

from minifusion.checks import positive_int
from minifusion.data.clips import make_params
from minifusion.data.moving_shapes import MovingShapes
from minifusion.data.render import render_clip
from minifusion.viz import save_gif

# A fixed mix: every motion, speed and size words, two shapes, and (the sixth) a held-out pair.
SAMPLE_CLIPS: tuple[dict, ...] = (
    {"color": "red", "shape": "circle", "motion": "moves", "direction": "right"},
    {"color": "white", "shape": "square", "motion": "moves", "direction": "up-left"},
    {"color": "yellow", "shape": "triangle", "motion": "moves", "direction": "down", "speed": "fast"},
    {"color": "green", "shape": "square", "motion": "bounces", "direction": "left"},
    {"color": "blue", "shape": "star", "motion": "rotates", "size": "small", "spin": "clockwise"},
    {"color": "red", "shape": "triangle", "motion": "moves", "direction": "left"},  # held-out pair
    {"color": "cyan", "shape": "triangle", "motion": "grows"},
    {"color": "purple", "shape": "circle", "motion": "shrinks"},
    {"color": "red", "shape": "circle", "motion": "moves", "direction": "left", "color2": "blue", "shape2": "square"},
    {"color": "green", "shape": "circle", "motion": "moves", "direction": "up", "speed": "slow"},
    {"color": "cyan", "shape": "square", "motion": "moves", "direction": "down-right", "size": "big"},
    {"color": "purple", "shape": "star", "motion": "bounces", "direction": "up-right", "speed": "fast"},
)


def _slug(caption: str) -> str:
    words = caption.split()
    return "_".join(w.replace("-", "") for w in words if w not in ("a", "on", "background"))


def export_samples(
    out_dir: str | Path,
    n: int = 12,
    *,
    num_frames: int = 16,
    size: int = 64,
    frame_skip: int = 4,
    fps: float = 8.0,
    seed: int = 0,
    captions_file: str = "captions.txt",
) -> list[Path]:
    """Render `n` sample clips as GIFs plus a captions file into `out_dir`; returns the GIF paths.

    The first 12 are the fixed mix `SAMPLE_CLIPS` (the sixth shows a held-out pair); any more
    come from `MovingShapes("train", seed=seed)`.
    """
    positive_int("n", n)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = MovingShapes("train", num_frames=num_frames, size=size, frame_skip=frame_skip, seed=seed)
    lines, paths = ["# filename<TAB>caption  (made by minifusion.data.export_samples)"], []
    for i in range(n):
        if i < len(SAMPLE_CLIPS):
            params = make_params(**SAMPLE_CLIPS[i], num_frames=num_frames, frame_skip=frame_skip, seed=seed + i)
        else:
            params = extra.clip_params(i - len(SAMPLE_CLIPS))
        path = save_gif(render_clip(params, params.times, size), out / f"{i:02d}_{_slug(params.caption)}.gif", fps=fps)
        lines.append(f"{path.name}\t{params.caption}")
        paths.append(path)
    (out / captions_file).write_text("\n".join(lines) + "\n")
    return paths
