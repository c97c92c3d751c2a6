"""Faults during ``python -m minifusion train``: no crash, kill or failed write loses work.

- a training process killed with SIGKILL mid-run (and one killed inside a checkpoint write), restarted with
  ``--resume``, ends with exactly the weights of an uninterrupted run, and no half-written checkpoint counts;
- a truncated checkpoint gives an error naming the file, and ``--resume`` falls back to the previous one;
- a NaN loss is reported with its step and skipped; repeated NaNs stop the run without writing NaN weights;
- a failed checkpoint write (no space, no permission: simulated, since tests run as root) stops the run,
  says why, and leaves the last good checkpoint intact; ``--resume`` then continues exactly.

The stage is the autoencoder at toy size (16x16 frames, widths 8/16): a run of 12 steps takes about a second.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import minifusion.training.checkpointing as checkpointing
from minifusion.cli import main
from minifusion.training import list_checkpoints, load_checkpoint, read_log
from minifusion.training.recipes.autoencoder import AutoencoderTask

TINY_AE = {"model": {"block_out_channels": [8, 16], "norm_groups": 4, "sample_size": 16},
           "training": {"steps": 12, "batch_size": 4, "checkpoint_every": 4, "log_every": 1, "device": "cpu",
                        "lr": 1e-3, "warmup_steps": 2, "plot_loss": False},
           "data": {"num_clips": 6, "num_frames": 2, "frame_skip": 1, "size": 16},
           "val_frames": 4, "scaling_frames": 8}


def write_config(folder: Path, **training) -> Path:
    path = folder / f"ae_{len(list(folder.glob('ae_*.json')))}.json"
    path.write_text(json.dumps({**TINY_AE, "training": {**TINY_AE["training"], **training}}))
    return path


def train(out: Path, *args: str) -> int:
    return main(["train", "autoencoder", "--out", str(out), "--no-progress", *map(str, args)])


def final_weights(out: Path) -> dict:
    """The run's last trained weights (the checkpoint's) and its exported EMA weights."""
    ckpt = list_checkpoints(out / "runs" / "autoencoder" / "checkpoints")[-1][1]
    return {**load_checkpoint(ckpt)["model"], **{f"ema.{k}": v for k, v in load_file(
        out / "runs" / "autoencoder" / "model" / "model.safetensors").items()}}


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # exactly, not approximately

    def rows(out: Path) -> list[tuple]:  # the timing columns differ between runs
        columns = ("step", "loss", "lr", "grad_norm", "skipped")
        return [tuple(r[c] for c in columns) for r in read_log(out / "runs" / "autoencoder" / "log.csv")]

    assert rows(a) == rows(b)  # the log holds every step once, with the same numbers


def checkpoint_files(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "runs" / "autoencoder" / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """The uninterrupted 12-step run every interrupted one must match."""
    root = tmp_path_factory.mktemp("plain")
    assert train(root / "out", "--config", write_config(root)) == 0
    return root / "out"


# -- SIGKILL -------------------------------------------------------------------------------------------
CHILD = """
import os, signal, sys, time
from minifusion.training import trainer

step = trainer.Trainer._train_step
def slow_step(self, *args):  # slow enough for the parent to kill it between checkpoints
    time.sleep(0.05)
    return step(self, *args)

trainer.Trainer._train_step = slow_step
kill_in_write = sys.argv[1]
if kill_in_write:  # SIGKILL inside the checkpoint write: half the bytes on disk, not yet renamed
    fsync = os.fsync
    def dying_fsync(fd):
        if kill_in_write in os.readlink(f"/proc/self/fd/{fd}"):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        fsync(fd)
    os.fsync = dying_fsync
from minifusion.cli import main
main(sys.argv[2:])
"""


def start_child(out: Path, config: Path, kill_in_write: str = "") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, kill_in_write, "train", "autoencoder", "--out", str(out),
                             "--config", str(config), "--no-progress"], env=env, stderr=subprocess.PIPE)


def test_sigkill_mid_run_then_resume_ends_like_an_uninterrupted_run(plain, tmp_path):
    out = tmp_path / "out"
    child = start_child(out, write_config(tmp_path))
    second = out / "runs" / "autoencoder" / "checkpoints" / "step_000008.pt"
    deadline = time.monotonic() + 120
    while not second.is_file() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert child.poll() is None, f"the run ended before it could be killed: {child.stderr.read().decode()[-2000:]}"
    child.send_signal(signal.SIGKILL)  # somewhere in steps 9..12
    assert child.wait(timeout=60) == -signal.SIGKILL
    names = checkpoint_files(out)
    assert "step_000004.pt" in names and "step_000012.pt" not in names and not (out / "autoencoder").exists()
    for name in names:  # whatever the moment of the kill, no file named as a checkpoint is half-written
        if name.startswith("step_"):
            load_checkpoint(out / "runs" / "autoencoder" / "checkpoints" / name)
    assert train(out, "--resume") == 0
    assert_same_run(plain, out)
    assert checkpoint_files(out) == ["step_000004.pt", "step_000008.pt", "step_000012.pt"]


def test_sigkill_inside_a_checkpoint_write_leaves_no_checkpoint_behind(plain, tmp_path):
    out = tmp_path / "out"
    child = start_child(out, write_config(tmp_path), kill_in_write=".step_000008.pt.")
    assert child.wait(timeout=120) == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    names = checkpoint_files(out)
    assert len(names) == 2 and names[0].startswith(".step_000008.pt.") and names[1] == "step_000004.pt"
    assert [s for s, _ in list_checkpoints(out / "runs" / "autoencoder" / "checkpoints")] == [4]  # never counts
    with pytest.warns(UserWarning, match=r"removed '.*\.step_000008\.pt\..*\.tmp', an unfinished checkpoint write"):
        assert train(out, "--resume") == 0
    assert_same_run(plain, out)
    assert checkpoint_files(out) == ["step_000004.pt", "step_000008.pt", "step_000012.pt"]  # the temp file is gone


# -- a corrupt checkpoint ----------------------------------------------------------------------------------
def test_truncated_checkpoint_is_named_and_resume_falls_back_to_the_previous_one(plain, tmp_path):
    out = tmp_path / "out"
    assert train(out, "--config", write_config(tmp_path), "--steps", "8") == 0
    newest = out / "runs" / "autoencoder" / "checkpoints" / "step_000008.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"checkpoint '.*step_000008\.pt' is corrupt or unreadable"):
        load_checkpoint(newest)
    with pytest.warns(UserWarning) as caught:
        assert train(out, "--resume", "--steps", "12") == 0
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"skipping checkpoint '{newest}': checkpoint '{newest}' is corrupt") for m in messages)
    assert any(m.startswith(f"using the previous good checkpoint '{newest.with_name('step_000004.pt')}' (step 4)")
               for m in messages), messages
    assert_same_run(plain, out)  # steps 5..8 were trained again, exactly as before


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    with pytest.warns(UserWarning, match=r"holds no usable checkpoint to resume from: training starts from step 0"):
        assert train(tmp_path / "empty", "--resume", "--config", write_config(tmp_path), "--steps", "1") == 0


# -- NaN -------------------------------------------------------------------------------------------------
def nan_loss(monkeypatch, steps) -> None:
    """AutoencoderTask's loss becomes NaN at the (1-based) optimiser steps ``steps`` (4 samples per step)."""
    loss = AutoencoderTask.loss

    def patched(self, model, batch, indices, generators):
        value = loss(self, model, batch, indices, generators)
        return value * float("nan") if indices[0] // 4 + 1 in steps else value

    monkeypatch.setattr(AutoencoderTask, "loss", patched)


