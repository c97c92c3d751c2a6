"""Which dataset item every sample of the training stream is, as a pure function of (seed, position).

The stream: optimiser step s consumes the global batch of ``E = b * A * W`` samples (``b`` per
micro-batch on each of ``W`` ranks, ``A`` micro-batches) with global indices ``s * E .. s * E + E - 1``.
The ``Trainer`` uses ``b = TrainingConfig.batch_size / W``, so E does not depend on W. Rank r takes the fixed,
contiguous slice ``r * b * A .. (r + 1) * b * A - 1`` of each global batch (as torch's
``DistributedSampler`` gives each rank a fixed share), and its micro-batch a the
``b`` indices ``r * b * A + a * b + j``. So a run with batch b and accumulation A reads exactly
the samples of a run with batch ``b * A`` and no accumulation, in the same order.

Global index g lies in epoch ``g // N`` at position ``g % N`` (N = len(dataset)); each epoch is
a permutation seeded by (seed, epoch). Resuming at step s needs only s.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from minifusion.training.randomness import sample_seed

_ORDER_STREAM = 1  # separates the permutation seeds from the per-sample noise seeds


class DataOrder:
    """Maps (step, micro-batch, rank) -> global sample indices -> dataset indices.

    Args:
        dataset_length: N, the number of items in the dataset.
        batch_size: samples per micro-batch on one rank (the ``Trainer`` passes ``TrainingConfig.batch_size / W``).
        grad_accum_steps, world_size, rank: micro-batches per step, processes, this process.
        seed: run seed.
        shuffle: permute each epoch (else visit 0..N-1 in order every epoch).
    """

    def __init__(self, *, dataset_length: int, batch_size: int, grad_accum_steps: int = 1, world_size: int = 1,
                 rank: int = 0, seed: int = 0, shuffle: bool = True) -> None:
        if dataset_length < 1:
            raise ValueError(f"dataset_length {dataset_length} is not allowed; the dataset must not be empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.dataset_length, self.batch_size = int(dataset_length), int(batch_size)
        self.grad_accum_steps, self.world_size, self.rank = int(grad_accum_steps), int(world_size), int(rank)
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.global_batch_size = self.batch_size * self.grad_accum_steps * self.world_size
        self._permutation = lru_cache(maxsize=4)(self._make_permutation)

    def _make_permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, stream=_ORDER_STREAM))
        return torch.randperm(self.dataset_length, generator=g)

    def global_indices(self, step: int, micro_batch: int, rank: int | None = None) -> list[int]:
        """Global sample indices of micro-batch ``micro_batch`` of step ``step`` on ``rank`` (default: this rank)."""
        if not 0 <= micro_batch < self.grad_accum_steps:
            raise ValueError(f"micro_batch {micro_batch} is not in 0..{self.grad_accum_steps - 1}")
        rank = self.rank if rank is None else rank
        b = self.batch_size
        start = step * self.global_batch_size + rank * b * self.grad_accum_steps + micro_batch * b
        return list(range(start, start + b))

    def dataset_index(self, global_index: int) -> int:
        epoch, position = divmod(int(global_index), self.dataset_length)
        if not self.shuffle:
            return position
        return int(self._permutation(epoch)[position])

    def dataset_indices(self, global_indices: list[int]) -> list[int]:
        return [self.dataset_index(g) for g in global_indices]

    def micro_batches(self, start_step: int, end_step: int):
        """Yield (step, micro_batch, global_indices) for steps start_step..end_step-1 in training order."""
        for step in range(start_step, end_step):
            for a in range(self.grad_accum_steps):
                yield step, a, self.global_indices(step, a)


class MicroBatchSampler(torch.utils.data.Sampler):
    """A ``batch_sampler`` for ``DataLoader``: yields the dataset indices of each micro-batch from a step on."""

    def __init__(self, order: DataOrder, start_step: int, end_step: int) -> None:
        self.order, self.start_step, self.end_step = order, start_step, end_step

    def __iter__(self):
        for _, _, g in self.order.micro_batches(self.start_step, self.end_step):
            yield self.order.dataset_indices(g)

    def __len__(self) -> int:
        return max(self.end_step - self.start_step, 0) * self.order.grad_accum_steps
