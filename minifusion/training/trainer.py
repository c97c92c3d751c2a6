"""The stage-independent training loop: AdamW, accumulation, clipping, EMA, warm-up, mixed precision,
NaN guards, atomic checkpoints with exact resume, CSV log and loss plot.

What a step does (``TrainingConfig`` names)::

    lr = lr_at(step)                                   # linear warm-up, then constant
    for a in range(grad_accum_steps):                  # micro-batches of batch_size samples
        with autocast(bf16/fp16 on CUDA, off on CPU):  # forward and loss only
            loss = task.loss(model, batch, indices, per-sample generators)
        scaler.scale(loss / grad_accum_steps).backward()   # outside autocast
    scaler.unscale_(optimizer); clip_grad_norm_(max_grad_norm)   # clip true gradients
    scaler.step(optimizer); scaler.update(); ema.update(model)

A NaN/inf loss (or, without a scaler, a non-finite gradient norm) skips the whole step with a
warning naming it; ``max_nan_skips`` in a row raise ``FloatingPointError`` before anything
non-finite reaches the weights. Exact resume: data order, noise, timesteps and dropouts are
functions of (seed, global sample index) (``data_order``, ``randomness``), and a checkpoint
stores everything else that changes (model, EMA, optimiser, scaler, RNG states, log window).
A checkpoint that cannot be written stops the run (``CheckpointWriteError``; the older ones are intact).

Multi-process (``torchrun``; ``minifusion.training.distributed``): the model is wrapped in
``DistributedDataParallel``, each of the W processes takes ``batch_size / W`` samples of every
micro-batch, accumulation uses ``no_sync``, losses are shared so every rank logs and skips alike,
and only rank 0 writes files; the weights match a one-process run up to float rounding.

Callbacks (``Trainer(..., callbacks=[cb])``): after every optimiser step whose number is a
multiple of ``cb.every_n_steps``, rank 0 calls ``cb(trainer, step)`` (after logging and
checkpointing), e.g. to sample with the EMA weights and log what the loss cannot show. The global
RNG states are saved before and restored after the call, so a callback never changes the run.

Taught in notebook 13 (notebooks/13_mixed_precision_and_scaling.ipynb).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate

from minifusion.checks import positive_int
from minifusion.training import distributed
from minifusion.training.checkpointing import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointWriteError,
    checkpoint_path,
    list_checkpoints,
    load_latest_checkpoint,
    remove_partial_writes,
    save_checkpoint,
)
from minifusion.training.config import TrainingConfig
from minifusion.training.data_order import DataOrder, MicroBatchSampler
from minifusion.training.ema import EMA
from minifusion.training.metrics import CSVLogger, plot_loss_curve
from minifusion.training.optim import build_optimizer, warmup_lr
from minifusion.training.precision import resolve_device, resolve_precision
from minifusion.training.randomness import get_rng_state, sample_generators, seed_everything, set_rng_state
from minifusion.viz.progress import progress_bar

# Config fields that change which samples/noise a step sees: resuming with other values cannot reproduce a plain run.
# (The number of processes is not one of them: the global batch does not depend on it.)
_STREAM_FIELDS = ("seed", "batch_size", "grad_accum_steps", "shuffle")


def move_to_device(batch, device: torch.device):
    """Tensors anywhere inside dicts/lists/tuples go to ``device``; everything else is left alone."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


@dataclass
class TrainingResult:
    step: int  # optimiser steps completed
    last_loss: float  # mean loss of the last logged window (nan if none)
    checkpoint: Path | None  # the newest checkpoint written
    model_dir: Path | None  # exported weights (None unless the run reached config.steps)


