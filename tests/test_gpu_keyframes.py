"""scripts/gpu_keyframes.py: the shipped keyframes recipe at a GPU's batch, planned to fit a time budget.

The whole script ran on this CPU with ``--device cpu --quick`` (2 + 2 steps, 8 videos); here only its
arithmetic and its refusal without a GPU, which take no training.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_keyframes", ROOT / "scripts" / "gpu_keyframes.py")
gpu_keyframes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_keyframes)


def test_the_run_is_the_shipped_recipe_with_only_batch_steps_and_device_changed():
    shipped = json.loads((ROOT / "configs" / "keyframes-motion-bias.json").read_text())
    config = gpu_keyframes.recipe_config(batch_size=64, steps=1234, device="cuda", quick=False)
    assert config["training"] == {**shipped["training"], "batch_size": 64, "steps": 1234, "device": "cuda",
                                  "checkpoint_every": 0}
    assert {k: v for k, v in config.items() if k not in ("training", "motion_check_every")} == \
        {k: v for k, v in shipped.items() if k not in ("training", "motion_check_every")}


def test_the_plan_fills_the_budget_at_the_probe_pace():
    assert gpu_keyframes.planned_steps(100, 10.0, 4.0) == 2400  # 0.1 s per step, 240 s
    assert gpu_keyframes.planned_steps(100, 600.0, 1.0) == 100  # slower than the budget: the probe alone
    with pytest.raises(ValueError, match="probe_seconds > 0"):
        gpu_keyframes.planned_steps(100, 0.0, 4.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_a_gpu_it_says_so_and_trains_nothing(tmp_path, capsys):
    assert gpu_keyframes.main(["--out", str(tmp_path / "k")]) == 2
    assert "--device cpu --quick" in capsys.readouterr().err and not (tmp_path / "k").exists()
