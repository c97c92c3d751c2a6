"""The NaN hunter names the module that made a NaN/inf, not the later ones that pass it on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minifusion.models import UNet, UNetConfig
from minifusion.training import NonFiniteReport, find_nonfinite, nonfinite_gradients

TINY = dict(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=8, attention_head_dim=8,
            norm_groups=2, sample_size=8, text_length=3)
CULPRIT = "down_blocks.1.layers.0.blocks.1.conv"  # a conv in the middle of the network


def tiny_unet() -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(**TINY)).eval()


def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, 8, 8, generator=g), torch.tensor([10.0, 900.0]), torch.randn(2, 3, 8, generator=g)


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_finite_model_gives_none_and_leaves_no_hooks():
    model = tiny_unet()
    assert find_nonfinite(model, *inputs()) is None
    assert no_hooks_left(model)


@pytest.mark.parametrize("grad", [True, False])
def test_a_nan_weight_is_traced_to_its_layer(grad):
    model = tiny_unet()
    with torch.no_grad():
        model.get_submodule(CULPRIT).weight[0, 0, 1, 1] = float("nan")
    with torch.set_grad_enabled(grad):
        out = model(*inputs())
        report = find_nonfinite(model, *inputs())
    assert not torch.isfinite(out).all()  # the NaN reaches the output through many later layers
    assert isinstance(report, NonFiniteReport)
    assert (report.name, report.module_type, report.inputs_finite) == (CULPRIT, "Conv2d", True)
    assert report.parent == CULPRIT.rsplit(".", 1)[0]
    # one output channel of the conv holds NaN (the weight belongs to output channel 0)
    assert report.nan_count > 0 and report.inf_count == 0
    assert report.nonfinite_fraction == pytest.approx(1 / model.get_submodule(CULPRIT).out_channels)
    assert CULPRIT in str(report) and "made it from finite inputs" in str(report)
    assert no_hooks_left(model)


class MadeBetweenModules(nn.Module):
    """The inf comes from a division in this module's own forward, between two submodules."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second, self.third = nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 2)

    def forward(self, x):
        h = self.first(x)
        h = h / (h - h)  # 0 / 0 and x / 0
        return self.third(self.second(h))


def test_a_value_made_between_modules_names_the_receiver_and_its_parent():
    model = MadeBetweenModules()
    report = find_nonfinite(model, torch.randn(3, 4))
    # ReLU works in place: its inputs are checked before the call, so it is still "passed on"
    assert (report.name, report.inputs_finite, report.parent) == ("second", False, "")
    assert "passed it on" in str(report) and "forward of the model itself" in str(report) and report.call_index == 1


def test_inf_in_the_model_itself_and_errors_still_remove_hooks():
    class Overflow(nn.Module):
        def forward(self, x):
            return x.half() * 1e5  # fp16 overflows at 65504

    report = find_nonfinite(Overflow(), torch.ones(2))
    assert (report.name, report.module_type, report.inf_count, report.parent) == ("", "Overflow", 2, None)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(5, 2))
    with pytest.raises(RuntimeError):  # shapes do not match: the error is the model's, the hooks go anyway
        find_nonfinite(model, torch.randn(1, 4))
    assert no_hooks_left(model)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module, got function"):
        find_nonfinite(lambda x: x, torch.ones(1))


def test_nonfinite_gradients_lists_the_parameters():
    model = nn.Sequential(nn.Linear(3, 1), nn.Linear(1, 1))
    x = torch.zeros(2, 3)
    model(x).sum().backward()
    assert nonfinite_gradients(model) == []
    model.zero_grad()
    torch.sqrt(model[0](x) * 0).sum().backward()  # d sqrt(u) / du at u = 0 is inf
    assert nonfinite_gradients(model) == ["0.weight", "0.bias"]
