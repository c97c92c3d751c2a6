"""Per-sample generators and the data order: the same sample gets the same data and noise in any batching."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from minifusion.training import (
    DataOrder,
    get_rng_state,
    per_sample_bernoulli,
    per_sample_noise,
    per_sample_randint,
    sample_generators,
    sample_seed,
    seed_everything,
    set_rng_state,
)


def draws(seed, indices):
    gens = sample_generators(seed, indices)
    return per_sample_randint(gens, 0, 1000), per_sample_noise(gens, (2, 3)), per_sample_bernoulli(gens, 0.5)


def test_per_sample_draws_do_not_depend_on_the_batch():
    t_all, n_all, d_all = draws(7, [10, 11, 12, 13])
    t_one, n_one, d_one = draws(7, [12])
    assert t_all[2] == t_one[0] and d_all[2] == d_one[0]
    assert torch.equal(n_all[2], n_one[0])
    assert not torch.equal(n_all[0], n_all[1])  # different samples, different noise
    assert not torch.equal(draws(8, [12])[1], n_one)  # different seed, different noise
    assert sample_seed(7, 12) != sample_seed(7, 12, stream=1)
    assert n_all.shape == (4, 2, 3) and t_all.dtype == torch.int64 and d_all.dtype == torch.bool


def test_per_sample_bernoulli_rate_and_errors():
    gens = sample_generators(0, range(2000))
    rate = per_sample_bernoulli(gens, 0.1).float().mean().item()
    assert 0.07 < rate < 0.13
    with pytest.raises(ValueError, match="probability 1.5"):
        per_sample_bernoulli(gens[:1], 1.5)
    with pytest.raises(ValueError, match="empty"):
        per_sample_randint(gens[:1], 3, 3)


def test_data_order_epochs_are_permutations():
    order = DataOrder(dataset_length=7, batch_size=3, seed=1)
    epoch0 = order.dataset_indices(list(range(7)))
    epoch1 = order.dataset_indices(list(range(7, 14)))
    assert sorted(epoch0) == sorted(epoch1) == list(range(7))
    assert epoch0 != epoch1
    assert DataOrder(dataset_length=7, batch_size=3, seed=1, shuffle=False).dataset_indices([5, 6, 7]) == [5, 6, 0]


def test_accumulation_and_ranks_slice_the_same_global_batch():
    plain = DataOrder(dataset_length=50, batch_size=8, seed=0)
    accum = DataOrder(dataset_length=50, batch_size=4, grad_accum_steps=2, seed=0)
    ranks = [DataOrder(dataset_length=50, batch_size=2, grad_accum_steps=2, world_size=2, rank=r, seed=0)
             for r in range(2)]
    for step in range(3):
        whole = plain.global_indices(step, 0)
        assert accum.global_indices(step, 0) + accum.global_indices(step, 1) == whole
        sliced = [g for o in ranks for a in range(2) for g in o.global_indices(step, a)]
        assert sliced == whole  # rank r takes the fixed slice r of each global batch


def test_rng_state_round_trip():
    seed_everything(5)
    state = get_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1))
    random.random(), np.random.rand(), torch.rand(1)
    set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(1))
    assert a[:2] == b[:2] and torch.equal(a[2], b[2])
