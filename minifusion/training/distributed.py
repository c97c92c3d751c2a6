"""Multi-process training on PyTorch's own engine: ``torchrun`` plus ``DistributedDataParallel``.

One command runs on one process or on many (docs/distributed.md)::

    python -m minifusion train t2i --out runs/shapes                                  # one process
    torchrun --standalone --nproc_per_node=2 -m minifusion train t2i --out runs/shapes  # two, one machine
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --rdzv_backend=c10d \\
        --rdzv_endpoint=host0:29500 --rdzv_id=shapes -m minifusion train t2i --out /shared/shapes

How a run is split (``Trainer`` does it; nothing changes in the recipes' configs):

- ``torchrun`` starts the processes with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
  ``MASTER_PORT`` set; ``init_distributed`` joins the process group once: gloo for CPU tensors and,
  where CUDA is available, NCCL for CUDA tensors (``"cpu:gloo,cuda:nccl"``), each process on GPU
  ``LOCAL_RANK``. ``distributed_session`` also leaves the group at the end, on error too.
- The config's ``batch_size`` is the micro-batch of the *whole* run: each of the W processes takes an
  equal, contiguous share of its global sample indices (``DataOrder``, as torch's
  ``DistributedSampler`` gives each rank a fixed share), computes the mean loss of its share, and
  DDP averages the gradients: the mean over the whole micro-batch, what one process computes.
  Noise, timesteps and dropouts come from per-sample generators seeded by (seed, global sample
  index) (``randomness``), so they do not depend on W either: W processes end with the weights of
  one process up to float rounding (``tests/test_distributed.py``: 2 processes vs 1, to 1e-5).
  Model dropout layers draw from each process's global RNG and are the exception.
- Gradient accumulation: the backward passes of all but the last micro-batch stay local
  (``no_sync``); the last one all-reduces the accumulated sum.
- Only rank 0 writes: log, progress bar, loss plot, checkpoints, callbacks (the motion check),
  exported weights and each stage's files. The others wait at a barrier where they need those
  files (``finish_stage``). A NaN loss on any rank, or a failed checkpoint write on rank 0, is
  shared, so all processes skip or stop together.
- Resume: rank 0 loads the newest good checkpoint and broadcasts it, so every rank continues from
  the same state (no shared file system needed for that). Later stages read the pipeline folder
  that earlier stages wrote, so ``--out`` must be on a file system every machine sees.
- Latent caches: the first process of each machine encodes and writes the file, the others wait and
  read it (``local_main_first``), so no two processes write one file.

Taught in notebook 13 (notebooks/13_mixed_precision_and_scaling.ipynb).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from minifusion.checks import positive_int

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK")  # set by torchrun for every process it starts


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``world_size`` processes, this one is ``rank`` (``local_rank`` on its machine)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    enabled: bool = False  # a torch.distributed process group is initialised (DDP is used, even for 1 process)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        """The first process of its machine (writes machine-local caches)."""
        return self.local_rank == 0


def launched_by_torchrun() -> bool:
    """True when the torchrun variables are set (``torchrun ... -m minifusion train ...``)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def _env_int(name: str, minimum: int) -> int:
    value = os.environ[name]
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from None
    if n < minimum:
        raise ValueError(f"environment variable {name}={value!r} must be >= {minimum}")
    return n


def context() -> DistributedContext:
    """This process's ``DistributedContext`` (a single-process one when no process group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext()
    rank = dist.get_rank()
    local = int(os.environ.get("LOCAL_RANK", rank))
    return DistributedContext(world_size=dist.get_world_size(), rank=rank, local_rank=local, enabled=True)


def default_backend() -> str:
    """gloo for CPU tensors, plus NCCL for CUDA tensors where CUDA and NCCL are available."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init_distributed() -> DistributedContext:
    """Join torchrun's process group (once per process); in a plain process, do nothing.

    Under torchrun with CUDA, the process's current GPU becomes ``LOCAL_RANK``. A group this
    function creates is destroyed when the process exits, if nobody destroyed it before.
    """
    if dist.is_available() and dist.is_initialized():
        return context()
    if not launched_by_torchrun():
        return DistributedContext()
    if not dist.is_available():
        raise ValueError("launched by torchrun, but this torch build has no torch.distributed")
    world, rank, local = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if rank >= world:
        raise ValueError(f"environment variable RANK={rank} must be below WORLD_SIZE={world}")
    if torch.cuda.is_available() and local < torch.cuda.device_count():
        torch.cuda.set_device(local)
    dist.init_process_group(backend=default_backend())
    atexit.register(shutdown)
    return context()


def shutdown() -> None:
    """Leave the process group (a no-op if there is none).

    Garbage (a finished Trainer's DDP reducer, which holds the group) is freed first, while the
    group still exists, rather than during interpreter shutdown after it."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_session() -> Iterator[DistributedContext]:
    """``with distributed_session() as ctx:`` joins torchrun's group if launched by it, and leaves it at the end."""
    owned = not (dist.is_available() and dist.is_initialized()) and launched_by_torchrun()
    ctx = init_distributed()
    try:
        yield ctx
    finally:
        if owned:
            shutdown()


