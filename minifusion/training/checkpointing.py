"""Training checkpoints: atomic writes, keep-last-K, and loading the newest *good* one.

A checkpoint is ``out_dir/checkpoints/step_000100.pt``: one ``torch.save`` dict with the model,
EMA, optimiser, gradient scaler, step, data position, RNG states and config (see
``Trainer.checkpoint_state``). It holds only tensors and plain python values, so it is loaded
with ``torch.load(..., weights_only=True)`` and a stranger's checkpoint never runs code.

Writing: the bytes go to a temporary file in the same folder, are flushed and fsync-ed, then
``os.replace`` renames it over the final name (atomic on POSIX and Windows) and the folder is
fsync-ed. A crash or a full disk at any moment leaves the previous checkpoints untouched: a failed
write raises ``CheckpointWriteError`` naming the file, the OS reason and the checkpoint still
intact, and the trainer stops (better than training on for hours without a way back). A process
killed during a write (SIGKILL, power loss) leaves only a hidden ``.step_XXXXXX.pt.*.tmp`` file,
which never counts as a checkpoint and is removed by the next ``--resume``
(``remove_partial_writes``).
Reading: the newest file that loads cleanly wins; a truncated or corrupt newer one is reported
with a warning naming it, and the one before is used. The newest is found by name, so there is
no "latest" pointer that could disagree with the files.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import torch

from minifusion.models.modeling_utils import atomic_write_bytes

CHECKPOINT_FORMAT = "minifusion-trainer-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "step", "model", "optimizer", "rng", "config")
_NAME = re.compile(r"^step_(\d+)\.pt$")
_PARTIAL = re.compile(r"^\.step_\d+\.pt\..*\.tmp$")  # atomic_write_bytes' temporary files


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (e.g. disk full); older checkpoints are intact. ``errno`` is the OS error's."""

    def __str__(self) -> str:  # the message alone: it already quotes the OS error
        return self.strerror if self.errno is not None and self.strerror else super().__str__()


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    return Path(directory) / f"step_{step:06d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return sorted(found)


def remove_partial_writes(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a killed process never finished; returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    partial = sorted(p for p in directory.iterdir() if _PARTIAL.match(p.name) and p.is_file())
    for p in partial:
        p.unlink(missing_ok=True)
    return partial


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), where it is skipped.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict, directory: str | os.PathLike, step: int, *, keep: int | None = None) -> Path:
    """Write ``state`` atomically as ``step_{step:06d}.pt``; then delete all but the newest ``keep``."""
    directory = Path(directory)
    path = checkpoint_path(directory, step)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as e:
        previous = [p.name for s, p in list_checkpoints(directory) if s != step]
        kept = f"the previous checkpoint {previous[-1]!r} is intact" if previous else "no earlier checkpoint exists"
        message = (f"could not write checkpoint {str(path)!r} ({e}); {kept}. Free some space or fix the folder's "
                   "permissions, then continue with resume=True (CLI: --resume)")
        raise (CheckpointWriteError(e.errno, message) if e.errno is not None else CheckpointWriteError(message)) from e
    _fsync_dir(directory)
    if keep is not None:
        for s, p in list_checkpoints(directory)[:-keep]:
            if s != step:
                p.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Load and check one checkpoint; ``ValueError`` naming the file if it is unreadable or incomplete."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, I/O error: all mean "not usable"
        raise ValueError(f"checkpoint {str(path)!r} is corrupt or unreadable: {type(e).__name__}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} is not a minifusion trainer checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} is incomplete: missing {missing}")
    if state["version"] > CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r} has format version {state['version']}; "
                         f"this minifusion reads up to {CHECKPOINT_VERSION}")
    return state


def load_latest_checkpoint(
    directory: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict] | None:
    """The newest checkpoint in ``directory`` that loads cleanly, as (path, state); None if there is none.

    Each newer file that fails to load is reported with a ``UserWarning`` naming it.
    """
    skipped = []
    for step, path in reversed(list_checkpoints(directory)):
        try:
            state = load_checkpoint(path, map_location=map_location)
        except ValueError as e:
            warnings.warn(f"skipping checkpoint {str(path)!r}: {e}; trying the previous one", stacklevel=2)
            skipped.append(path.name)
            continue
        if skipped:
            warnings.warn(f"using the previous good checkpoint {str(path)!r} (step {step}) instead of "
                          f"{', '.join(skipped)}", stacklevel=2)
        return path, state
    return None