def test_a_nan_loss_is_reported_with_its_step_and_skipped(monkeypatch, tmp_path):
    nan_loss(monkeypatch, {3})
    with pytest.warns(RuntimeWarning, match=r"^step 3: loss is nan \(micro-batch 0, samples 8\.\.11\); skipped this "
                                            r"step without updating the weights \(1 of at most 4 in a row\)"):
        assert train(tmp_path / "out", "--config", write_config(tmp_path), "--steps", "4") == 0
    log = read_log(tmp_path / "out" / "runs" / "autoencoder" / "log.csv")
    assert [r["skipped"] for r in log] == [0, 0, 1, 0]
    a, b = (load_checkpoint(tmp_path / "out" / "runs" / "autoencoder" / "checkpoints" / "step_000004.pt")["model"],
            load_file(tmp_path / "out" / "autoencoder" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in [*a.values(), *b.values()])


def test_repeated_nans_stop_the_run_with_a_clear_message_and_no_nan_weights(monkeypatch, tmp_path, capsys):
    nan_loss(monkeypatch, set(range(3, 13)))
    config = write_config(tmp_path, max_nan_skips=3, checkpoint_every=2)
    with pytest.warns(RuntimeWarning):
        assert train(tmp_path / "out", "--config", config) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: non-finite loss or gradients in 3 consecutive steps (3..5), the limit "
                          "max_nan_skips=3; stopping before NaN reaches the weights, which are unchanged since step 2 "
                          "(last good checkpoint: '"), err
    assert not (tmp_path / "out" / "autoencoder").exists()  # no weights exported
    assert not (tmp_path / "out" / "runs" / "autoencoder" / "model").exists()
    for _, path in list_checkpoints(tmp_path / "out" / "runs" / "autoencoder" / "checkpoints"):
        assert all(torch.isfinite(v).all() for v in load_checkpoint(path)["model"].values())


# -- a failed write ----------------------------------------------------------------------------------------
def fail_writes_of(monkeypatch, name: str, how: str) -> None:
    """Writing checkpoint ``name`` fails like a full disk (``fsync``) or a read-only folder (``os.replace``)."""
    real = checkpointing.atomic_write_bytes

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def no_permission(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dst))

    def failing(path, data):
        if Path(path).name != name:
            return real(path, data)
        with monkeypatch.context() as m:
            if how == "no space":
                m.setattr(os, "fsync", no_space)  # the bytes do not reach the disk
            else:
                m.setattr(os, "replace", no_permission)  # the rename into the folder is refused
            return real(path, data)

    monkeypatch.setattr(checkpointing, "atomic_write_bytes", failing)


@pytest.mark.parametrize("how, reason", [("no space", "[Errno 28] No space left on device"),
                                         ("no permission", "[Errno 13] Permission denied")])
def test_a_failed_checkpoint_write_keeps_the_last_good_one_and_says_why(monkeypatch, tmp_path, capsys, how, reason):
    out, config = tmp_path / "out", write_config(tmp_path, steps=6, checkpoint_every=2)
    fail_writes_of(monkeypatch, "step_000004.pt", how)
    assert train(out, "--config", config) == 1
    err = capsys.readouterr().err
    ckpts = out / "runs" / "autoencoder" / "checkpoints"
    assert err.startswith(f"error: could not write checkpoint '{ckpts / 'step_000004.pt'}' ({reason}"), err
    assert "the previous checkpoint 'step_000002.pt' is intact" in err and "--resume" in err
    assert checkpoint_files(out) == ["step_000002.pt"]  # neither a temporary file nor a half-written checkpoint
    assert load_checkpoint(ckpts / "step_000002.pt")["step"] == 2
    monkeypatch.undo()  # space freed: --resume continues exactly
    assert train(out, "--resume") == 0
    assert train(tmp_path / "plain", "--config", config) == 0
    assert_same_run(tmp_path / "plain", out)