def check_split(batch_size: int, world_size: int, rank: int, ctx: DistributedContext) -> None:
    """ValueError unless ``batch_size`` splits evenly over the processes and the config's world_size/rank fit."""
    if (world_size, rank) not in ((1, 0), (ctx.world_size, ctx.rank)):
        raise ValueError(f"config world_size {world_size} and rank {rank} disagree with torch.distributed (world "
                         f"size {ctx.world_size}, rank {ctx.rank}); leave them at 1 and 0: the Trainer reads them "
                         "from torch.distributed (launch with torchrun for several processes)")
    if batch_size % ctx.world_size:
        raise ValueError(f"batch_size {batch_size} cannot be split over {ctx.world_size} processes: each takes an "
                         f"equal share of every micro-batch, so batch_size must be a multiple of {ctx.world_size}")


def process_device(device: torch.device, ctx: DistributedContext) -> torch.device:
    """``device`` with an index: plain ``cuda`` means this process's GPU (``LOCAL_RANK``) under torchrun."""
    if ctx.enabled and device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())  # set by init_distributed
    return device


# -- collectives (each a no-op without a process group) --------------------------------------------
def _collective_device() -> torch.device:
    # Small control tensors go through gloo on the CPU when the group has it, else through NCCL on the GPU.
    backend = str(dist.get_backend()).lower()
    return torch.device("cpu") if "gloo" in backend else torch.device("cuda", torch.cuda.current_device())


def barrier() -> None:
    """Wait until every process got here."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(torch.zeros(1, device=_collective_device()))


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (pickled; tensors keep the device they were on)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def per_rank_values(value: torch.Tensor) -> torch.Tensor:
    """(W,) float32 CPU tensor holding every rank's scalar ``value`` (NaN and inf kept in their slot)."""
    value = value.detach().float().reshape(1).cpu()
    if not (dist.is_available() and dist.is_initialized()):
        return value
    slots = torch.zeros(dist.get_world_size(), device=_collective_device())
    slots[dist.get_rank()] = value.to(slots.device)[0]
    dist.all_reduce(slots)  # SUM of one-hot rows: each slot gets its rank's value
    return slots.cpu()


@contextlib.contextmanager
def local_main_first() -> Iterator[None]:
    """The first process of each machine runs the block first; the others wait, then run it (and read its files)."""
    ctx = init_distributed()  # under torchrun, join the group now: this can run before the Trainer exists
    if not ctx.enabled:
        yield
        return
    if not ctx.is_local_main:
        barrier()
    yield
    if ctx.is_local_main:
        barrier()


def finish_stage(value):
    """Every process calls it when its part of a stage is done (rank 0 after writing the stage's files,
    the others right after training); all return ``value`` together, so the next stage finds the files."""
    barrier()
    return value


# -- DDP -------------------------------------------------------------------------------------------
class TaskLoss(nn.Module):
    """The model and a task's loss as one module: DDP's gradient hooks need the loss computed in its forward."""

    def __init__(self, model: nn.Module, loss_fn: Callable) -> None:
        super().__init__()
        self.model = model
        self.__dict__["loss_fn"] = loss_fn  # not a submodule: a task's own modules stay out of DDP

    def forward(self, batch, sample_indices: list[int], generators: list[torch.Generator]) -> torch.Tensor:
        return self.loss_fn(self.model, batch, sample_indices, generators)


def wrap_ddp(model: nn.Module, loss_fn: Callable, device: torch.device, *,
             find_unused_parameters: bool = False) -> nn.parallel.DistributedDataParallel:
    """``DistributedDataParallel(TaskLoss(model, loss_fn))``; call it as ``ddp(batch, indices, generators)``.

    ``find_unused_parameters``: needed when a trainable parameter can get no gradient in a
    micro-batch (every recipe's model uses all of its trainable parameters in every micro-batch);
    it costs a traversal of the autograd graph per micro-batch. A parameter left without a gradient
    is still skipped by the optimiser, as in one process, when no rank used it.
    """
    kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
    return nn.parallel.DistributedDataParallel(TaskLoss(model, loss_fn), find_unused_parameters=find_unused_parameters,
                                               **kwargs)


def explain_ddp_error(error: RuntimeError) -> RuntimeError:
    """DDP's error for a parameter without a gradient, with the config field that allows it."""
    if "find_unused_parameters" not in str(error):
        return error
    return RuntimeError("a trainable parameter got no gradient in a micro-batch, which DistributedDataParallel "
                        "allows only with TrainingConfig.find_unused_parameters=True (in a recipe file: "
                        '{"training": {"find_unused_parameters": true}}). DDP said: ' + str(error).split("\n")[0])


# -- launching -------------------------------------------------------------------------------------
def torchrun_command(args: Sequence[str], *, nproc_per_node: int = 2) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node=N -m minifusion ARGS`` (one machine)."""
    positive_int("nproc_per_node", nproc_per_node)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
            "-m", "minifusion", *map(str, args)]


def run_torchrun(args: Sequence[str], *, nproc_per_node: int = 2, threads: int = 1, timeout: float | None = None,
                 check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m minifusion ARGS`` on ``nproc_per_node`` local processes (each with ``threads`` torch threads).

    For notebooks and tests: returns the finished process (``stdout``, ``stderr`` as text); with
    ``check``, a non-zero exit raises a ``RuntimeError`` ending with the processes' last output.
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(int(threads))}
    proc = subprocess.run(torchrun_command(args, nproc_per_node=nproc_per_node), env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"torchrun with {nproc_per_node} processes exited with {proc.returncode}:\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc


__all__ = ["DistributedContext", "TaskLoss", "barrier", "broadcast_object", "check_split", "context",
           "default_backend", "distributed_session", "explain_ddp_error", "finish_stage", "init_distributed",
           "launched_by_torchrun", "local_main_first", "per_rank_values", "process_device", "run_torchrun", "shutdown",
           "torchrun_command", "wrap_ddp"]
