"""Multi-process training: ``torchrun`` with 2 CPU processes (gloo) ends with the weights of
one process with the same global batch and seed, to 1e-5; NaNs and failed checkpoint writes on one rank stop or
skip every rank alike; a checkpoint written by 2 processes resumes on 1.

The 2-process runs are real ``python -m torch.distributed.run --standalone --nproc_per_node=2`` launches (one
thread each). ``python tests/test_distributed.py SCENARIO OUT`` is the worker script of the Trainer-level run.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minifusion.cli import main
from minifusion.training import distributed, list_checkpoints, load_checkpoint, read_log

HERE = Path(__file__).resolve().parent
TOL = 1e-5
# global batch 8 = micro-batches of 4 (2 per process) x 2 accumulated (no_sync on the first)
TRAINING = {"steps": 4, "batch_size": 4, "grad_accum_steps": 2, "checkpoint_every": 2, "log_every": 1,
            "device": "cpu", "plot_loss": False}
TINY_AE = {"model": {"block_out_channels": [8, 16], "norm_groups": 4, "sample_size": 16}, "training": TRAINING,
           "data": {"num_clips": 6, "num_frames": 2, "frame_skip": 1, "size": 16}, "val_frames": 4,
           "scaling_frames": 8}
TINY_TE = {"text_encoder": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                            "intermediate_size": 32},
           "training": TRAINING, "data": {"num_captions": 64}, "eval_captions": 16}
TINY_T2I = {"unet": {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_groups": 4, "attention_head_dim": 8,
                     "cross_attention_dim": 16},
            "training": TRAINING, "data": {"num_clips": 8, "num_frames": 2, "frame_skip": 1, "size": 16},
            "sample_prompts": ["a red circle moves right"], "samples_per_prompt": 1, "num_inference_steps": 2}


def weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def train_cli(args: list[str], nproc: int) -> str:
    """``python -m minifusion train ARGS`` in this process (nproc 0) or under torchrun; returns the output."""
    if nproc == 0:
        assert main(["train", *args, "--no-progress"]) == 0
        return ""
    proc = distributed.run_torchrun(["train", *args, "--no-progress"], nproc_per_node=nproc, timeout=300)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The autoencoder and t2i stages trained by one process and by two."""
    root = tmp_path_factory.mktemp("ddp")
    for name, config in (("te.json", TINY_TE), ("ae.json", TINY_AE), ("t2i.json", TINY_T2I)):
        (root / name).write_text(json.dumps(config))
    one, two = root / "one", root / "two"
    train_cli(["text_encoder", "--out", str(one), "--config", str(root / "te.json")], nproc=0)
    output = {"text_encoder": train_cli(["text_encoder", "--out", str(two), "--config", str(root / "te.json")], 2)}
    train_cli(["autoencoder", "--out", str(one), "--config", str(root / "ae.json")], nproc=0)
    output["autoencoder"] = train_cli(["autoencoder", "--out", str(two), "--config", str(root / "ae.json")], 2)
    for part in ("autoencoder", "text_encoder"):  # the same start for both t2i runs
        shutil.copytree(one / part, root / "t2i_two" / part)
    train_cli(["t2i", "--out", str(one), "--config", str(root / "t2i.json")], nproc=0)
    output["t2i"] = train_cli(["t2i", "--out", str(root / "t2i_two"), "--config", str(root / "t2i.json")], 2)
    return root, output


def test_two_processes_end_with_the_weights_of_one(runs):
    root, output = runs
    one, two = root / "one", root / "two"
    assert "autoencoder: wrote" in output["autoencoder"]
    assert output["autoencoder"].count("autoencoder: wrote") == 1  # rank 0 alone prints
    assert max_difference(weights(one / "autoencoder"), weights(two / "autoencoder")) < TOL  # EMA, exported
    a = load_checkpoint(one / "runs/autoencoder/checkpoints/step_000004.pt")
    b = load_checkpoint(two / "runs/autoencoder/checkpoints/step_000004.pt")
    assert max_difference(a["model"], b["model"]) < TOL and b["world_size"] == 2 and a["world_size"] == 1
    # the logged loss is the mean over the whole global batch, as one process logs it
    log_one, log_two = read_log(one / "runs/autoencoder/log.csv"), read_log(two / "runs/autoencoder/log.csv")
    assert [r["step"] for r in log_two] == [1, 2, 3, 4]  # one writer, no duplicate rows
    assert all(abs(x["loss"] - y["loss"]) < TOL for x, y in zip(log_one, log_two))


