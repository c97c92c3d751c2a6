"""Gradient checkpointing of the U-Nets: the same gradients, less memory saved for backward."""

from __future__ import annotations

import pytest
import torch

from minifusion.models import Autoencoder, InterpolationUNet, KeyframeUNet, UNet, UNetConfig

TINY = dict(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=8, attention_head_dim=8,
            norm_groups=2, sample_size=8, text_length=3)


def _randomized(model):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised parts too, so every layer does something
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def _cases():
    g = torch.Generator().manual_seed(1)
    text = torch.randn(2, 3, 8, generator=g)
    t = torch.tensor([10.0, 900.0])
    unet = UNet(UNetConfig(**TINY))
    keyframe = KeyframeUNet.from_t2i(unet, "conv1d_attn1d_blocks")
    interpolation = InterpolationUNet.from_t2i(unet)
    return {
        "t2i": (unet, lambda m: m(torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)), t, text)),
        "keyframes": (keyframe, lambda m: m(torch.randn(2, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0)),
                                            t, text)),
        "interpolation": (interpolation, lambda m: m(torch.randn(2, 20, 3, 8, 8,
                                                                 generator=torch.Generator().manual_seed(0)),
                                                     t, frame_skip=4.0)),
    }


def _saved_bytes(fn) -> tuple[torch.Tensor, int]:
    """Run fn() and count the bytes autograd keeps for the backward pass."""
    total = 0

    def pack(x):
        nonlocal total
        total += x.numel() * x.element_size()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        out = fn()
    return out, total


@pytest.mark.parametrize("name", ["t2i", "keyframes", "interpolation"])
def test_checkpointing_gives_the_same_gradients_and_saves_less(name):
    model, run = _cases()[name]
    _randomized(model).train()
    grads, saved = [], []
    for enabled in (False, True):
        model.enable_gradient_checkpointing() if enabled else model.disable_gradient_checkpointing()
        model.zero_grad()
        out, nbytes = _saved_bytes(lambda: run(model))
        out.square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        saved.append(nbytes)
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert saved[1] < 0.6 * saved[0], f"checkpointing kept {saved[1]} of {saved[0]} bytes for backward"


def test_checkpointing_is_a_no_op_without_gradients_and_other_models_refuse_it():
    model, run = _cases()["keyframes"]
    _randomized(model).eval()
    with torch.no_grad():
        ref = run(model)
        model.enable_gradient_checkpointing()
        torch.testing.assert_close(run(model), ref)
    with pytest.raises(ValueError, match="Autoencoder does not support gradient checkpointing"):
        Autoencoder().enable_gradient_checkpointing()
