"""Reproducible randomness: global seeding, RNG state capture, and per-sample generators.

Why per-sample generators: if a training step drew its noise from one shared generator, the
noise a sample gets would depend on everything drawn before it (batch size, accumulation,
how many processes, where a run was resumed). Here every sample of the data stream has a
*global index* g (``minifusion.training.data_order``) and its own generator seeded by a hash
of (seed, g). The sample's timestep, noise and dropout decisions come from that generator in
a fixed order, so they are the same in a plain run, an accumulated run, a resumed run and
(later) a multi-process run.

A task draws, per micro-batch of B samples with generators ``gens`` (a list of B)::

    t = per_sample_randint(gens, 0, 1000)             # (B,)  int64
    noise = per_sample_noise(gens, x0.shape[1:])       # (B, C, F, H, W)
    drop = per_sample_bernoulli(gens, 0.1)             # (B,)  bool
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch


def sample_seed(seed: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed for sample ``index`` of a run seeded with ``seed`` (numpy SeedSequence hash).

    ``stream`` separates independent uses (e.g. data order vs noise) of the same (seed, index).
    """
    if seed < 0 or index < 0 or stream < 0:
        raise ValueError(f"seed, index and stream must be >= 0, got {seed}, {index}, {stream}")
    state = np.random.SeedSequence((int(seed), int(stream), int(index))).generate_state(1, np.uint64)[0]
    return int(state) & 0x7FFF_FFFF_FFFF_FFFF


def sample_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per global sample index."""
    return [torch.Generator().manual_seed(sample_seed(seed, int(g))) for g in indices]


def per_sample_noise(
    generators: Sequence[torch.Generator],
    shape: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of shape (B, *shape), row b drawn from ``generators[b]`` (on CPU, then moved)."""
    rows = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(rows).to(device=device, dtype=dtype)


def per_sample_rand(generators: Sequence[torch.Generator], *, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B,) float32 uniform in [0, 1), one draw per generator."""
    return torch.cat([torch.rand(1, generator=g) for g in generators]).to(device)


def per_sample_randint(
    generators: Sequence[torch.Generator], low: int, high: int, *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(B,) int64 uniform in [low, high), one draw per generator."""
    if not high > low:
        raise ValueError(f"randint range [{low}, {high}) is empty; need high > low")
    return torch.cat([torch.randint(low, high, (1,), generator=g) for g in generators]).to(device)


def per_sample_bernoulli(
    generators: Sequence[torch.Generator], p: float, *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(B,) bool, True with probability ``p``; always consumes one draw per generator (even for p = 0)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability {p!r} is not allowed; it must be in [0, 1]")
    return per_sample_rand(generators, device=device) < p


# -- global RNGs (model dropout layers, user code) -------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    """The global RNG states, as tensors and plain python values (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``get_rng_state`` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    # RNG states must be CPU byte tensors, whatever map_location the checkpoint was loaded with.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
