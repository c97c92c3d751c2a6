"""Fingerprints of what the package computes, to check that a refactor changed nothing.

Prints the md5 of fixed outputs: five videos of the shipped default pipeline (29 and 113 frames, another
seed, DDIM with a callback that edits the latents) and a batch of its T2I images; with ``--train`` also the
weights of every stage trained for a few steps at tiny size (the configs of the recipe tests). Run it on
the commit before a change and after it, at the same thread count, and compare the two outputs:

    python scripts/output_fingerprints.py --train > before.txt   # on the old commit
    python scripts/output_fingerprints.py --train > after.txt
    diff before.txt after.txt && echo identical

One torch thread by default: another thread count changes the last bits (docs/determinism.md).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

import torch

from minifusion.argtypes import int_at_least  # (present in older commits too)

TRAINING = {"steps": 3, "batch_size": 4, "checkpoint_every": 2, "log_every": 1, "device": "cpu"}
TINY_DATA = {"num_clips": 4, "num_frames": 3, "size": 16}
TINY = {  # stage -> recipe overrides, trained in this order into one folder
    "text_encoder": {"text_encoder": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                      "intermediate_size": 32},
                     "training": TRAINING, "data": {"num_captions": 64}, "eval_captions": 16},
    "autoencoder": {"model": {"block_out_channels": [8, 16], "norm_groups": 4, "sample_size": 16}, "training": TRAINING,
                    "data": {"num_clips": 6, "num_frames": 2, "frame_skip": 1, "size": 16}, "val_frames": 4,
                    "scaling_frames": 8},
    "t2i": {"unet": {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_groups": 4, "attention_head_dim": 8,
                     "cross_attention_dim": 16},
            "training": TRAINING, "data": {"num_clips": 8, "num_frames": 2, "frame_skip": 1, "size": 16},
            "sample_prompts": ["a red circle moves right"], "samples_per_prompt": 1, "num_inference_steps": 2},
    "keyframes": {"training": {**TRAINING, "batch_size": 2, "lr": 1e-2, "warmup_steps": 0, "plot_loss": False},
                  "data": TINY_DATA, "motion_check_every": 0, "loss_weighting": "v",
                  "spatiotemporal_attention_size": 4, "spatiotemporal_motion_bias": True,
                  "temporal_text_attention_size": 4},
    "interpolation": {"training": {**TRAINING, "batch_size": 2, "lr": 1e-2, "warmup_steps": 0, "plot_loss": False},
                      "data": TINY_DATA, "fine_fraction": 0.5, "encode_batch_size": 4, "eval_clips": 2,
                      "eval_num_inference_steps": 2},
    "decoder": {"temporal_attention_head_dim": 4, "training": {**TRAINING, "lr": 1e-2, "warmup_steps": 0},
                "data": TINY_DATA, "eval_clips": 2},
}
TINY["mfi"] = {**TINY["interpolation"], "eval_clips": 1}


def md5(t: torch.Tensor) -> str:
    return hashlib.md5(t.detach().contiguous().cpu().numpy().tobytes()).hexdigest()


def pipeline_fingerprints() -> list[str]:
    from minifusion import FusionFramesPipeline, pretrained
    from minifusion.training.recipes.t2i import load_t2i, sample_t2i

    pipe = FusionFramesPipeline.from_pretrained(pretrained())
    pipe.set_progress_bar_config(disable=True)
    lines = []
    for prompt, passes, seed in (("a red circle moves right", 1, 0), ("a green square moves up", 2, 0),
                                 ("a blue star moves down-left", 1, 3)):
        frames = pipe(prompt, interpolation_passes=passes, generator=torch.Generator().manual_seed(seed),
                      output_type="pt").frames
        lines.append(f"video {prompt!r} passes {passes} seed {seed} {tuple(frames.shape)} {md5(frames)}")

    def callback(pipe, i, t, kwargs):  # edits the keyframe latents once
        return {"latents": kwargs["latents"] * 0.999} if kwargs["stage"] == "keyframes" and i == 2 else None

    frames = pipe("a yellow triangle moves left", scheduler="ddim", num_inference_steps=6, guidance_scale=3.0,
                  callback_on_step_end=callback, generator=torch.Generator().manual_seed(1), output_type="pt").frames
    lines.append(f"video ddim + callback {tuple(frames.shape)} {md5(frames)}")
    parts = load_t2i(pretrained())
    images = sample_t2i(parts["unet"], parts["text_encoder"], parts["autoencoder"],
                        ["a red circle moves right", "a blue square moves up"], num_inference_steps=5,
                        generator=torch.Generator().manual_seed(0))
    lines.append(f"t2i images {tuple(images.shape)} {md5(images)}")
    return lines


def training_fingerprints() -> list[str]:
    from minifusion.training.recipes import STAGES

    out = Path(tempfile.mkdtemp(prefix="fingerprints_"))
    for stage, config in TINY.items():
        STAGES[stage].train(out, config=config, progress=False)
    return [f"weights {f.relative_to(out)} {hashlib.md5(f.read_bytes()).hexdigest()}"
            for f in sorted(out.glob("*/*.safetensors"))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="also train every stage at tiny size (about 2 min)")
    parser.add_argument("--threads", type=int_at_least(1), default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for line in pipeline_fingerprints() + (training_fingerprints() if args.train else []):
        print(line, flush=True)


if __name__ == "__main__":
    main()