def test_t2i_two_processes_match_one(runs):
    """Caption dropout through the frozen text encoder and a latent cache built by rank 0."""
    root, output = runs
    assert max_difference(weights(root / "one" / "unet"), weights(root / "t2i_two" / "unet")) < TOL
    # the text encoder stage: a dict of modules (encoder + token head), per-sample corruption on every rank
    assert max_difference(weights(root / "one" / "text_encoder"), weights(root / "two" / "text_encoder")) < TOL
    assert len(list((root / "t2i_two" / "runs" / "cache").glob("latents_*.pt"))) == 1
    assert (root / "t2i_two" / "runs" / "t2i" / "samples.png").is_file()


def test_a_two_process_checkpoint_resumes_on_one_process(runs, tmp_path):
    root, _ = runs
    for name in ("one", "two"):
        shutil.copytree(root / name / "runs" / "autoencoder", tmp_path / name / "runs" / "autoencoder")
        assert main(["train", "autoencoder", "--out", str(tmp_path / name), "--resume", "--steps", "6",
                     "--no-progress"]) == 0
    assert max_difference(weights(tmp_path / "one" / "autoencoder"), weights(tmp_path / "two" / "autoencoder")) < TOL


# -- the Trainer under torchrun: NaN on one rank, a failed write on rank 0 --------------------------------
def scenario(out: Path) -> None:
    """Run by each torchrun process: writes what it saw to OUT/rank{r}.json."""
    from test_trainer import ToyVideos, make_config, make_model, task

    import minifusion.training.checkpointing as checkpointing
    from minifusion.training import Trainer

    torch.set_num_threads(1)
    ctx = distributed.init_distributed()
    seen: dict = {"world_size": ctx.world_size}
    progress = out / f"rank{ctx.rank}.progress"

    def reached(phase: str) -> None:  # where each rank got to, for the failure message
        with progress.open("a") as f:
            f.write(phase + "\n")

    cfg = make_config(steps=6, batch_size=4, grad_accum_steps=2, checkpoint_every=2, ema_decay=0.9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(make_model(), NaNAtSamples(task(), {13}), ToyVideos(16), cfg, out / "skip")
        trainer.train()
    seen["warnings"] = [str(w.message) for w in caught]
    if ctx.is_main:
        torch.save(trainer.model.state_dict(), out / "skip_weights.pt")
    del trainer
    reached("skip")
    try:
        Trainer(make_model(), NaNAtSamples(task(), range(8, 1000)), ToyVideos(16), cfg.replace(max_nan_skips=2),
                out / "stop").train()
    except FloatingPointError as e:
        seen["stop"] = str(e)
    reached("stop")

    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    Trainer(make_model(), task(), ToyVideos(16), cfg.replace(steps=2), out / "full").train()
    checkpointing.atomic_write_bytes = no_space  # rank 0 writes; every rank must stop
    try:
        Trainer(make_model(), task(), ToyVideos(16), cfg.replace(steps=4), out / "full").train(resume=True)
    except OSError as e:
        seen["write"] = f"{type(e).__name__}: {e}"
    reached("write")
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(seen))
    # Free the Trainers (and their DDP reducers) and meet before leaving the group: a rank that tears
    # its gloo group down while the other still talks to it, or frees a reducer after, can abort.
    gc.collect()
    distributed.barrier()
    distributed.shutdown()
    reached("shutdown")


class NaNAtSamples:
    """A task whose loss is NaN for every micro-batch holding one of the global sample ``indices``."""

    def __init__(self, inner, indices) -> None:
        self.inner, self.indices = inner, set(indices)

    def loss(self, model, batch, indices, generators):
        loss = self.inner.loss(model, batch, indices, generators)
        return loss * float("nan") if self.indices.intersection(indices) else loss


