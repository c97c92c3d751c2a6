"""Reading the JSON files the project writes and takes (configs, recipes, model indexes, checkpoint configs).

A broken file is a ``ValueError`` that names the file and what it is (``what``, e.g. "config file"),
never a bare ``json.JSONDecodeError`` from deep inside a loader.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """The value in the JSON file ``path`` ("config file 'x.json' is not valid JSON: ..." if it does not parse)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON: {e}") from None


def read_json_object(path: str | os.PathLike, what: str = "file", *, holding: str = "") -> dict:
    """The JSON object (a dict) in ``path``; ``holding`` says what its keys are, for the message."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        of = f" of {holding}" if holding else ""
        raise ValueError(f"{what} {str(Path(path))!r} must hold a JSON object{of}, got a {type(data).__name__}")
    return data
