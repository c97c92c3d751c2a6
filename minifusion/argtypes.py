"""argparse value types shared by the command lines (``minifusion.cli``, ``benchmarks/``, ``scripts/``).

Each is an argparse ``type``: it turns the text into a value or raises ``argparse.ArgumentTypeError``
with a message that names the value and what is allowed, so bad options end in argparse's one-line
``error: argument --x: ...`` instead of a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer >= ``minimum`` ("'ten' is not an integer", "'0' must be an integer >= 1")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int = int_at_least(1)  # steps, counts, sizes
nonnegative_int = int_at_least(0)  # seeds, counts that may be zero


def guidance(text: str) -> float:
    """A classifier-free guidance scale: a finite number >= 0 (1 = no guidance)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"guidance {text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):  # also catches NaN
        raise argparse.ArgumentTypeError(f"guidance {text!r} must be a finite number >= 0 (1 = no guidance)")
    return value


def output_folder(text: str) -> Path:
    """``--out`` folder: created later if missing, but not an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"--out {text!r} exists and is not a folder")
    return path


def output_gif(text: str) -> Path:
    """``--out`` of a video: a .gif path whose folder exists."""
    path = Path(text)
    if path.suffix.lower() != ".gif":
        raise argparse.ArgumentTypeError(f"--out {text!r} must end in .gif (add --mp4 for an MP4 beside it)")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"--out {text!r}: the folder {str(path.parent)!r} does not exist "
                                         "(create it first)")
    return path


def config_file(text: str) -> Path:
    """``--config``: an existing file (its JSON is read and checked by the recipe)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"config file {text!r} does not exist")
    return path


def data_folder(text: str) -> Path:
    """``--data``: an existing clip folder."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"data folder {text!r} does not exist or is not a folder")
    return path


def json_file(text: str) -> Path:
    """``--json``: a file to write, in a folder that exists."""
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"--json {text!r}: the folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"--json {text!r} is a folder, not a file")
    return path


def pipeline_folder(text: str) -> Path:
    """``--checkpoint``: a pipeline folder (one holding model_index.json)."""
    path = Path(text)
    if not (path / "model_index.json").is_file():
        raise argparse.ArgumentTypeError(f"--checkpoint {text!r} is not a pipeline folder (no model_index.json in it)")
    return path
