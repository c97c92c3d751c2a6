"""Checkpoint files: atomic write, keep-last-K, newest good one wins, failed writes leave old ones intact."""

from __future__ import annotations

import os

import pytest
import torch

from minifusion.training import (
    CheckpointWriteError,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
)
from minifusion.training.checkpointing import CHECKPOINT_FORMAT, CHECKPOINT_VERSION


def state(step: int) -> dict:
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
            "model": {"w": torch.full((3,), float(step))}, "optimizer": {}, "rng": {}, "config": {}}


def test_save_list_load_and_keep_last(tmp_path):
    for step in (5, 10, 15, 20):
        save_checkpoint(state(step), tmp_path, step, keep=2)
    assert [(s, p.name) for s, p in list_checkpoints(tmp_path)] == [(15, "step_000015.pt"), (20, "step_000020.pt")]
    path, loaded = load_latest_checkpoint(tmp_path)
    assert path.name == "step_000020.pt" and torch.equal(loaded["model"]["w"], torch.full((3,), 20.0))
    assert load_latest_checkpoint(tmp_path / "missing") is None
    assert sorted(os.listdir(tmp_path)) == ["step_000015.pt", "step_000020.pt"]  # no temp files


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_newest_is_skipped_with_warning(tmp_path, damage):
    save_checkpoint(state(1), tmp_path, 1)
    newest = save_checkpoint(state(2), tmp_path, 2)
    data = newest.read_bytes()
    newest.write_bytes({"truncate": data[: len(data) // 3], "garbage": b"not a checkpoint", "empty": b""}[damage])
    with pytest.warns(UserWarning, match="step_000002.pt"):
        path, loaded = load_latest_checkpoint(tmp_path)
    assert path.name == "step_000001.pt" and loaded["step"] == 1


def test_not_a_trainer_checkpoint(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "step_000003.pt")
    with pytest.raises(ValueError, match="not a minifusion trainer checkpoint"):
        load_checkpoint(tmp_path / "step_000003.pt")
    incomplete = state(4)
    del incomplete["optimizer"]
    torch.save(incomplete, tmp_path / "step_000004.pt")
    with pytest.raises(ValueError, match=r"incomplete: missing \['optimizer'\]"):
        load_checkpoint(tmp_path / "step_000004.pt")


def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    save_checkpoint(state(1), tmp_path, 1)
    before = (tmp_path / "step_000001.pt").read_bytes()

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(CheckpointWriteError, match=r"No space left on device.*'step_000001.pt' is intact") as info:
        save_checkpoint(state(2), tmp_path, 2, keep=1)
    assert info.value.errno == 28
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["step_000001.pt"]  # neither a temp file nor a half-written one
    assert (tmp_path / "step_000001.pt").read_bytes() == before
    assert load_latest_checkpoint(tmp_path)[1]["step"] == 1
