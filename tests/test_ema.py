"""EMA of weights: the formula, warm-up, swapping in and out, frozen parameters, state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minifusion.training import EMA


def model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    m[0].requires_grad_(False)
    return m


def set_params(m: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(value)


def test_ema_formula():
    m = model()
    p0 = m[1].weight.detach().clone()
    ema = EMA(m, decay=0.9)
    set_params(m, 1.0)
    ema.update(m)
    set_params(m, 3.0)
    ema.update(m)
    # s2 = d^2 p0 + d (1 - d) p1 + (1 - d) p2
    expected = 0.81 * p0 + 0.09 * 1.0 + 0.1 * 3.0
    assert torch.allclose(ema.shadow["1.weight"], expected, atol=1e-6)
    assert ema.num_updates == 2


def test_ema_warmup_decay():
    ema = EMA(model(), decay=0.99, warmup=True)
    decays = []
    for _ in range(1000):
        decays.append(ema.current_decay())
        ema.num_updates += 1
    assert decays[:3] == pytest.approx([0.1, 2 / 11, 3 / 12])
    assert decays[-1] == 0.99 and max(decays) == 0.99
    assert EMA(model(), decay=0.99).current_decay() == 0.99


def test_only_trainable_parameters_and_swap():
    m = model()
    ema = EMA(m, decay=0.5)
    assert sorted(ema.shadow) == ["1.bias", "1.weight"]  # layer 0 is frozen
    frozen = m[0].weight.detach().clone()
    set_params(m, 2.0)
    ema.update(m)
    trained = m[1].weight.detach().clone()
    with ema.average_parameters(m):
        assert torch.equal(m[1].weight, ema.shadow["1.weight"])
        assert not torch.equal(m[1].weight, trained)
    assert torch.equal(m[1].weight, trained)  # restored
    ema.copy_to(m)
    assert torch.equal(m[1].weight, ema.shadow["1.weight"])
    assert torch.equal(m[0].weight, torch.full_like(frozen, 2.0))  # copy_to leaves frozen params alone


def test_state_dict_round_trip_and_errors():
    m = model()
    ema = EMA(m, decay=0.9, warmup=True)
    set_params(m, 1.0)
    ema.update(m)
    other = EMA(model(), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and other.decay == 0.9 and other.warmup
    assert all(torch.equal(other.shadow[k], ema.shadow[k]) for k in ema.shadow)
    with pytest.raises(ValueError, match="does not match"):
        EMA(nn.Linear(2, 2)).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match=r"decay 1\.0"):
        EMA(m, decay=1.0)
