"""Measuring tools every benchmark shares: FLOP counts, median step times, time spent inside a module, peak memory.

- FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and
  attention; element-wise work is not counted, as in every MFU figure). Importing ``minifusion.nn``
  first teaches the counter the CPU attention kernel, so a model that calls
  ``F.scaled_dot_product_attention`` (ours, diffusers') is counted the same way on every device.
- Times are medians over ``steps`` calls after ``warmup`` calls, with the device synchronised around
  each call, from ``time.perf_counter``.
- Peak resident memory is the process's high-water mark (``VmHWM`` in ``/proc/self/status`` on
  Linux, ``ru_maxrss`` elsewhere); peak GPU memory is ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

import minifusion.nn  # noqa: F401  (registers the CPU attention kernel with the FLOP counter)


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work, so that a clock read after it measures the work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (forward and, if ``fn`` calls it, backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def median_seconds(fn: Callable[[], object], *, steps: int, warmup: int, device: str | torch.device = "cpu") -> float:
    """Median wall time of ``steps`` calls of ``fn`` after ``warmup`` untimed calls."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps!r}, warmup={warmup!r}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class ModuleTimer:
    """Adds up the wall time spent inside ``module``'s forward calls (hooks; remove with ``close()``).

    Used to count "U-Net work only": the time a sampling loop spends in the network, without the
    scheduler arithmetic, the guidance mix or the data movement around it.
    """

    def __init__(self, module: torch.nn.Module, device: str | torch.device = "cpu"):
        self.seconds, self.calls, self._start, self.device = 0.0, 0, None, device
        self._handles = [module.register_forward_pre_hook(self._enter), module.register_forward_hook(self._exit)]

    def _enter(self, *_) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()

    def _exit(self, *_) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (bytes)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024  # bytes on macOS, kB elsewhere
