"""Training: the stage-independent trainer and its parts.

- ``TrainingConfig``: every knob of a run, saved as JSON in the run folder;
- ``Trainer``: AdamW, accumulation, clipping, EMA, warm-up, mixed precision, NaN guards,
  atomic checkpoints and exact resume, CSV log and loss plot;
- per-sample randomness (``sample_generators``, ``per_sample_noise`` ...) and ``DataOrder``,
  which make a resumed, accumulated or multi-process run reproduce a plain one;
- ``EMA``, ``LatentCache``; ``DenoisingTask`` and ``TinyDenoiser`` as the example task/model;
- ``distributed``: the same training on several processes (``torchrun`` + DDP), ``run_torchrun``;
- ``find_nonfinite``: the module that made a NaN/inf in a forward pass (``nan_hunt``).

Per-stage recipes (autoencoder, text-to-image, keyframes, interpolation, decoder) build on this.
"""

from __future__ import annotations

from minifusion.training import distributed
from minifusion.training.checkpointing import (
    CheckpointWriteError,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    remove_partial_writes,
    save_checkpoint,
)
from minifusion.training.config import MIXED_PRECISION_MODES, TrainingConfig
from minifusion.training.data_order import DataOrder, MicroBatchSampler
from minifusion.training.distributed import DistributedContext, distributed_session, run_torchrun, torchrun_command
from minifusion.training.ema import EMA
from minifusion.training.latent_cache import CachedLatents, LatentCache, dataset_description, module_weights_hash
from minifusion.training.metrics import LOG_COLUMNS, CSVLogger, plot_loss_curve, read_log, smooth
from minifusion.training.nan_hunt import NonFiniteReport, find_nonfinite, nonfinite_gradients
from minifusion.training.optim import build_optimizer, warmup_lr
from minifusion.training.precision import Precision, resolve_device, resolve_precision
from minifusion.training.randomness import (
    get_rng_state,
    per_sample_bernoulli,
    per_sample_noise,
    per_sample_rand,
    per_sample_randint,
    sample_generators,
    sample_seed,
    seed_everything,
    set_rng_state,
)
from minifusion.training.tasks import DenoisingTask, TinyDenoiser, TinyDenoiserConfig
from minifusion.training.trainer import Trainer, TrainingResult, move_to_device

__all__ = [
    "CachedLatents", "CheckpointWriteError", "CSVLogger", "DataOrder", "DenoisingTask", "DistributedContext", "EMA",
    "LatentCache", "distributed", "distributed_session", "remove_partial_writes", "run_torchrun", "torchrun_command",
    "LOG_COLUMNS", "MIXED_PRECISION_MODES", "MicroBatchSampler", "NonFiniteReport", "Precision", "TinyDenoiser",
    "TinyDenoiserConfig", "find_nonfinite", "nonfinite_gradients",
    "Trainer", "TrainingConfig", "TrainingResult",
    "build_optimizer", "dataset_description", "get_rng_state", "list_checkpoints", "load_checkpoint",
    "load_latest_checkpoint", "module_weights_hash", "move_to_device", "per_sample_bernoulli", "per_sample_noise",
    "per_sample_rand", "per_sample_randint", "plot_loss_curve", "read_log", "resolve_device", "resolve_precision",
    "sample_generators", "sample_seed", "save_checkpoint", "seed_everything", "set_rng_state", "smooth", "warmup_lr",
]
