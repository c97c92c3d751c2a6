"""Find the module that made a NaN or inf: a forward hook on every submodule, one forward pass.

A non-finite loss says *that* something broke, not *where*. Once a NaN exists, every later layer
passes it on, so the last layer (or the loss) is the wrong place to look. ``find_nonfinite`` hooks
every submodule, runs the model once and reports the first module whose output holds a NaN or inf,
in the order the modules' forward calls *return*: a submodule returns before the module that
contains it, so the report names the innermost module. ``inputs_finite`` separates "made it"
(finite inputs, non-finite output: look inside this module - its weights, a division, an fp16
overflow) from "passed it on" (its inputs already held one: the value was made by code that runs
between modules, in the forward of ``parent``). The pass stops there; nothing later changes the answer.

Gradients: a NaN that appears only in backward (``sqrt`` or ``log`` at 0, the ``torch.where``
trap) is found by ``torch.autograd.detect_anomaly()``, which names the backward function that
returned it and the forward line that created it; ``nonfinite_gradients(model)`` lists the
parameters whose ``.grad`` holds a NaN or inf after a backward pass.

Taught in notebook 13 (notebooks/13_mixed_precision_and_scaling.ipynb).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class NonFiniteReport:
    """The first module whose output held a NaN or inf."""

    name: str  # qualified name, as in model.named_modules(); "" is the model itself
    module_type: str  # class name, e.g. "Conv2d"
    inputs_finite: bool  # True: made here from finite inputs; False: its inputs already held one
    nonfinite_fraction: float  # share of the output's floating-point elements that are NaN or inf
    nan_count: int  # NaN elements in the output
    inf_count: int  # +-inf elements in the output
    parent: str | None  # the module whose forward called this one (None for the model itself)
    call_index: int  # module forward calls that returned before this one (its place in execution order)

    def __str__(self) -> str:
        where = repr(self.name) if self.name else "the model itself"
        parent = repr(self.parent) if self.parent else "the model itself"
        how = ("made it from finite inputs" if self.inputs_finite else
               f"passed it on: its inputs already held NaN/inf, made in the forward of {parent}")
        return (f"{where} ({self.module_type}, call {self.call_index}): {self.nonfinite_fraction:.2%} of its output "
                f"is non-finite ({self.nan_count} NaN, {self.inf_count} inf); it {how}")


class _Found(Exception):
    """Raised from a hook to stop the forward pass at the first non-finite output."""


def _float_tensors(obj) -> Iterator[torch.Tensor]:
    """Floating-point tensors anywhere inside tuples, lists, dicts and dataclasses."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _float_tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _float_tensors(item)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            yield from _float_tensors(getattr(obj, field.name))


def _all_finite(obj) -> bool:
    return all(bool(torch.isfinite(t.detach()).all()) for t in _float_tensors(obj))


def find_nonfinite(model: nn.Module, *args, **kwargs) -> NonFiniteReport | None:
    """Run ``model(*args, **kwargs)`` once; the first module whose output held NaN/inf, or None.

    Works in any grad mode (under ``torch.no_grad()`` too) and leaves no hook behind, also when
    the forward pass raises. A floating-point input holding inf (an additive ``-inf`` attention
    mask) counts as non-finite for ``inputs_finite``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    stack: list[tuple[str, bool]] = []  # (name, inputs finite) of the modules whose forward is running
    calls = 0
    found: list[NonFiniteReport] = []

    def before(name: str):
        def hook(module, args, kwargs):
            # checked before the call: an in-place op would otherwise hide what the module received
            stack.append((name, _all_finite(args) and _all_finite(kwargs)))
        return hook

    def after(name: str):
        def hook(module, args, kwargs, output):
            nonlocal calls
            _, inputs_finite = stack.pop()
            calls += 1
            tensors = list(_float_tensors(output))
            nan = sum(int(torch.isnan(t.detach()).sum()) for t in tensors)
            inf = sum(int(torch.isinf(t.detach()).sum()) for t in tensors)
            if nan or inf:
                total = sum(t.numel() for t in tensors)
                found.append(NonFiniteReport(name, type(module).__name__, inputs_finite, (nan + inf) / total,
                                             nan, inf, stack[-1][0] if stack else None, calls - 1))
                raise _Found
        return hook

    handles = []
    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(before(name), with_kwargs=True))
            handles.append(module.register_forward_hook(after(name), with_kwargs=True))
        model(*args, **kwargs)
    except _Found:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def nonfinite_gradients(model: nn.Module) -> list[str]:
    """Names of the parameters whose ``.grad`` holds a NaN or inf (after a backward pass)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [name for name, p in model.named_parameters()
            if p.grad is not None and not bool(torch.isfinite(p.grad).all())]


__all__ = ["NonFiniteReport", "find_nonfinite", "nonfinite_gradients"]
