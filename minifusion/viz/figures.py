"""Matplotlib figures: frame grids, noise schedules and the forward (noising) process.

- `show_frames`: frames of one or several videos in rows, with titles, per-frame labels and
  highlighted frames (e.g. keyframes among interpolated frames).
- `plot_schedules`: alpha-bar and log-SNR = log(alpha_bar / (1 - alpha_bar)) against t
  (Ho et al. 2020; Nichol and Dhariwal 2021 for the cosine schedule; Kingma et al. 2021 for SNR).
- `forward_noising_video`: one frame noised at increasing t with one fixed noise sample,
  x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, as a video to plot or animate.

Figures are made with pyplot (which sets up the notebook's inline display) and closed at once:
nothing is left open in pyplot, a figure that is a cell's last value shows once in a notebook
(`fig = show_frames(...)` shows nothing until `fig` or `display(fig)`), and `fig.savefig`
works headless. matplotlib is imported inside the functions so `import minifusion.viz` stays
cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from minifusion.viz.convert import to_bfhwc_uint8

_MAX_COLUMNS = 48
_GAP = 2  # white pixels between frames in a row


def _rows_of(videos: Any, titles: Sequence[str] | None, read: dict) -> tuple[list[np.ndarray], list[str] | None]:
    """videos (one, a batch, a list or a dict) -> list of uint8 (F, H, W, 3) rows and titles."""
    if isinstance(videos, Mapping):
        if titles is not None:
            raise ValueError("titles must be None when videos is a dict: its keys are the titles")
        titles, videos = [str(k) for k in videos], list(videos.values())
    items = list(videos) if isinstance(videos, (list, tuple)) else [videos]
    if not items:
        raise ValueError("show_frames needs at least one video, got an empty collection")
    rows: list[np.ndarray] = []
    for item in items:
        rows.extend(to_bfhwc_uint8(item, rgb=True, **read))  # a batch gives one row per video
    if titles is not None and len(titles) != len(rows):
        raise ValueError(f"titles has {len(titles)} entries for {len(rows)} rows of frames")
    return rows, titles


def _new_figure(figsize: tuple[float, float]):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)  # shown once, as the cell's value; never piles up in pyplot
    return fig


def _per_row(value: Any, nrows: int, name: str) -> list:
    """None, one sequence shared by every row, or one sequence per row -> a list per row."""
    if value is None:
        return [None] * nrows
    value = list(value)
    if value and all(isinstance(v, (list, tuple, range, np.ndarray)) for v in value):
        if len(value) != nrows:
            raise ValueError(f"{name} has {len(value)} per-row entries for {nrows} rows")
        return [list(v) for v in value]
    return [value] * nrows


def show_frames(
    videos: Any,
    *,
    titles: Sequence[str] | None = None,
    labels: Sequence[str] | Sequence[Sequence[str]] | None = None,
    highlight: Sequence[int] | Sequence[Sequence[int]] | None = None,
    frame_size: float = 1.2,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = False,
):
    """Frames of one or several videos in rows -> matplotlib Figure.

    Args:
        videos: one video, a batch (one row per video), a list of videos, or a dict
            {title: video}; rows may differ in length (8 keyframes above 29 interpolated
            frames). Read as in `to_uint8_frames` (`layout`, `value_range`, `clip`).
            Show at most 48 frames per row: slice long videos, e.g. `video[:, ::4]`.
        titles: one title per row.
        labels: text under each frame (default: frame numbers); one list shared by all
            rows, or one list per row.
        highlight: frame indices drawn with a red border (e.g. the keyframes); one list for all
            rows or one per row.
        frame_size: inches per frame (shrunk so the figure is at most 16 inches wide).
    """
    rows, titles = _rows_of(videos, titles, dict(layout=layout, value_range=value_range, clip=clip))
    ncols = max(r.shape[0] for r in rows)
    if ncols > _MAX_COLUMNS:
        raise ValueError(
            f"a row has {ncols} frames; show_frames draws at most {_MAX_COLUMNS} per row: "
            f"slice the video (e.g. video[:, ::4] for (C, F, H, W)) or use frame_player"
        )
    labels = _per_row(labels, len(rows), "labels")
    marks = _per_row(highlight, len(rows), "highlight")
    h = max(r.shape[1] for r in rows)
    w = max(r.shape[2] for r in rows)

    from matplotlib.patches import Rectangle

    size = min(frame_size, 16 / ncols)
    fig = _new_figure((size * ncols + 0.3, len(rows) * (size * h / w + 0.55)))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for r, (frames, ax) in enumerate(zip(rows, axes)):
        n = frames.shape[0]
        canvas = np.full((h, ncols * (w + _GAP) - _GAP, 3), 255, np.uint8)
        for i, frame in enumerate(frames):  # frame: (H, W, 3)
            canvas[: frame.shape[0], i * (w + _GAP) : i * (w + _GAP) + frame.shape[1]] = frame
        ax.imshow(canvas, interpolation="nearest")
        row_labels = labels[r] if labels[r] is not None else [str(i) for i in range(n)]
        if len(row_labels) != n:
            raise ValueError(f"labels for row {r} has {len(row_labels)} entries for {n} frames")
        ax.set_xticks([i * (w + _GAP) + (w - 1) / 2 for i in range(n)], row_labels, fontsize=8)
        ax.set_yticks([])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        for i in marks[r] or []:
            if not 0 <= i < n:
                raise ValueError(f"highlight index {i} is out of range for row {r} of {n} frames")
            ax.add_patch(Rectangle((i * (w + _GAP) - 0.5, -0.5), w, h, fill=False, edgecolor="red", linewidth=2))
        if titles is not None:
            ax.set_title(titles[r], loc="left", fontsize=10)
    return fig


def _alphas_cumprod(schedule: Any, name: str) -> np.ndarray:
    values = getattr(schedule, "alphas_cumprod", schedule)
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"alphas_cumprod of {name!r} must be 1-D with at least 2 steps, got shape {values.shape}")
    # alpha_bar = 0 is allowed: a zero-terminal-SNR schedule ends there (log SNR = -inf, not drawn).
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(
            f"alphas_cumprod of {name!r} must lie in [0, 1], got range [{values.min():.3g}, {values.max():.3g}]"
        )
    return values


def log_snr(alphas_cumprod: Any) -> np.ndarray:
    """log SNR(t) = log(alpha_bar_t / (1 - alpha_bar_t)), in float64 (+inf where alpha_bar is 1, -inf at 0)."""
    a = np.asarray(alphas_cumprod, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(a) - np.log1p(-a)


def plot_schedules(schedules: Mapping[str, Any], *, normalize_t: bool = False):
    """alpha-bar and log-SNR against t for {name: scheduler} -> matplotlib Figure (two panels).

    Each value is an object with an `.alphas_cumprod` tensor/array (a scheduler) or that 1-D
    array itself. `normalize_t` plots against t / T so schedules of different lengths line up.
    """
    if not isinstance(schedules, Mapping) or not schedules:
        raise ValueError(f"schedules must be a non-empty dict {{name: scheduler}}, got {type(schedules).__name__}")
    fig = _new_figure((10, 3.6))
    ax_bar, ax_snr = fig.subplots(1, 2)
    for name, schedule in schedules.items():
        a = _alphas_cumprod(schedule, str(name))
        t = np.arange(a.size) / (a.size if normalize_t else 1)
        ax_bar.plot(t, a, label=str(name))
        ax_snr.plot(t, log_snr(a), label=str(name))
    xlabel = "t / T" if normalize_t else "timestep t"
    ax_bar.set(xlabel=xlabel, ylabel="alpha_bar_t", title="signal kept: alpha_bar_t", ylim=(-0.02, 1.02))
    ax_snr.set(xlabel=xlabel, ylabel="log SNR", title="log SNR = log(alpha_bar / (1 - alpha_bar))")
    ax_snr.axhline(0, color="grey", linewidth=0.8, linestyle=":")
    for ax in (ax_bar, ax_snr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def forward_noising_video(x0: Any, scheduler: Any, timesteps: Sequence[int], seed: int = 0):
    """One frame noised at each of `timesteps` with the same noise -> video tensor (C, T, H, W).

    Uses `scheduler.add_noise(x0, noise, t)` with noise ~ N(0, I) drawn once from `seed`, so the
    frames differ only in t. `x0` is an image (C, H, W) in [-1, 1]; the result is unclipped
    (show it with `clip=True`).
    """
    import torch
    from einops import rearrange

    if not isinstance(x0, torch.Tensor) or x0.dim() != 3:
        shape = tuple(x0.shape) if hasattr(x0, "shape") else type(x0).__name__
        raise ValueError(f"x0 must be one image tensor (C, H, W), got {shape}; for a video pick a frame: video[:, 0]")
    steps = [int(t) for t in timesteps]
    if not steps:
        raise ValueError("timesteps must hold at least one timestep, got none")
    total = len(scheduler.alphas_cumprod) if hasattr(scheduler, "alphas_cumprod") else None
    if total is not None and not all(0 <= t < total for t in steps):
        raise ValueError(f"timesteps {steps} must lie in 0..{total - 1}")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device, x0.dtype)
    n = len(steps)
    batch = x0.unsqueeze(0).expand(n, *x0.shape)  # (T, C, H, W): one copy per timestep
    noisy = scheduler.add_noise(batch, noise.unsqueeze(0).expand(n, *x0.shape),
                                torch.tensor(steps, dtype=torch.long, device=x0.device))
    return rearrange(noisy, "t c h w -> c t h w")
