"""benchmarks/motion_failures.py: the room a start leaves along the prompted direction."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
spec = importlib.util.spec_from_file_location("motion_failures", BENCH / "motion_failures.py")
motion_failures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(motion_failures)


@pytest.mark.parametrize("x, y, direction, expected", [
    (0.5, 0.5, "right", 0.5), (0.9, 0.5, "left", 0.9), (0.9, 0.5, "right", 0.1),
    (0.5, 0.2, "up", 0.2), (0.5, 0.2, "down", 0.8),  # y grows downward, as in an image
    (0.5, 0.5, "down-right", 0.5 * math.sqrt(2)), (0.8, 0.5, "up-right", 0.2 * math.sqrt(2)),
])
def test_room_is_the_distance_to_the_edge_along_the_direction(x, y, direction, expected):
    assert motion_failures.room(x, y, direction) == pytest.approx(expected)
