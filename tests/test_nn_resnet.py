"""Bottleneck residual block and down/up-sampling."""

from __future__ import annotations

import pytest
import torch

from minifusion.nn import BottleneckResBlock, Downsample, Upsample


def test_bottleneck_kernels_widths_and_parameter_count():
    block = BottleneckResBlock(8, 16, embed_dim=6, norm_groups=2)
    convs = [b.conv for b in block.blocks]
    assert [c.kernel_size[0] for c in convs] == [1, 3, 3, 1]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(8, 8), (8, 8), (8, 8), (8, 16)]  # hidden = 16 // 2
    conv_params = 8 * 8 + 8 + 2 * (8 * 8 * 9 + 8) + 8 * 16 + 16
    norm_params = sum(6 * 2 * c + 2 * c for c in (8, 8, 8, 8))  # zero-init linear of each conditional norm
    shortcut = 8 * 16 + 16
    assert sum(p.numel() for p in block.parameters()) == conv_params + norm_params + shortcut


def test_bottleneck_receptive_field_is_two_pixels():
    torch.manual_seed(0)
    block = BottleneckResBlock(4, 4, embed_dim=3, norm_groups=2)
    for b in block.blocks:  # GroupNorm statistics couple all pixels; remove them to see the convs
        b.norm.norm = torch.nn.Identity()
    x, e = torch.randn(1, 4, 9, 9), torch.randn(1, 3)
    x2 = x.clone()
    x2[0, :, 4, 4] += 1.0
    changed = (block(x2, e) - block(x, e)).abs().sum(1)[0] > 0
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[2:7, 2:7] = True  # two 3x3 convs: radius 2
    assert torch.equal(changed, expected)


def test_bottleneck_identity_shortcut_and_shapes():
    block = BottleneckResBlock(8, 8, embed_dim=6, norm_groups=2)
    assert isinstance(block.shortcut, torch.nn.Identity)
    assert block(torch.randn(2, 8, 5, 5), torch.randn(2, 6)).shape == (2, 8, 5, 5)


def test_down_and_up_sample_shapes_and_errors():
    x = torch.randn(2, 4, 8, 6)
    assert Downsample(4, out_channels=6)(x).shape == (2, 6, 4, 3)
    assert Upsample(4)(x).shape == (2, 4, 16, 12)
    with pytest.raises(ValueError, match=r"\(2, 4, 7, 6\)"):
        Downsample(4)(torch.randn(2, 4, 7, 6))
