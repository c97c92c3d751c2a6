"""Determinism on the CPU (docs/determinism.md): the same seed gives byte-identical videos in
two runs and in two separate processes, different seeds differ, and training with the same seed writes
byte-identical weights in another process. Every process here uses one torch thread: the thread count is part
of "the same settings" (docs/determinism.md shows why).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import minifusion
from minifusion import FusionFramesPipeline
from minifusion.cli import main

PROMPTS = ["a red circle moves right", "a blue star moves up"]
FAST = dict(num_inference_steps=3, interpolation_num_inference_steps=2, interpolation_passes=1, output_type="np",
            progress=False)  # keyframes, one interpolation pass and the video decoder, in a few steps
GENERATE = """
import sys, numpy as np, torch, minifusion
from minifusion import FusionFramesPipeline
pipe = FusionFramesPipeline.from_pretrained(minifusion.pretrained())
frames = pipe({prompts!r}, generator=torch.Generator().manual_seed(int(sys.argv[2])), **{fast!r}).frames
np.save(sys.argv[1], frames)
"""


def one_thread_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, *args], env=one_thread_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


@pytest.fixture(scope="module")
def pipe():
    return FusionFramesPipeline.from_pretrained(minifusion.pretrained())


def frames(pipe, seed: int) -> np.ndarray:
    return pipe(PROMPTS, generator=torch.Generator().manual_seed(seed), **FAST).frames  # (2, 29, 64, 64, 3) float32


def test_the_same_seed_gives_byte_identical_frames_in_this_process_and_in_another(pipe, tmp_path):
    assert torch.get_num_threads() == 1  # tests/conftest.py; the child gets OMP_NUM_THREADS=1
    a, b = frames(pipe, 0), frames(pipe, 0)
    assert a.shape == (2, 29, 64, 64, 3) and a.dtype == np.float32
    assert a.tobytes() == b.tobytes()
    run(["-c", GENERATE.format(prompts=PROMPTS, fast=FAST), str(tmp_path / "child.npy"), "0"])
    assert np.load(tmp_path / "child.npy").tobytes() == a.tobytes()
    other = frames(pipe, 1)
    assert np.abs(other - a).mean() > 0.01  # another seed: another video, not a rounding difference


def test_generate_writes_byte_identical_gifs_across_processes(tmp_path):
    def generate(name: str, seed: int) -> bytes:
        out = tmp_path / f"{name}.gif"
        run(["-m", "minifusion", "generate", "a green triangle moves up", "--out", str(out), "--seed", str(seed),
             "--steps", "3", "--passes", "0", "--no-progress"])
        return out.read_bytes()

    first, second, other = generate("a", 0), generate("b", 0), generate("c", 7)
    assert first == second
    assert first != other


def test_training_with_the_same_seed_writes_byte_identical_weights_in_another_process(tmp_path):
    config = tmp_path / "ae.json"
    config.write_text(json.dumps({
        "model": {"block_out_channels": [8, 16], "norm_groups": 4, "sample_size": 16},
        "training": {"steps": 3, "batch_size": 4, "log_every": 1, "device": "cpu", "plot_loss": False},
        "data": {"num_clips": 4, "num_frames": 2, "frame_skip": 1, "size": 16}, "val_frames": 2,
        "scaling_frames": 4}))

    def weights(out: Path) -> bytes:
        return (out / "autoencoder" / "model.safetensors").read_bytes()

    args = ["train", "autoencoder", "--config", str(config), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "here")]) == 0
    run(["-m", "minifusion", *args, "--out", str(tmp_path / "there")])
    assert main([*args, "--out", str(tmp_path / "seed1"), "--seed", "1"]) == 0
    assert weights(tmp_path / "here") == weights(tmp_path / "there")
    assert weights(tmp_path / "here") != weights(tmp_path / "seed1")
