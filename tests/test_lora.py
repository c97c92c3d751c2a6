"""minifusion.nn.lora: a LoRA layer is the frozen layer at init, computes W x + (alpha / r) B A x, merges
into one equal nn.Linear, and trains only its two small matrices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minifusion.nn import Attention
from minifusion.nn.lora import LoRALinear, add_lora, merge_lora


def test_identity_at_init_and_only_the_low_rank_factors_train():
    torch.manual_seed(0)
    base = nn.Linear(12, 8)
    reference = nn.Linear(12, 8)
    reference.load_state_dict(base.state_dict())
    layer = LoRALinear(base, rank=3)
    x = torch.randn(5, 4, 12)
    torch.testing.assert_close(layer(x), reference(x), rtol=0, atol=0)
    trainable = {name for name, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"down.weight", "up.weight"}
    assert layer.down.weight.shape == (3, 12) and layer.up.weight.shape == (8, 3)


def test_agrees_with_the_formula_and_merges_to_the_same_function():
    torch.manual_seed(1)
    base = nn.Linear(6, 10)
    layer = LoRALinear(base, rank=2, network_alpha=4.0)
    nn.init.normal_(layer.up.weight)  # a trained update
    a, b, w = layer.down.weight, layer.up.weight, base.weight
    x = torch.randn(7, 6)
    expected = x @ w.T + base.bias + (4.0 / 2) * (x @ a.T @ b.T)
    torch.testing.assert_close(layer(x), expected)
    merged = layer.merged()
    assert type(merged) is nn.Linear
    torch.testing.assert_close(merged(x), layer(x))
    torch.testing.assert_close(base.weight, w)  # the frozen weight is untouched by merging


def test_add_and_merge_lora_on_an_attention_layer():
    torch.manual_seed(2)
    attention = Attention(16, cross_attention_dim=8, heads=2, dim_head=8)
    x, context = torch.randn(2, 5, 16), torch.randn(2, 3, 8)
    before = attention(x, context)
    names = add_lora(attention, lambda name: name in ("to_k", "to_v"), rank=2)
    assert names == ["to_k", "to_v"]
    assert isinstance(attention.to_k, LoRALinear) and isinstance(attention.to_q, nn.Linear)
    torch.testing.assert_close(attention(x, context), before, rtol=0, atol=0)
    nn.init.normal_(attention.to_v.up.weight)
    after = attention(x, context)
    assert not torch.allclose(after, before)
    assert merge_lora(attention) == 2
    assert not any(isinstance(m, LoRALinear) for m in attention.modules())
    torch.testing.assert_close(attention(x, context), after)


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="rank 0 .* 1..4"):
        LoRALinear(nn.Linear(4, 9), rank=0)
    with pytest.raises(ValueError, match="rank 5"):
        LoRALinear(nn.Linear(4, 9), rank=5)
    with pytest.raises(ValueError, match="network_alpha -1"):
        LoRALinear(nn.Linear(4, 9), rank=2, network_alpha=-1)
    with pytest.raises(ValueError, match="Conv2d"):
        LoRALinear(nn.Conv2d(3, 3, 1), rank=1)
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(nn.Sequential(nn.Linear(3, 3)), lambda name: name == "missing", rank=1)
