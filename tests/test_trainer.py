"""Trainer: exact resume, accumulation == big batch, NaN guards, frozen params, warm-up, files."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from minifusion.diffusion import DDPMScheduler
from minifusion.training import (
    DenoisingTask,
    TinyDenoiser,
    Trainer,
    TrainingConfig,
    checkpointing,
    list_checkpoints,
    load_checkpoint,
    read_log,
    resolve_device,
    resolve_precision,
    warmup_lr,
)


class ToyVideos(torch.utils.data.Dataset):
    """Item i: a fixed random (3, 2, 4, 4) clip and a caption."""

    def __init__(self, n: int = 10) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(1000 + i)
        return {"video": torch.randn(3, 2, 4, 4, generator=g), "caption": f"clip {i}"}


def make_model(init_seed: int = 0, **kw) -> TinyDenoiser:
    torch.manual_seed(init_seed)
    return TinyDenoiser({"in_channels": 3, "hidden_channels": 8, **kw})


def make_config(**kw) -> TrainingConfig:
    defaults = dict(steps=6, batch_size=2, lr=1e-2, warmup_steps=2, ema_decay=0.9, checkpoint_every=3,
                    log_every=1, seed=3, progress=False, plot_loss=False, device="cpu")
    return TrainingConfig(**{**defaults, **kw})


def task():
    return DenoisingTask(DDPMScheduler(num_train_timesteps=100))


def trainable_state(trainer: Trainer) -> dict:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def stream_rows(out_dir) -> list[tuple]:
    # Timing columns differ between runs; everything else must match exactly.
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"], r["skipped"]) for r in read_log(out_dir / "log.csv")]


class CrashAt:
    """Wraps a task; raises at the first micro-batch of optimiser step ``step`` (0-based)."""

    def __init__(self, inner, step: int, global_batch: int) -> None:
        self.inner, self.step, self.global_batch = inner, step, global_batch

    def loss(self, model, batch, indices, generators):
        if indices[0] // self.global_batch == self.step:
            raise KeyboardInterrupt("simulated crash")
        return self.inner.loss(model, batch, indices, generators)


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_reproduces_plain_run(tmp_path, accum):
    cfg = make_config(grad_accum_steps=accum)
    plain = Trainer(make_model(dropout=0.2), task(), ToyVideos(), cfg, tmp_path / "plain")
    plain.train()

    # Crash during step 5 (after checkpoint 3 and after log rows 4 were written), then resume.
    crashed = Trainer(make_model(dropout=0.2), CrashAt(task(), 4, cfg.global_batch_size), ToyVideos(), cfg,
                      tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        crashed.train()
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed" / "checkpoints")] == [3]
    assert stream_rows(tmp_path / "resumed")[-1][0] == 4
    resumed = Trainer(make_model(init_seed=99, dropout=0.2), task(), ToyVideos(), cfg, tmp_path / "resumed")
    result = resumed.train(resume=True)

    assert result.step == 6
    a, b = plain.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(plain.ema.shadow[k], resumed.ema.shadow[k]) for k in plain.ema.shadow)
    assert stream_rows(tmp_path / "plain") == stream_rows(tmp_path / "resumed")  # no duplicate rows
    assert [r[0] for r in stream_rows(tmp_path / "resumed")] == [1, 2, 3, 4, 5, 6]


def test_max_steps_then_resume_matches(tmp_path):
    cfg = make_config(checkpoint_every=0)
    plain = Trainer(make_model(), task(), ToyVideos(), cfg, tmp_path / "plain")
    plain.train()
    first = Trainer(make_model(), task(), ToyVideos(), cfg, tmp_path / "chunks")
    assert first.train(max_steps=2).model_dir is None  # stopped early: checkpoint, no export
    second = Trainer(make_model(init_seed=5), task(), ToyVideos(), cfg, tmp_path / "chunks")
    second.train(resume=True)
    a, b = plain.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_accumulation_equals_big_batch(tmp_path):
    accumulated = Trainer(make_model(), task(), ToyVideos(), make_config(batch_size=2, grad_accum_steps=2),
                          tmp_path / "a")
    big = Trainer(make_model(), task(), ToyVideos(), make_config(batch_size=4, grad_accum_steps=1), tmp_path / "b")
    accumulated.train()
    big.train()
    a, b = accumulated.model.state_dict(), big.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    la, lb = stream_rows(tmp_path / "a"), stream_rows(tmp_path / "b")
    assert all(math.isclose(x[1], y[1], rel_tol=1e-6) for x, y in zip(la, lb))


class NaNAt:
    """Returns a NaN loss at optimiser steps in ``steps`` (0-based); records the weights it is called with."""

    def __init__(self, inner, steps, global_batch: int) -> None:
        self.inner, self.steps, self.global_batch = inner, set(steps), global_batch
        self.seen = {}

    def loss(self, model, batch, indices, generators):
        step = indices[0] // self.global_batch
        self.seen.setdefault(step, {k: v.clone() for k, v in model.state_dict().items()})
        loss = self.inner.loss(model, batch, indices, generators)
        return loss * float("nan") if step in self.steps else loss


def test_nan_loss_is_reported_and_skipped(tmp_path):
    cfg = make_config(log_every=6)
    nan_task = NaNAt(task(), {2}, cfg.global_batch_size)
    trainer = Trainer(make_model(), nan_task, ToyVideos(), cfg, tmp_path)
    with pytest.warns(RuntimeWarning, match=r"step 3: loss is nan"):
        trainer.train()
    before, after = nan_task.seen[2], nan_task.seen[3]
    assert all(torch.equal(before[k], after[k]) for k in before)  # step 3 changed nothing
    assert not all(torch.equal(nan_task.seen[1][k], before[k]) for k in before)  # other steps did train
    (row,) = read_log(tmp_path / "log.csv")
    assert row["skipped"] == 1 and math.isfinite(row["loss"])


def test_repeated_nan_stops_with_clear_error(tmp_path):
    cfg = make_config(steps=10, checkpoint_every=2, max_nan_skips=3)
    trainer = Trainer(make_model(), NaNAt(task(), range(3, 10), cfg.global_batch_size), ToyVideos(), cfg, tmp_path)
    with pytest.warns(RuntimeWarning), pytest.raises(FloatingPointError, match=r"3 consecutive steps \(4\.\.6\)"):
        trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    for _, path in list_checkpoints(tmp_path / "checkpoints"):
        state = load_checkpoint(path)
        assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "model").exists()


def test_corrupt_newest_checkpoint_falls_back(tmp_path):
    cfg = make_config(steps=4, checkpoint_every=2)
    Trainer(make_model(), task(), ToyVideos(), cfg, tmp_path).train()
    good = load_checkpoint(tmp_path / "checkpoints" / "step_000002.pt")
    newest = tmp_path / "checkpoints" / "step_000004.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    trainer = Trainer(make_model(init_seed=7), task(), ToyVideos(), cfg, tmp_path)
    with pytest.warns(UserWarning, match="step_000004.pt"):
        path = trainer.resume()
    assert path.name == "step_000002.pt" and trainer.step == 2
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in good["model"].items())


def test_failed_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    cfg = make_config(steps=4, checkpoint_every=2)
    Trainer(make_model(), task(), ToyVideos(), cfg, tmp_path).train(max_steps=2)
    ckpt_dir = tmp_path / "checkpoints"
    before = (ckpt_dir / "step_000002.pt").read_bytes()
    real_write = checkpointing.atomic_write_bytes

    def full_disk_write(path, data):
        def no_space(fd):
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as m:
            m.setattr(os, "fsync", no_space)
            real_write(path, data)

    monkeypatch.setattr(checkpointing, "atomic_write_bytes", full_disk_write)
    trainer = Trainer(make_model(), task(), ToyVideos(), cfg, tmp_path)
    with pytest.raises(OSError, match=r"No space left on device.*step_000002.pt' is intact"):
        trainer.train(resume=True)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["step_000002.pt"]  # no temp file, no half file
    assert (ckpt_dir / "step_000002.pt").read_bytes() == before
    assert load_checkpoint(ckpt_dir / "step_000002.pt")["step"] == 2


def test_only_trainable_parameters_are_optimised(tmp_path):
    model = make_model().freeze_input()
    frozen = {k: v.clone() for k, v in model.proj_in.state_dict().items()}
    others = {k: v.clone() for k, v in model.proj_out.state_dict().items()}
    trainer = Trainer(model, task(), ToyVideos(), make_config(steps=3, weight_decay=0.1), tmp_path)
    optimised = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model.parameters() if p.requires_grad}
    assert all(id(p) not in optimised for p in model.proj_in.parameters())
    assert not any(k.startswith("proj_in") for k in trainer.ema.shadow)
    trainer.train()
    assert all(torch.equal(v, model.proj_in.state_dict()[k]) for k, v in frozen.items())
    assert not torch.equal(others["weight"], model.proj_out.weight)


def test_warmup_schedule_values(tmp_path):
    assert [warmup_lr(s, lr=1.0, warmup_steps=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_lr(0, lr=0.3, warmup_steps=0) == 0.3
    Trainer(make_model(), task(), ToyVideos(), make_config(steps=4, lr=0.02, warmup_steps=3), tmp_path).train()
    assert [r["lr"] for r in read_log(tmp_path / "log.csv")] == pytest.approx([0.02 / 3, 0.04 / 3, 0.02, 0.02])


def test_run_folder_files_and_export(tmp_path):
    cfg = make_config(steps=4, checkpoint_every=2, keep_checkpoints=1, plot_loss=True)
    trainer = Trainer(make_model(), task(), ToyVideos(), cfg, tmp_path)
    result = trainer.train()
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert [p.name for _, p in list_checkpoints(tmp_path / "checkpoints")] == ["step_000004.pt"]
    assert TrainingConfig.from_dict(json.loads((tmp_path / "training_config.json").read_text())) == cfg
    exported = TinyDenoiser.from_pretrained(result.model_dir)
    for name, p in exported.named_parameters():
        assert torch.equal(p, trainer.ema.shadow[name])  # EMA weights by default
    with pytest.raises(ValueError, match="resume=True"):
        Trainer(make_model(), task(), ToyVideos(), cfg, tmp_path).train()


def test_dict_of_modules(tmp_path):
    class PairTask:
        def loss(self, model, batch, indices, generators):
            return task().loss(model["denoiser"], batch, indices, generators)

    trainer = Trainer({"denoiser": make_model()}, PairTask(), ToyVideos(), make_config(steps=2), tmp_path)
    result = trainer.train()
    assert (result.model_dir / "denoiser" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "field, value, message",
    [("steps", 0, "steps 0"), ("lr", -1.0, "lr -1.0"), ("batch_size", 0, "batch_size 0"),
     ("mixed_precision", "fp8", "mixed_precision 'fp8' is not one of 'no', 'bf16', 'fp16', 'auto'"),
     ("grad_accum_steps", 1.5, "grad_accum_steps 1.5"), ("ema_decay", 1.0, "ema_decay 1.0"),
     ("rank", 1, "rank 1")],
)
def test_bad_config_values(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        TrainingConfig(**{field: value})


def test_task_must_return_scalar(tmp_path):
    bad = lambda model, batch, indices, gens: torch.zeros(len(indices))  # noqa: E731
    with pytest.raises(ValueError, match=r"scalar tensor.*\(2,\)"):
        Trainer(make_model(), bad, ToyVideos(), make_config(steps=1), tmp_path).train()


def test_precision_choice(monkeypatch):
    assert resolve_precision("auto", "cpu").dtype is None
    assert resolve_precision("no", "cuda").dtype is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    p = resolve_precision("auto", "cuda")
    assert (p.dtype, p.use_scaler) == (torch.bfloat16, False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    p = resolve_precision("auto", "cuda")
    assert (p.dtype, p.use_scaler) == (torch.float16, True)
    with pytest.raises(ValueError, match="'bf16' is not supported by this GPU"):
        resolve_precision("bf16", "cuda")
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device, got 'cpu'"):
        resolve_precision("fp16", "cpu")
    with pytest.warns(UserWarning, match="slower than fp32"):
        assert resolve_precision("bf16", "cpu").dtype is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


class KillAt:
    """Kills its own process with SIGKILL at the first micro-batch of step ``step`` (0-based)."""

    def __init__(self, inner, step: int, global_batch: int) -> None:
        self.inner, self.step, self.global_batch = inner, step, global_batch

    def loss(self, model, batch, indices, generators):
        if indices[0] // self.global_batch == self.step:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.loss(model, batch, indices, generators)


def test_sigkill_then_resume_matches_plain_run(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    child = (
        "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[1]);"
        "from test_trainer import *;"
        "cfg = make_config(checkpoint_every=2);"
        "Trainer(make_model(dropout=0.2), KillAt(task(), 4, cfg.global_batch_size), ToyVideos(), cfg,"
        " sys.argv[2]).train()"
    )
    proc = subprocess.run([sys.executable, "-c", child, str(Path(__file__).parent), str(tmp_path / "killed")],
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    cfg = make_config(checkpoint_every=2)
    resumed = Trainer(make_model(dropout=0.2), task(), ToyVideos(), cfg, tmp_path / "killed")
    resumed.train(resume=True)
    plain = Trainer(make_model(dropout=0.2), task(), ToyVideos(), cfg, tmp_path / "plain")
    plain.train()
    a, b = plain.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert stream_rows(tmp_path / "plain") == stream_rows(tmp_path / "killed")


def test_smoothing_is_centred():
    from minifusion.training import smooth

    assert smooth([2.0] * 5) == pytest.approx([2.0] * 5)
    spike = smooth([1.0, 1.0, 100.0, 1.0, 1.0], window=3)
    assert spike[1] == pytest.approx(spike[3]) and spike[2] == max(spike)  # no lag


def test_dataloader_workers_give_the_same_run(tmp_path):
    in_process = Trainer(make_model(), task(), ToyVideos(), make_config(steps=3), tmp_path / "a")
    workers = Trainer(make_model(), task(), ToyVideos(), make_config(steps=3, num_workers=1), tmp_path / "b")
    in_process.train()
    workers.train()
    a, b = in_process.model.state_dict(), workers.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_other_stream_settings_warns(tmp_path):
    Trainer(make_model(), task(), ToyVideos(), make_config(steps=4), tmp_path).train(max_steps=2)
    trainer = Trainer(make_model(), task(), ToyVideos(), make_config(steps=4, seed=4), tmp_path)
    with pytest.warns(UserWarning, match="seed: 3 -> 4"):
        trainer.train(resume=True)
