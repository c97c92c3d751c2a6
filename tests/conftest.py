"""Test setup: one thread per pytest worker (make test runs two workers on two cores)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
