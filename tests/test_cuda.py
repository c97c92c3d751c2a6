"""What only a GPU can check; ``bash scripts/gpu_check.sh`` runs this file on a CUDA machine.

Every test needs CUDA and is skipped without it (this file is the GPU half of the suite; the code paths
that need no GPU are tested on the CPU in tests/test_bench.py and tests/test_gpu_check.py).
"""

from __future__ import annotations

import pytest
import torch

import minifusion
from minifusion import FusionFramesPipeline
from minifusion.diffusion import DPMSolverMultistepScheduler, EulerDiscreteScheduler, GaussianDenoiser, sample_loop

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")
FEW = dict(num_inference_steps=3, interpolation_num_inference_steps=2, output_type="np", progress=False)


@pytest.fixture(scope="module")
def pipes():
    cpu = FusionFramesPipeline.from_pretrained(minifusion.pretrained())
    return cpu, FusionFramesPipeline.from_pretrained(minifusion.pretrained(), device="cuda")


def test_the_pipeline_on_the_gpu_in_fp32_follows_the_cpu(pipes):
    cpu, gpu = pipes
    gpu.use_autocast = False
    a = cpu("a red circle moves right", generator=torch.Generator().manual_seed(0), **FEW).frames
    b = gpu("a red circle moves right", generator=torch.Generator().manual_seed(0), **FEW).frames
    assert a.shape == b.shape == (1, 29, 64, 64, 3)
    assert abs(a - b).mean() < 0.02  # same noise (drawn on the CPU); TF32 and kernels differ


@pytest.mark.parametrize("scheduler", ["dpm", "euler", "ddim", "ddpm"])
def test_every_sampler_under_autocast_gives_finite_frames_and_repeats_for_a_seed(pipes, scheduler):
    _, gpu = pipes
    gpu.use_autocast = True
    runs = [gpu("a blue star moves up", scheduler=scheduler, generator=torch.Generator().manual_seed(1), **FEW).frames
            for _ in range(2)]
    assert torch.isfinite(torch.from_numpy(runs[0])).all()
    assert abs(runs[0] - runs[1]).max() < 1e-3  # docs/determinism.md: bitwise needs deterministic kernels


@pytest.mark.parametrize("cls", [DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_schedulers_run_on_cuda_tensors(cls):
    s = cls(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    oracle = GaussianDenoiser(0.0, 0.5, s.alphas_cumprod, prediction_type="v_prediction")
    noise = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    on_gpu = sample_loop(oracle, s, noise.cuda(), num_inference_steps=10, progress=False).sample
    on_cpu = sample_loop(oracle, cls.from_config(s.config), noise, num_inference_steps=10, progress=False).sample
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-4, atol=1e-4)


def test_training_step_under_bf16_autocast_has_finite_gradients():
    from minifusion.models import KeyframeUNet, KeyframeUNetConfig

    model = KeyframeUNet(KeyframeUNetConfig(block_out_channels=(16, 32), attention_head_dim=16, norm_groups=4,
                                            cross_attention_dim=32, sample_size=8)).cuda()
    x = torch.randn(2, 4, 4, 8, 8, device="cuda")
    text = torch.randn(2, 5, 32, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, torch.tensor([10, 500], device="cuda"), text, torch.ones(2, 5, dtype=torch.bool, device="cuda"))
    torch.nn.functional.mse_loss(out.float(), x).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
