"""Mixed precision: which autocast dtype and whether a gradient scaler, from a mode and a device.

Rules:
- "no": fp32 everywhere.
- "auto": on CUDA bf16 where ``torch.cuda.is_bf16_supported()`` (Ampere and newer), else fp16;
  anywhere else fp32 (a CPU without native bf16 runs bf16 matrix products ~100x slower).
- "bf16": bf16 autocast, no scaler (bf16 has fp32's exponent range); allowed on CPU with a warning.
- "fp16": fp16 autocast with a ``GradScaler`` (fp16 gradients underflow without loss scaling);
  CUDA only.

The trainer wraps only the forward pass and loss in ``torch.autocast``; backward runs outside
it, and gradients are unscaled before clipping.

Taught in notebook 13 (notebooks/13_mixed_precision_and_scaling.ipynb).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch

from minifusion.training.config import MIXED_PRECISION_MODES


@dataclass(frozen=True)
class Precision:
    """The resolved choice: ``dtype`` None means fp32 (no autocast)."""

    device_type: str
    dtype: torch.dtype | None
    use_scaler: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for the forward pass and loss (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only for fp16 (a disabled one passes everything through)."""
        return torch.amp.GradScaler(self.device_type if self.use_scaler else "cpu", enabled=self.use_scaler)


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> cuda if available else cpu; otherwise ``torch.device(device)`` (checked)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def resolve_precision(mixed_precision: str, device: str | torch.device) -> Precision:
    """The autocast dtype and scaler use for ``mixed_precision`` on ``device``."""
    if mixed_precision not in MIXED_PRECISION_MODES:
        allowed = ", ".join(repr(m) for m in MIXED_PRECISION_MODES)
        raise ValueError(f"mixed_precision {mixed_precision!r} is not one of {allowed}")
    device_type = torch.device(device).type
    on_cuda = device_type == "cuda"
    if mixed_precision == "no" or (mixed_precision == "auto" and not on_cuda):
        return Precision(device_type, None, False)
    if mixed_precision == "auto":
        if torch.cuda.is_bf16_supported():
            return Precision(device_type, torch.bfloat16, False)
        return Precision(device_type, torch.float16, True)
    if mixed_precision == "bf16":
        if on_cuda and not torch.cuda.is_bf16_supported():
            raise ValueError("mixed_precision 'bf16' is not supported by this GPU; use 'fp16', 'auto' or 'no'")
        if not on_cuda:
            warnings.warn(f"mixed_precision 'bf16' on {device_type!r}: without native bf16 units this is much "
                          "slower than fp32; 'no' is the recommended setting off CUDA", stacklevel=2)
        return Precision(device_type, torch.bfloat16, False)
    # fp16
    if not on_cuda:
        raise ValueError(f"mixed_precision 'fp16' needs a CUDA device, got {device_type!r}; use 'no' or 'bf16'")
    return Precision(device_type, torch.float16, True)