class Trainer:
    """Train ``model`` on ``dataset`` with the loss of ``task``; all files go to ``out_dir``.

    Args:
        model: an ``nn.Module``, or a dict of modules (trained jointly, passed to the task as an
            ``nn.ModuleDict``). Frozen parameters (``requires_grad=False``) are never updated.
        task: an object with ``loss(model, batch, sample_indices, generators)``, or such a callable.
        dataset: an indexed dataset (``len`` and ``[i]``; item i must be a pure function of i).
        config: a ``TrainingConfig``.
        out_dir: run folder: ``training_config.json``, ``log.csv``, ``loss.png``,
            ``checkpoints/step_XXXXXX.pt``, ``model/`` (exported weights).
        collate_fn: builds a batch from a list of items (default ``torch.utils.data.default_collate``).
        callbacks: objects with ``every_n_steps`` (int >= 1) and ``__call__(trainer, step)``, run on
            rank 0 after every ``every_n_steps``-th step; the global RNG states are restored afterwards.
    """

    def __init__(self, model: nn.Module | Mapping[str, nn.Module], task, dataset, config: TrainingConfig,
                 out_dir: str | Path, *, collate_fn: Callable | None = None, callbacks=()) -> None:
        if not isinstance(config, TrainingConfig):
            raise ValueError(f"config must be a TrainingConfig, got {type(config).__name__}")
        if isinstance(model, Mapping):
            model = nn.ModuleDict(dict(model))
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module or a dict of them, got {type(model).__name__}")
        self.loss_fn = getattr(task, "loss", task)
        if not callable(self.loss_fn):
            raise ValueError(f"task must have a loss(model, batch, sample_indices, generators) method, got {task!r}")
        self.dist = distributed.init_distributed()  # joins torchrun's process group, if launched by torchrun
        distributed.check_split(config.batch_size, config.world_size, config.rank, self.dist)
        world, rank = self.dist.world_size, self.dist.rank
        self.config, self.task, self.dataset = config, task, dataset
        self.callbacks = list(callbacks or ())
        for cb in self.callbacks:
            if not callable(cb):
                raise ValueError(f"callback {cb!r} must be callable as cb(trainer, step)")
            positive_int("every_n_steps", getattr(cb, "every_n_steps", None), note=f"(an attribute of callback {cb!r})")
        self.collate_fn = collate_fn or default_collate
        self.out_dir = Path(out_dir)
        self.checkpoint_dir = self.out_dir / "checkpoints"
        self.device = distributed.process_device(resolve_device(config.device), self.dist)
        self.precision = resolve_precision(config.mixed_precision, self.device)
        self.model = model.to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model, config)
        # DDP copies rank 0's weights to every rank, so it comes before the EMA copies them.
        self.ddp = distributed.wrap_ddp(self.model, self.loss_fn, self.device,
                                        find_unused_parameters=config.find_unused_parameters) \
            if self.dist.enabled else None
        self.scaler = self.precision.make_scaler()
        self.ema = EMA(self.model, config.ema_decay, warmup=config.ema_warmup) if config.ema_decay > 0 else None
        self.order = DataOrder(dataset_length=len(dataset), batch_size=config.batch_size // world,
                               grad_accum_steps=config.grad_accum_steps, world_size=world, rank=rank,
                               seed=config.seed, shuffle=config.shuffle)
        self.logger = CSVLogger(self.out_dir / "log.csv")
        self.is_main = self.dist.is_main
        self.step = 0  # optimiser steps completed (skipped NaN steps count: they consumed their data)
        self.nan_streak = 0
        self.last_checkpoint: Path | None = None
        self._window = self._empty_window()
        self._last_logged_loss = math.nan
        self._wall_offset, self._session_start = 0.0, time.perf_counter()

    # -- checkpoint state --------------------------------------------------------------------
    @staticmethod
    def _empty_window() -> dict:
        return {"loss_sum": 0.0, "grad_norm_sum": 0.0, "steps": 0, "skipped": 0}

    def _elapsed(self) -> float:
        """Training wall time over all sessions of this run (seconds)."""
        return self._wall_offset + (time.perf_counter() - self._session_start)

    def checkpoint_state(self) -> dict:
        """Everything needed to continue exactly (see ``minifusion.training.checkpointing``)."""
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "step": self.step, "samples_seen": self.step * self.config.global_batch_size,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": get_rng_state(),
            "config": self.config.to_dict(),
            "log_window": dict(self._window),
            "nan_streak": self.nan_streak,
            "wall_time": self._elapsed(),
            "world_size": self.dist.world_size,  # informational: resuming on another number of processes is fine
        }

    def load_checkpoint_state(self, state: dict) -> None:
        saved = state["config"]
        changed = [f for f in _STREAM_FIELDS if saved.get(f) != getattr(self.config, f)]
        if changed and self.is_main:
            details = ", ".join(f"{f}: {saved.get(f)!r} -> {getattr(self.config, f)!r}" for f in changed)
            warnings.warn(f"resuming with a different {details}; the run will not reproduce an uninterrupted one",
                          stacklevel=3)
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if state["ema"] is None:
                raise ValueError("the checkpoint has no EMA weights but ema_decay > 0; set ema_decay=0 to resume it")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])
        self._window = dict(state.get("log_window") or self._empty_window())
        self.nan_streak = int(state.get("nan_streak", 0))
        self._wall_offset, self._session_start = float(state.get("wall_time", 0.0)), time.perf_counter()

    def save_checkpoint(self) -> Path:
        """Rank 0 writes ``checkpoints/step_XXXXXX.pt``; a failed write raises ``CheckpointWriteError`` on all ranks."""
        error = None
        if self.is_main:
            try:
                save_checkpoint(self.checkpoint_state(), self.checkpoint_dir, self.step,
                                keep=self.config.keep_checkpoints)
            except CheckpointWriteError as e:
                error = e
        shared = distributed.broadcast_object(None if error is None else (error.errno, str(error)))
        if error is not None:
            raise error
        if shared is not None:
            code, message = shared
            message = f"rank 0 could not write its checkpoint: {message}"
            raise CheckpointWriteError(code, message) if code is not None else CheckpointWriteError(message)
        self.last_checkpoint = checkpoint_path(self.checkpoint_dir, self.step)
        return self.last_checkpoint

    def resume(self) -> Path | None:
        """Load the newest good checkpoint of ``out_dir`` (warning about bad newer ones); None if there is none.

        Rank 0 reads it and sends it to the other ranks, so all continue from the same state.
        """
        found = None
        if self.is_main:
            for partial in remove_partial_writes(self.checkpoint_dir):
                warnings.warn(f"removed {str(partial)!r}, an unfinished checkpoint write of an interrupted run "
                              "(never used as a checkpoint)", stacklevel=3)
            found = load_latest_checkpoint(self.checkpoint_dir, map_location="cpu" if self.dist.enabled else
                                           self.device)
        found = distributed.broadcast_object(found)
        if found is None:
            if self.is_main:
                warnings.warn(f"resume=True (CLI: --resume) but {str(self.checkpoint_dir)!r} holds no usable "
                              "checkpoint to resume from: training starts from step 0", UserWarning, stacklevel=3)
            return None
        path, state = found
        self.load_checkpoint_state(state)
        self.last_checkpoint = path
        if self.is_main and self.config.progress:
            print(f"resuming from {path} (step {self.step})", flush=True)
        return path

    # -- the loop ----------------------------------------------------------------------------
    def train(self, *, resume: bool = False, max_steps: int | None = None) -> TrainingResult:
        """Train until ``config.steps`` (or ``max_steps``, then checkpoint and return).

        ``resume=True`` continues from the newest good checkpoint in ``out_dir`` (from scratch if
        there is none). Without it, ``out_dir`` must not hold an earlier run's log or checkpoints.
        """
        cfg = self.config
        end = cfg.steps if max_steps is None else min(int(max_steps), cfg.steps)
        seed_everything(cfg.seed)
        self._session_start = time.perf_counter()
        if resume:
            self.resume()
        elif list_checkpoints(self.checkpoint_dir) or self.logger.path.is_file():
            raise ValueError(f"{str(self.out_dir)!r} already holds a training run; pass resume=True to continue it "
                             "or choose an empty out_dir")
        distributed.barrier()  # every rank has looked at out_dir before rank 0 writes to it
        if self.is_main and cfg.progress and self.dist.enabled:
            print(f"DistributedDataParallel on {self.dist.world_size} processes ({torch.distributed.get_backend()}): "
                  f"each takes {cfg.batch_size // self.dist.world_size} of the {cfg.batch_size} samples of every "
                  "micro-batch", flush=True)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out_dir / "training_config.json")
            self.logger.truncate_after(self.step)  # rows a crashed run wrote after its last checkpoint
        start = self.step
        loader = DataLoader(self.dataset, batch_sampler=MicroBatchSampler(self.order, start, end),
                            num_workers=cfg.num_workers, collate_fn=self.collate_fn,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(cfg.seed))  # keeps the global RNG untouched
        batches = iter(loader)
        bar = progress_bar(total=cfg.steps, initial=start, desc="train", disable=not (cfg.progress and self.is_main),
                   dynamic_ncols=True)
        window_start = time.perf_counter()
        try:
            for step in range(start, end):
                loss, grad_norm, skipped = self._train_step(step, batches)
                self.step = step + 1
                w = self._window
                w["steps"] += 1
                if skipped:
                    w["skipped"] += 1
                else:
                    w["loss_sum"] += loss
                    w["grad_norm_sum"] += grad_norm
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    self._write_log_row(now - window_start, self._elapsed())
                    window_start = now
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._checkpoint_and_plot()
                window_start += self._run_callbacks()  # steps_per_sec counts training only
        finally:
            bar.close()
        saved_now = self.last_checkpoint is not None and self.last_checkpoint.name == f"step_{self.step:06d}.pt"
        if self.step == end and not saved_now:
            self._checkpoint_and_plot()
        model_dir = None
        if self.step == cfg.steps:
            model_dir = self.export() if self.is_main else self.out_dir / "model"
            distributed.barrier()  # the exported weights exist when any rank returns
        return TrainingResult(self.step, self._last_logged_loss, self.last_checkpoint, model_dir)

    def _write_log_row(self, window_seconds: float, wall_time: float) -> None:
        w = self._window
        good = w["steps"] - w["skipped"]
        loss = w["loss_sum"] / good if good else math.nan
        row = {"step": self.step, "loss": loss, "lr": float(self.optimizer.param_groups[0]["lr"]),
               "grad_norm": w["grad_norm_sum"] / good if good else math.nan, "skipped": w["skipped"],
               "steps_per_sec": w["steps"] / max(window_seconds, 1e-9), "wall_time": wall_time}
        if self.is_main:
            self.logger.log(row)
        self._last_logged_loss = loss
        self._window = self._empty_window()

    def _run_callbacks(self) -> float:
        """Run the callbacks due at this step; returns the seconds they took."""
        start = time.perf_counter()
        if not self.is_main:
            return 0.0
        for cb in self.callbacks:
            if self.step % cb.every_n_steps == 0:
                state = get_rng_state()  # a callback must not shift the run's random streams
                try:
                    cb(self, self.step)
                finally:
                    set_rng_state(state)
        return time.perf_counter() - start

    def _checkpoint_and_plot(self) -> None:
        self.save_checkpoint()
        if self.is_main and self.config.plot_loss and self.logger.path.is_file():
            plot_loss_curve(self.logger.path)

    def _train_step(self, step: int, batches) -> tuple[float, float, bool]:
        """One optimiser step; returns (mean loss, grad norm, skipped)."""
        cfg = self.config
        (self.ddp or self.model).train()
        lr = warmup_lr(step, lr=cfg.lr, warmup_steps=cfg.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        losses, problem = [], None
        for a in range(cfg.grad_accum_steps):
            indices = self.order.global_indices(step, a)
            batch = next(batches)  # always consumed, so the stream stays aligned after a skipped step
            if problem is not None:
                continue
            batch = move_to_device(batch, self.device)
            last = a == cfg.grad_accum_steps - 1  # DDP all-reduces the summed gradients after the last one only
            with contextlib.nullcontext() if self.ddp is None or last else self.ddp.no_sync():
                with self.precision.autocast():
                    loss = self._loss(batch, indices)
                if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                    shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                    raise ValueError(f"task.loss must return a scalar tensor (the mean over samples), got {shape}")
                ranks = distributed.per_rank_values(loss)  # (W,): every rank decides alike whether to skip
                if not torch.isfinite(ranks).all():
                    problem = self._nonfinite(ranks, step, a)
                    continue
                losses.append(ranks.mean())  # equal shares: the mean over the whole micro-batch
                self.scaler.scale(loss / cfg.grad_accum_steps).backward()  # outside autocast
        if problem is not None:
            return self._skip(step, problem)
        self.scaler.unscale_(self.optimizer)  # true gradients before clipping
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm or math.inf)
        if not self.scaler.is_enabled() and not torch.isfinite(grad_norm):
            return self._skip(step, f"gradient norm is {grad_norm.item()}")
        scale_before = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # fp16: the scaler skips steps with inf/NaN gradients and lowers the scale (normal; not a NaN loss).
        stepped = scale_before is None or self.scaler.get_scale() >= scale_before
        if stepped and self.ema is not None:
            self.ema.update(self.model)
        self.nan_streak = 0
        return float(torch.stack(losses).mean()), float(grad_norm), False

    def _loss(self, batch, indices: list[int]) -> torch.Tensor:
        generators = sample_generators(self.config.seed, indices)
        if self.ddp is None:
            return self.loss_fn(self.model, batch, indices, generators)
        try:
            return self.ddp(batch, indices, generators)  # DDP's forward prepares the gradient all-reduce
        except RuntimeError as e:
            raise distributed.explain_ddp_error(e) from e

    def _nonfinite(self, rank_losses: torch.Tensor, step: int, micro_batch: int) -> str:
        """What went wrong, e.g. "loss is nan (micro-batch 0, samples 4..7)", naming the rank(s) if several."""
        parts = []
        for r, value in enumerate(rank_losses.tolist()):
            if not math.isfinite(value):
                g = self.order.global_indices(step, micro_batch, rank=r)
                on = f" on rank {r}" if self.dist.world_size > 1 else ""
                parts.append(f"loss is {value}{on} (micro-batch {micro_batch}, samples {g[0]}..{g[-1]})")
        return "; ".join(parts)

    def _skip(self, step: int, problem: str) -> tuple[float, float, bool]:
        self.optimizer.zero_grad(set_to_none=True)
        self.nan_streak += 1
        limit = self.config.max_nan_skips
        first = step + 2 - self.nan_streak
        if self.nan_streak >= limit:
            where = f" (last good checkpoint: {str(self.last_checkpoint)!r})" if self.last_checkpoint else ""
            raise FloatingPointError(
                f"non-finite loss or gradients in {self.nan_streak} consecutive steps ({first}..{step + 1}), "
                f"the limit max_nan_skips={limit}; stopping before NaN reaches the weights, which are unchanged "
                f"since step {first - 1}{where}. Try a lower lr, mixed_precision='no', or check the data."
            )
        if self.is_main:
            warnings.warn(f"step {step + 1}: {problem}; skipped this step without updating the weights "
                          f"({self.nan_streak} of at most {limit - 1} in a row)", RuntimeWarning, stacklevel=3)
        return math.nan, math.nan, True

    # -- export ------------------------------------------------------------------------------
    def export(self, path: str | Path | None = None, *, use_ema: bool = True) -> Path:
        """Save final weights (EMA by default) with ``save_pretrained``; a dict model gets one subfolder per module."""
        path = Path(path) if path is not None else self.out_dir / "model"
        use_ema = use_ema and self.ema is not None
        with self.ema.average_parameters(self.model) if use_ema else contextlib.nullcontext():
            if isinstance(self.model, nn.ModuleDict):
                for name, module in self.model.items():
                    _save_module(module, path / name)
            else:
                _save_module(self.model, path)
        return path


def _save_module(module: nn.Module, directory: Path) -> None:
    if hasattr(module, "save_pretrained"):
        module.save_pretrained(directory)
        return
    from safetensors.torch import save as save_tensors

    from minifusion.models.modeling_utils import WEIGHTS_NAME, atomic_write_bytes

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_NAME, save_tensors(state))