def test_nan_on_one_rank_and_a_failed_write_on_rank_0_stop_every_rank(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
           "scenario", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    reached = {r: (tmp_path / f"rank{r}.progress").read_text().split() if (tmp_path / f"rank{r}.progress").is_file()
               else [] for r in (0, 1)}
    assert proc.returncode == 0, f"phases each rank finished: {reached}\n" + (proc.stdout + proc.stderr)[-3000:]
    assert reached == {0: ["skip", "stop", "write", "shutdown"], 1: ["skip", "stop", "write", "shutdown"]}
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == 2
    # sample 13 is in rank 1's first micro-batch of step 2: both ranks skip step 2, rank 0 says where
    assert any(w.startswith("step 2: loss is nan on rank 1 (micro-batch 0, samples 12..13); skipped")
               for w in rank0["warnings"]), rank0["warnings"]
    assert not any("loss is nan" in w for w in rank1["warnings"])  # rank 0 alone warns
    assert [r["skipped"] for r in read_log(tmp_path / "skip" / "log.csv")] == [0, 1, 0, 0, 0, 0]
    # the same NaN in one process: the same skipped step and the same weights
    from test_trainer import ToyVideos, make_config, make_model, task

    from minifusion.training import Trainer

    cfg = make_config(steps=6, batch_size=4, grad_accum_steps=2, checkpoint_every=2, ema_decay=0.9)
    with pytest.warns(RuntimeWarning, match=r"step 2: loss is nan \(micro-batch 1, samples 12\.\.15\)"):
        one = Trainer(make_model(), NaNAtSamples(task(), {13}), ToyVideos(16), cfg, tmp_path / "one").train()
    assert one.step == 6
    two = torch.load(tmp_path / "skip_weights.pt", weights_only=True)
    one_weights = torch.load(tmp_path / "one" / "checkpoints" / "step_000006.pt", weights_only=True)["model"]
    assert max_difference(one_weights, two) < TOL
    # repeated NaNs: every rank stops with the same message, no NaN in any checkpoint
    for seen in (rank0, rank1):
        assert seen["stop"].startswith("non-finite loss or gradients in 2 consecutive steps (2..3)"), seen
    for _, path in list_checkpoints(tmp_path / "stop" / "checkpoints"):
        assert all(torch.isfinite(v).all() for v in load_checkpoint(path)["model"].values())
    # a failed checkpoint write on rank 0 stops rank 1 too, saying why; the older checkpoint is intact
    assert "No space left on device" in rank0["write"] and "step_000004.pt" in rank0["write"]
    assert rank1["write"].startswith("CheckpointWriteError: rank 0 could not write its checkpoint: could not write")
    assert [p.name for _, p in list_checkpoints(tmp_path / "full" / "checkpoints")] == ["step_000002.pt"]
    assert load_checkpoint(tmp_path / "full" / "checkpoints" / "step_000002.pt")["step"] == 2


# -- pieces ----------------------------------------------------------------------------------------------
def test_batch_must_split_evenly_over_the_processes():
    two = distributed.DistributedContext(world_size=2, rank=1, local_rank=1, enabled=True)
    distributed.check_split(4, 1, 0, two)
    with pytest.raises(ValueError, match="batch_size 3 cannot be split over 2 processes: .* a multiple of 2"):
        distributed.check_split(3, 1, 0, two)
    with pytest.raises(ValueError, match=r"world_size 4 and rank 0 disagree with torch.distributed \(world size 2"):
        distributed.check_split(4, 4, 0, two)


def test_a_plain_process_is_rank_0_of_1(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched_by_torchrun()
    ctx = distributed.init_distributed()
    assert (ctx.world_size, ctx.rank, ctx.enabled, ctx.is_main) == (1, 0, False, True)
    distributed.barrier()  # no-ops without a process group
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.per_rank_values(torch.tensor(2.5)).tolist() == [2.5]
    with distributed.local_main_first():
        pass
    monkeypatch.setenv("WORLD_SIZE", "two")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match="environment variable WORLD_SIZE='two' is not an integer"):
        distributed.init_distributed()


def test_torchrun_command():
    cmd = distributed.torchrun_command(["train", "t2i", "--out", "runs/x"], nproc_per_node=4)
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m", "minifusion",
                       "train", "t2i", "--out", "runs/x"]
    with pytest.raises(ValueError, match="nproc_per_node 0 is not allowed"):
        distributed.torchrun_command([], nproc_per_node=0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["scenario"]:
        scenario(Path(sys.argv[2]))
