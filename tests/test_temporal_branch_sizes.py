"""scripts/temporal_branch_sizes.py: the size of each temporal branch relative to its input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from minifusion.diffusion import DDPMScheduler
from minifusion.models import KeyframeUNet
from tests.test_keyframe_unet import inputs, randomize_temporal, t2i

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "temporal_branch_sizes.py"


def _script():
    spec = importlib.util.spec_from_file_location("temporal_branch_sizes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("temporal", ["conv1d_attn1d_layers", "conv1d_attn1d_blocks"])
def test_branches_are_zero_at_init_and_measured_once_trained(temporal):
    script = _script()
    latents, _, text = inputs()
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    positions = torch.arange(latents.shape[2], dtype=torch.float32) * 4
    model = KeyframeUNet.from_t2i(t2i(), temporal).eval()
    at_init = script.branch_ratios(model, scheduler, latents, text, None, [100, 900], positions)
    assert at_init == {"conv": 0.0, "attention": 0.0}  # identity at init: every branch outputs exactly 0
    trained = script.branch_ratios(randomize_temporal(model), scheduler, latents, text, None, [100, 900], positions)
    assert set(trained) == {"conv", "attention"} and all(r > 0.01 for r in trained.values())
    assert not any(h for m in model.modules() for h in m._forward_hooks.values())  # hooks removed


def test_missing_cache_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no latent cache under .*cache_seed_1.*ablate table1"):
        _script().main(["--out", str(tmp_path), "--seed", "1"])
