"""The training log (``log.csv``) and the loss-curve plot written next to it.

One row every ``log_every`` steps: the mean loss and gradient norm over those steps, the
learning rate, how many steps were skipped (NaN/inf), steps per second and wall time. Values
are written with ``repr`` so a resumed run's rows can be compared exactly with a plain run's.
A resumed run first drops rows newer than its checkpoint (written after it by the run that
crashed), then appends, so the log never holds a step twice.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from minifusion.models.modeling_utils import atomic_write_bytes

LOG_COLUMNS: tuple[str, ...] = ("step", "loss", "lr", "grad_norm", "skipped", "steps_per_sec", "wall_time")


def read_log(path: str | os.PathLike) -> list[dict]:
    """Rows of a training log as dicts of numbers (``step`` and ``skipped`` as int)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for raw in csv.DictReader(f):
            rows.append({k: (int(v) if k in ("step", "skipped") else float(v)) for k, v in raw.items()})
    return rows


class CSVLogger:
    """Appends rows of ``LOG_COLUMNS`` to a CSV file (header written once)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        """Drop rows with ``step`` greater than ``step`` (atomically rewrites the file)."""
        rows = read_log(self.path)
        if not any(r["step"] > step for r in rows):
            return
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(LOG_COLUMNS)
        with self.path.open(newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            writer.writerows(r for r in reader if r and int(r[0]) <= step)
        atomic_write_bytes(self.path, buf.getvalue().encode())

    def log(self, row: dict) -> None:
        missing = [c for c in LOG_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"log row {row} is missing columns {missing}")
        new = not self.path.is_file() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(LOG_COLUMNS)
            writer.writerow([repr(row[c]) if isinstance(row[c], float) else row[c] for c in LOG_COLUMNS])
            f.flush()


def smooth(values: list[float], window: int | None = None) -> list[float]:
    """Centred moving average of log(values) (no lag, unlike an EMA); the window shrinks at the ends.

    ``window`` defaults to about a tenth of the points (odd, >= 1).
    """
    n = len(values)
    if window is None:
        window = max(1, (n // 10) | 1)
    half = window // 2
    logs = [math.log(v) for v in values]
    out = []
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        out.append(math.exp(sum(logs[lo:hi]) / (hi - lo)))
    return out


def plot_loss_curve(log_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
                    *, window: int | None = None) -> Path | None:
    """Plot loss vs step (log scale, raw and ``smooth``-ed) to ``out_path`` (default: ``loss.png`` next to the log).

    Returns the path, or None if the log has no finite loss yet. Uses matplotlib's Agg canvas
    directly (no pyplot state), so it is safe inside training loops and notebooks.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    log_path = Path(log_path)
    out_path = log_path.with_name("loss.png") if out_path is None else Path(out_path)
    rows = [r for r in read_log(log_path) if math.isfinite(r["loss"]) and r["loss"] > 0]
    if not rows:
        return None
    steps, losses = [r["step"] for r in rows], [r["loss"] for r in rows]
    fig = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(steps, losses, color="tab:blue", alpha=0.35, linewidth=1, label="loss")
    ax.plot(steps, smooth(losses, window), color="tab:blue", linewidth=2, label="smoothed")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out_path, buf.getvalue())
    return out_path
