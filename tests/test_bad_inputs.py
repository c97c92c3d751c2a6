"""The bad-input catalogue: each row is one bad input to the Python API or the CLI, with
the error or warning it gets. ``test_bad_input`` tries every row; docs/bad_inputs.md is rendered
from the same rows (``python tests/test_bad_inputs.py`` rewrites it, ``test_doc_is_rendered_from_rows``
keeps the two equal).

A row's ``message`` is the text the user sees, with ``…`` where it is abridged; the test turns it into
a regex (the literal pieces in order), so the doc shows real messages. API rows are Python
expressions evaluated with the names that ``WORLD`` defines; CLI rows are argument lists for
``minifusion.cli.main`` (run in-process). Both run inside an empty temporary folder, where ``setup``
first writes the files a row names (a corrupt checkpoint, a broken captions file, ...).

A row with ``gap`` documents an input whose error is not yet good (a traceback from inside torch, a
silent correction, a message that does not say what is allowed): its test is
``xfail(strict=True)`` and asserts the wanted behaviour, ``now`` and ``now_message`` say what happens
today (checked by ``test_gap_rows_behave_as_documented_today``). Fixing one turns the xfail into a
failure: then move the row's wanted behaviour into a plain row.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from minifusion.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
SHIPPED = Path(__file__).resolve().parents[1] / "data_samples" / "checkpoints" / "moving-shapes-motion"  # the default

# The names API rows use, shown verbatim at the top of the doc (tiny models: each call takes milliseconds).
WORLD = '''\
import numpy as np, torch
from minifusion import FusionFramesPipeline, PipelineSettings, pretrained
from minifusion.data import ClipFolder, MovingShapes, parse_caption
from minifusion.diffusion import DDIMScheduler, DDPMScheduler
from minifusion.models import Autoencoder, AutoencoderConfig, KeyframeUNet, KeyframeUNetConfig, UNet, UNetConfig
from minifusion.training import Trainer, TrainingConfig, TinyDenoiser, load_checkpoint, resolve_precision
from minifusion.training.recipes import AutoencoderRecipe, KeyframesRecipe, TextEncoderRecipe, load_recipe, train_stage

pipe = FusionFramesPipeline.from_pretrained(pretrained())  # the shipped checkpoint (moving-shapes-motion)
pipe.set_progress_bar_config(disable=True)
fast = dict(num_inference_steps=1, interpolation_passes=0, output_type="latent")  # rows that sample

TINY = dict(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=8, attention_head_dim=8,
            norm_groups=2, sample_size=8, text_length=3)
unet = UNet(UNetConfig(**TINY))
x, t, context = torch.randn(2, 4, 8, 8), torch.tensor([10.0, 900.0]), torch.randn(2, 3, 8)
keyframe_unet = KeyframeUNet(KeyframeUNetConfig(**TINY))
video = torch.randn(2, 4, 4, 8, 8)  # (B, C, F, H, W) latents
autoencoder = Autoencoder(AutoencoderConfig(block_out_channels=(8, 16), norm_groups=4, sample_size=16))
scheduler = DDPMScheduler()
scheduler.set_timesteps(10)  # timesteps 900, 800, ..., 0
'''

API, CLI = "API", "CLI"
ELLIPSIS = "…"


@dataclass(frozen=True)
class Row:
    group: str  # section of the table
    id: str  # pytest id
    code: str | tuple[str, ...]  # API: a Python expression; CLI: the arguments after `python -m minifusion`
    expect: type | int  # exception or warning class (API), exit code (CLI)
    message: str  # what the user reads, "…" where abridged (CLI: searched in stderr and the warnings)
    given: str = ""  # the files (made by `setup`) or state the row starts from
    setup: str | None = None  # a key of SETUPS
    gap: str | None = None  # why today's behaviour falls short: the row is xfail(strict=True)
    now: type | int | None = None  # a gap row today: exception, exit code, or None (runs without complaint)
    now_message: str = ""  # a gap row today: the message (or what silently happens)

    @property
    def where(self) -> str:
        return CLI if isinstance(self.code, tuple) else API


def pattern(message: str) -> re.Pattern:
    """The literal pieces of ``message`` between the "…" marks, in order. Single quotes are optional:
    argparse quotes its choices ('a', 'b') in Python 3.11; newer versions may print them bare."""
    pieces = (re.escape(part).replace("'", "'?") for part in re.split(rf"\s*{ELLIPSIS}\s*", message))
    return re.compile(".*?".join(pieces), re.DOTALL)


# -- the rows ------------------------------------------------------------------------------------
DATA, MODELS, SCHED, CALL, FILES, TRAIN = ("data", "models", "schedulers and samplers", "pipeline call",
                                           "saving and loading", "training recipes and trainer")
GEN, TRAIN_CLI, BENCH, OTHER_CLI = "CLI generate", "CLI train", "CLI bench", "CLI, other commands"
P = "a red circle moves right"

ROWS: list[Row] = [
    # data ----------------------------------------------------------------------------------------
    Row(DATA, "split-unknown", 'MovingShapes(split="test")', ValueError,
        "split 'test' is not one of 'train', 'val', 'heldout'"),
    Row(DATA, "size-too-small", "MovingShapes(size=4)", ValueError,
        "size 4 is not allowed; it must be an integer >= 8 (pixels)"),
    Row(DATA, "num-frames-float", "MovingShapes(num_frames=2.5)", ValueError,
        "num_frames 2.5 is not allowed; it must be an integer >= 2"),
    Row(DATA, "colors-a-string", 'MovingShapes(colors="red")', ValueError,
        "colors must be a list of names, got the string 'red'; write ['red']"),
    Row(DATA, "color-unknown", 'MovingShapes(colors=["reddish"])', ValueError,
        "color 'reddish' is not one of 'red', 'green', 'blue', …, 'white'"),
    Row(DATA, "index-out-of-range", "MovingShapes(length=3)[5]", IndexError,
        "index 5 is out of range for a MovingShapes split of length 3"),
    Row(DATA, "index-a-string", 'MovingShapes(length=3)["0"]', TypeError, "index must be an integer, got str"),
    Row(DATA, "caption-unknown-verb", 'parse_caption("a red circle flies right")', ValueError,
        "caption 'a red circle flies right': word 'flies' is not a verb (and, moves, bounces, …)"),
    Row(DATA, "clip-folder-missing", 'ClipFolder("no_such_folder")', FileNotFoundError,
        "clip folder no_such_folder does not exist or is not a folder"),
    Row(DATA, "captions-file-missing", 'ClipFolder("clips")', FileNotFoundError,
        "captions file clips/captions.txt not found; write one line per clip 'filename<TAB>caption' …",
        given="clips/ holds a.gif and no captions file", setup="clips_without_captions"),
    Row(DATA, "captions-line-without-tab", 'ClipFolder("clips")', ValueError,
        "captions file clips/captions.txt, line 1: expected 'filename<TAB>caption', got 'a.gif a red circle …'",
        given="clips/captions.txt separates name and caption by a space", setup="clips_space_separated"),
    Row(DATA, "captions-name-a-missing-clip", 'ClipFolder("clips")', FileNotFoundError,
        "captions entry 'b.gif' in captions.txt has no clip: clips/b.gif does not exist",
        given="clips/captions.txt lists b.gif, which is not there", setup="clips_missing_clip"),
    Row(DATA, "clip-file-corrupt", 'ClipFolder("clips", num_frames=2)[0]', ValueError,
        "could not read clip clips/a.gif: UnidentifiedImageError: …",
        given="clips/a.gif holds junk bytes", setup="clips_junk_gif"),
    Row(DATA, "clip-too-short", 'ClipFolder("clips", num_frames=4)[0]', ValueError,
        "clip clips/a.gif has 1 frames; num_frames=4 at frame_skip=1 needs at least 4",
        given="clips/a.gif has one frame", setup="clips_one_frame"),

    # models --------------------------------------------------------------------------------------
    Row(MODELS, "norm-groups-not-dividing", "UNet(UNetConfig(block_out_channels=(8, 16), norm_groups=3))",
        ValueError, "norm_groups 3 does not divide the channel count 8"),
    Row(MODELS, "temporal-variant-unknown", 'KeyframeUNet(KeyframeUNetConfig(temporal="conv2d"))', ValueError,
        "temporal 'conv2d' is not one of 'conv1d_attn1d_layers', 'conv1d_attn1d_blocks', …"),
    Row(MODELS, "unet-wrong-channels", "unet(torch.randn(2, 3, 8, 8), t, context)", ValueError,
        "sample has 3 channels, the model takes 4: got shape (2, 3, 8, 8)"),
    Row(MODELS, "unet-odd-size", "unet(torch.randn(2, 4, 7, 7), t, context)", ValueError,
        "height and width must be divisible by the down-sampling factor 2, got shape (2, 4, 7, 7)"),
    Row(MODELS, "unet-wrong-rank", "unet(torch.randn(4, 8, 8), t, context)", ValueError,
        "sample must be (B, C, H, W) or (B, C, F, H, W), got shape (4, 8, 8)"),
    Row(MODELS, "unet-numpy-input", "unet(x.numpy(), t, context)", ValueError,
        "sample must be (B, C, H, W) or (B, C, F, H, W), got shape ndarray"),
    Row(MODELS, "unet-timesteps-per-sample", "unet(x, torch.tensor([1.0, 2.0, 3.0]), context)", ValueError,
        "timestep must be a real number or a (2,) tensor, got shape (3,)"),
    Row(MODELS, "unet-text-width", "unet(x, t, torch.randn(2, 3, 9))", ValueError,
        "encoder_hidden_states must be (B, L, 8) with B = 2, got shape (2, 3, 9)"),
    Row(MODELS, "keyframe-unet-image", "keyframe_unet(x, t, context)", ValueError,
        "sample must be (B, C, F, H, W), got shape (2, 4, 8, 8)"),
    Row(MODELS, "frame-positions-shape", "keyframe_unet(video, t, context, frame_positions=torch.arange(5))",
        ValueError, "frame_positions must be (F,) or (B, F) = (2, 4), got shape (5,)"),
    Row(MODELS, "autoencoder-4-channels", "autoencoder.encode(torch.randn(1, 4, 16, 16))", ValueError,
        "Autoencoder expects frames (B, 3, H, W) or (B, 3, F, H, W), got shape (1, 4, 16, 16)"),
    Row(MODELS, "decode-chunk-zero", "autoencoder.decode(torch.randn(1, 4, 2, 8, 8), chunk_size=0)", ValueError,
        "chunk_size 0 is not allowed; it must be an integer >= 1"),
    Row(MODELS, "token-id-out-of-range",
        "pipe.text_encoder(torch.tensor([[2, 999]]), torch.ones(1, 2, dtype=torch.bool))", ValueError,
        "input_ids must lie in [0, …], got values in [2, 999]"),
    Row(MODELS, "unet-float64", "unet(x.double(), t, context)", ValueError,
        "sample must be a tensor of the model's dtype torch.float32, got torch.float64"),
    Row(MODELS, "autoencoder-uint8", "autoencoder.encode(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))",
        ValueError, "frames must be a tensor of the model's dtype torch.float32, got torch.uint8 (frames are floats "
        "in [-1, 1])"),
    Row(MODELS, "unet-nan-timestep", 'unet(x, torch.tensor([float("nan"), 1.0]), context)', ValueError,
        "timestep must be finite, got [nan, 1.0]"),
    Row(MODELS, "config-dict-unknown-key", 'UNet({"colour": "red"})', ValueError,
        "unknown UNetConfig keys ['colour']; allowed: ['in_channels', …]"),

    # schedulers and samplers ---------------------------------------------------------------------
    Row(SCHED, "beta-schedule-unknown", 'DDPMScheduler(beta_schedule="cosine")', ValueError,
        "beta_schedule 'cosine' is not one of 'linear', 'scaled_linear', 'squaredcos_cap_v2'"),
    Row(SCHED, "prediction-type-unknown", 'DDPMScheduler(prediction_type="x0")', ValueError,
        "prediction_type 'x0' is not one of 'epsilon', 'v_prediction', 'sample'"),
    Row(SCHED, "timestep-spacing-unknown", 'DDIMScheduler(timestep_spacing="uniform")', ValueError,
        "timestep_spacing 'uniform' is not one of 'leading', 'trailing', 'linspace'"),
    Row(SCHED, "beta-start-negative", "DDPMScheduler(beta_start=-0.1)", ValueError,
        "need 0 < beta_start <= beta_end < 1, got beta_start=-0.1, beta_end=0.02"),
    Row(SCHED, "beta-end-nan", 'DDPMScheduler(beta_end=float("nan"))', ValueError,
        "need 0 < beta_start <= beta_end < 1, got beta_start=0.0001, beta_end=nan"),
    Row(SCHED, "train-steps-float", "DDPMScheduler(num_train_timesteps=1000.0)", ValueError,
        "num_train_timesteps 1000.0 is not allowed; it must be an integer >= 2"),
    Row(SCHED, "clip-sample-a-string", 'DDPMScheduler(clip_sample="yes")', ValueError,
        "clip_sample must be True or False, got 'yes'"),
    Row(SCHED, "from-config-unknown-key", 'DDIMScheduler.from_config({"num_steps": 50})', ValueError,
        "unknown config keys ['num_steps'] for DDIMScheduler; allowed: ['beta_end', …]"),
    Row(SCHED, "zero-steps", "scheduler.set_timesteps(0)", ValueError,
        "num_inference_steps must be an int in 1..1000 (num_train_timesteps), got 0"),
    Row(SCHED, "more-steps-than-training", "scheduler.set_timesteps(2000)", ValueError,
        "num_inference_steps must be an int in 1..1000 (num_train_timesteps), got 2000"),
    Row(SCHED, "step-before-set-timesteps", "DDPMScheduler().step(x, 900, x)", ValueError,
        "call set_timesteps(num_inference_steps) before step()"),
    Row(SCHED, "step-timestep-not-scheduled", "scheduler.step(x, 7, x)", ValueError,
        "timestep 7 is not in the schedule set by set_timesteps: [900, 800, …, 0]"),
    Row(SCHED, "step-float-timestep", "scheduler.step(x, torch.tensor(900.0), x)", ValueError,
        "timestep must be an integer, got a torch.float32 tensor 900.0"),
    Row(SCHED, "step-shapes-differ", "scheduler.step(x, 900, x[:1])", ValueError,
        "model_output has shape (2, 4, 8, 8) but sample has shape (1, 4, 8, 8); they must match"),
    Row(SCHED, "step-numpy", "scheduler.step(x.numpy(), 900, x)", ValueError,
        "model_output must be a torch.Tensor, got ndarray"),
    Row(SCHED, "step-integer-sample", "scheduler.step(x, 900, x.long())", ValueError,
        "sample must be a floating-point tensor, got dtype torch.int64"),
    Row(SCHED, "add-noise-timestep-1000", "scheduler.add_noise(x, x, torch.tensor([1000, 3]))", ValueError,
        "timesteps [1000, 3] must lie in 0..999"),
    Row(SCHED, "add-noise-float-timesteps", "scheduler.add_noise(x, x, torch.tensor([1.5, 3.0]))", ValueError,
        "timesteps must be an integer tensor, got dtype torch.float32"),
    Row(SCHED, "ddim-eta-above-1", "(s := DDIMScheduler(), s.set_timesteps(10), s.step(x, 900, x, eta=2))",
        ValueError, "eta 2 is not allowed; it must be a number in [0, 1]"),

    # pipeline call -------------------------------------------------------------------------------
    Row(CALL, "prompt-an-int", "pipe(5)", ValueError, "prompts must be a str or a non-empty list of str, got int"),
    Row(CALL, "prompt-empty-list", "pipe([])", ValueError,
        "prompts must be a str or a non-empty list of str, got an empty list"),
    Row(CALL, "prompt-too-long", f'pipe("{P} " * 4)', ValueError,
        "prompt 'a red circle moves right … has 20 words, more than max_length 16; shorten it (prompts are never "
        "truncated)"),
    Row(CALL, "prompt-unknown-word", 'pipe("a red circle moonwalks right", **fast)', UserWarning,
        "words not in the vocabulary, encoded as <unk>: ['moonwalks']"),
    Row(CALL, "negative-prompt-unknown-word", f'pipe("{P}", negative_prompt="zebra", **fast)', UserWarning,
        "words not in the vocabulary, encoded as <unk>: ['zebra']"),
    Row(CALL, "negative-prompt-count", f'pipe(["{P}"] * 2, negative_prompt=["a", "b", "c"])', ValueError,
        "negative_prompt has 3 entries but there are 2 prompts; pass one str or one per prompt"),
    Row(CALL, "one-keyframe", f'pipe("{P}", num_keyframes=1)', ValueError,
        "num_keyframes 1 is not allowed; it must be an integer >= 2 (interpolation needs pairs)"),
    Row(CALL, "zero-steps-call", f'pipe("{P}", num_inference_steps=0)', ValueError,
        "num_inference_steps 0 is not allowed; it must be an integer >= 1"),
    Row(CALL, "steps-a-float", f'pipe("{P}", num_inference_steps=2.5)', ValueError,
        "num_inference_steps 2.5 is not allowed; it must be an integer >= 1"),
    Row(CALL, "steps-above-training", f'pipe("{P}", num_inference_steps=2000)', ValueError,
        "num_inference_steps must be an int in 1..1000 (num_train_timesteps), got 2000"),
    Row(CALL, "guidance-negative", f'pipe("{P}", guidance_scale=-1)', ValueError,
        "guidance_scale -1 is not allowed; it must be a finite number >= 0 (1 = no guidance)"),
    Row(CALL, "guidance-nan", f'pipe("{P}", guidance_scale=float("nan"))', ValueError,
        "guidance_scale nan is not allowed; it must be a finite number >= 0 (1 = no guidance)"),
    Row(CALL, "guidance-a-string", f'pipe("{P}", guidance_scale="6")', ValueError,
        "guidance_scale '6' is not allowed; it must be a finite number >= 0 (1 = no guidance)"),
    Row(CALL, "interpolation-guidance-negative", f'pipe("{P}", interpolation_guidance_scale=-0.5)', ValueError,
        "interpolation_guidance_scale -0.5 is not allowed; it must be a finite number >= 0 (1 = no guidance)"),
    Row(CALL, "interpolation-strength-zero", f'pipe("{P}", interpolation_strength=0)', ValueError,
        "interpolation_strength 0 is not allowed; it must be a number in (0, 1] (1 = start from pure noise)"),
    Row(CALL, "interpolation-strength-keeps-no-step",
        f'pipe("{P}", interpolation_strength=0.05, interpolation_num_inference_steps=5)', ValueError,
        "strength 0.05 keeps no step of 5 (round(strength * steps) = 0); use strength >= 0.1 or more steps"),
    Row(CALL, "three-passes", f'pipe("{P}", interpolation_passes=3)', ValueError,
        "interpolation_passes 3 is not one of 0, 1, 2"),
    Row(CALL, "output-type-unknown", f'pipe("{P}", output_type="gif")', ValueError,
        "output_type 'gif' is not one of 'np', 'pt', 'pil', 'latent'"),
    Row(CALL, "scheduler-unknown", f'pipe("{P}", scheduler="heun")', ValueError,
        "scheduler 'heun' is not one of 'dpm', 'dpm-sde', 'euler', 'ddim', 'ddpm' or None"),
    Row(CALL, "decoder-unknown", f'pipe("{P}", decoder="temporal")', ValueError,
        "decoder 'temporal' is not one of 'image', 'video' or None"),
    Row(CALL, "generator-a-seed", f'pipe("{P}", generator=0)', ValueError,
        "generator must be a torch.Generator or None, got int"),
    Row(CALL, "decode-chunk-zero-call", f'pipe("{P}", decode_chunk_size=0)', ValueError,
        "decode_chunk_size 0 is not allowed; it must be an integer >= 1"),
    Row(CALL, "keyword-unknown", f'pipe("{P}", height=64)', TypeError,
        "__call__() got an unexpected keyword argument 'height'"),
    Row(CALL, "callback-returns-junk", f'pipe("{P}", callback_on_step_end=lambda *args: 5, **fast)', ValueError,
        "callback_on_step_end must return a dict or None, got int"),
    Row(CALL, "dynamic-thresholding-a-string", f'pipe("{P}", dynamic_thresholding="no", **fast)', ValueError,
        "dynamic_thresholding 'no' is not allowed; it must be True, False or None"),
    Row(CALL, "eta-nan-with-ddpm", f'pipe("{P}", eta=float("nan"), **fast)', ValueError,
        "eta nan is not allowed; it must be a number in [0, 1] (DDIM's; DDPM ignores it)"),
    Row(CALL, "callback-not-callable", f'pipe("{P}", callback_on_step_end=5, **fast)', ValueError,
        "callback_on_step_end must be callable as fn(pipe, step_index, timestep, callback_kwargs) or None, got int"),

    # saving and loading --------------------------------------------------------------------------
    Row(FILES, "model-folder-missing", 'UNet.from_pretrained("no_such_folder")', ValueError,
        "checkpoint folder 'no_such_folder' does not exist"),
    Row(FILES, "model-weights-missing", 'UNet.from_pretrained("unet")', ValueError,
        "checkpoint folder 'unet' is incomplete: missing model.safetensors",
        given="unet/ holds config.json only", setup="unet_without_weights"),
    Row(FILES, "model-weights-corrupt", 'UNet.from_pretrained("unet")', ValueError,
        "checkpoint file 'unet/model.safetensors' is corrupt or unreadable: …",
        given="unet/model.safetensors overwritten with junk", setup="unet_junk_weights"),
    Row(FILES, "model-config-corrupt", 'UNet.from_pretrained("unet")', ValueError,
        "checkpoint file 'unet/config.json' is not valid JSON: …",
        given="unet/config.json cut short", setup="unet_cut_config"),
    Row(FILES, "model-config-unknown-key", 'UNet.from_pretrained("unet")', ValueError,
        "'unet/config.json' has unknown UNet config keys ['colour']",
        given='unet/config.json has an extra key "colour"', setup="unet_extra_key"),
    Row(FILES, "model-wrong-class", 'Autoencoder.from_pretrained("unet")', ValueError,
        "'unet/config.json' holds a UNet, not a Autoencoder", given="unet/ = unet.save_pretrained(\"unet\")",
        setup="unet_saved"),
    Row(FILES, "save-dtype-a-string", 'unet.save_pretrained("unet", dtype="float16")', ValueError,
        "dtype must be a floating-point torch.dtype such as torch.float16, got 'float16'"),
    Row(FILES, "save-onto-a-file", 'unet.save_pretrained("notes.txt")', FileExistsError,
        "File exists: 'notes.txt'", given="notes.txt is a file", setup="a_file"),
    Row(FILES, "pretrained-unknown-name", 'pretrained("moving-circles")', ValueError,
        "no trained pipeline 'moving-circles' at … (available: ['moving-shapes', 'moving-shapes-motion']). Train it with …"),
    Row(FILES, "pretrained-a-path", 'pretrained("../moving-shapes")', ValueError,
        "name must be a checkpoint folder name such as 'moving-shapes', got '../moving-shapes'"),
    Row(FILES, "pipeline-folder-missing", 'FusionFramesPipeline.from_pretrained("no_such_folder")', ValueError,
        "pipeline folder 'no_such_folder' does not exist"),
    Row(FILES, "pipeline-part-missing", 'FusionFramesPipeline.from_pretrained("pipe")', ValueError,
        "pipeline folder 'pipe' is incomplete: model_index.json lists 'keyframe_unet' but the folder "
        "'pipe/keyframe_unet' is missing",
        given="pipe/ = the shipped checkpoint without keyframe_unet/", setup="pipe_without_keyframe_unet"),
    Row(FILES, "pipeline-index-corrupt", 'FusionFramesPipeline.from_pretrained("pipe")', ValueError,
        "file 'pipe/model_index.json' is not valid JSON: …",
        given="pipe/model_index.json cut short", setup="pipe_cut_index"),
    Row(FILES, "pipeline-setting-unknown", 'PipelineSettings.from_dict({"latent_range": 5.5, "guidance": 6})',
        ValueError, "settings: unknown pipeline settings ['guidance']; allowed: ['decode_chunk_size', …]"),
    Row(FILES, "trainer-checkpoint-corrupt", 'load_checkpoint("step_000100.pt")', ValueError,
        "checkpoint 'step_000100.pt' is corrupt or unreadable: …",
        given="step_000100.pt holds junk bytes", setup="junk_checkpoint"),
    Row(FILES, "trainer-checkpoint-foreign", 'load_checkpoint("other.pt")', ValueError,
        "checkpoint 'other.pt' is not a minifusion trainer checkpoint",
        given='other.pt = torch.save({"weights": torch.zeros(1)}, "other.pt")', setup="foreign_checkpoint"),
    Row(FILES, "model-config-not-an-object", 'UNet.from_pretrained("unet")', ValueError,
        "checkpoint file 'unet/config.json' must hold a JSON object of config keys, got a list",
        given="unet/config.json holds [1, 2]", setup="unet_list_config"),
    Row(FILES, "model-config-does-not-fit-weights", 'UNet.from_pretrained("unet")', ValueError,
        "checkpoint file 'unet/model.safetensors' does not match UNet: weights of another shape, … (the config "
        "gives …; was 'unet/config.json' edited?",
        given="unet/config.json edited to block_out_channels [8, 32]", setup="unet_widened"),
    Row(FILES, "pipeline-device-unknown", 'FusionFramesPipeline.from_pretrained(pretrained(), device="gpu")',
        ValueError, "device 'gpu' is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'"),

    # training recipes and trainer ----------------------------------------------------------------
    Row(TRAIN, "lr-negative", "TrainingConfig(lr=-1)", ValueError,
        "lr -1 is not allowed; it must be a number > 0"),
    Row(TRAIN, "lr-nan", 'TrainingConfig(lr=float("nan"))', ValueError,
        "lr nan is not allowed; it must be a number > 0"),
    Row(TRAIN, "batch-size-float", "TrainingConfig(batch_size=2.0)", ValueError,
        "batch_size 2.0 is not allowed; it must be an integer >= 1"),
    Row(TRAIN, "mixed-precision-unknown", 'TrainingConfig(mixed_precision="fp8")', ValueError,
        "mixed_precision 'fp8' is not one of 'no', 'bf16', 'fp16', 'auto'"),
    Row(TRAIN, "ema-decay-one", "TrainingConfig(ema_decay=1.0)", ValueError,
        "ema_decay 1.0 is not allowed; it must be in [0, 1) (0 = no EMA)"),
    Row(TRAIN, "training-key-unknown", 'TrainingConfig.from_dict({"learning_rate": 1e-3})', ValueError,
        "unknown TrainingConfig keys ['learning_rate']; allowed: ['adam_eps', …, 'lr', …]"),
    Row(TRAIN, "fp16-on-cpu", 'resolve_precision("fp16", torch.device("cpu"))', ValueError,
        "mixed_precision 'fp16' needs a CUDA device, got 'cpu'; use 'no' or 'bf16'"),
    Row(TRAIN, "recipe-key-unknown", 'load_recipe(AutoencoderRecipe, {"training": {"learning_rate": 1e-3}})',
        ValueError, "unknown AutoencoderRecipe.training keys ['learning_rate']; allowed: ['adam_eps', …]"),
    Row(TRAIN, "recipe-top-key-unknown", 'load_recipe(AutoencoderRecipe, {"epochs": 3})', ValueError,
        "unknown AutoencoderRecipe keys ['epochs']; allowed: ['data', 'gradient_weight', …]"),
    Row(TRAIN, "recipe-value-wrong-type", 'load_recipe(AutoencoderRecipe, {"training": {"lr": "fast"}})',
        ValueError, "lr 'fast' is not allowed; it must be a number > 0"),
    Row(TRAIN, "recipe-corruption-reversed", 'load_recipe(TextEncoderRecipe, {"min_corruption": 0.5, "max_corruption": 0.2})',
        ValueError, "min_corruption 0.5 and max_corruption 0.2 are not allowed; they must satisfy "
        "0 < min_corruption <= max_corruption < 1"),
    Row(TRAIN, "recipe-choice-unknown", 'load_recipe(KeyframesRecipe, {"loss_weighting": "snr"})', ValueError,
        "loss_weighting 'snr' is not allowed; it must be one of 'epsilon', 'v'"),
    Row(TRAIN, "recipe-a-list", "load_recipe(AutoencoderRecipe, [1, 2])", ValueError,
        "config must be a AutoencoderRecipe, a dict, a JSON file path or None, got list"),
    Row(TRAIN, "recipe-file-missing", 'load_recipe(AutoencoderRecipe, "recipe.json")', ValueError,
        "config file 'recipe.json' does not exist"),
    Row(TRAIN, "stage-unknown", 'train_stage("vae", "run")', ValueError,
        "stage 'vae' is not one of 'text_encoder', 'autoencoder', 't2i', 'keyframes', 'interpolation', 'decoder', "
        "'mfi', 'all'"),
    Row(TRAIN, "stage-out-of-order", 'train_stage("t2i", "run")', ValueError,
        "'run/autoencoder' holds no trained autoencoder; train the autoencoder stage first: "
        "python -m minifusion train autoencoder --out run"),
    Row(TRAIN, "stage-steps-zero", 'train_stage("autoencoder", "run", steps=0)', ValueError,
        "steps 0 is not allowed; it must be an integer >= 1"),
    Row(TRAIN, "loss-always-nan",
        'Trainer(TinyDenoiser(), lambda *args: torch.tensor(float("nan")), MovingShapes(length=4, num_frames=4, '
        'size=16), TrainingConfig(steps=3, batch_size=2, max_nan_skips=2, device="cpu", progress=False), '
        '"run").train()', FloatingPointError,
        "non-finite loss or gradients in 2 consecutive steps (1..2), the limit max_nan_skips=2; stopping before "
        "NaN reaches the weights …",
        given="the first NaN step gives a RuntimeWarning 'step 1: loss is nan …; skipped this step'"),
    Row(TRAIN, "training-config-file-corrupt", 'TrainingConfig.load("training_config.json")', ValueError,
        "training config 'training_config.json' is not valid JSON: Expecting value: line 1 column 11 (char 10)",
        given="training_config.json cut short", setup="cut_training_config"),

    # CLI generate --------------------------------------------------------------------------------
    Row(GEN, "generate-no-prompt", ("generate",), 2, "error: the following arguments are required: prompt"),
    Row(GEN, "generate-out-not-gif", ("generate", P, "--out", "x.png"), 2,
        "error: argument --out: --out 'x.png' must end in .gif (add --mp4 for an MP4 beside it)"),
    Row(GEN, "generate-out-folder-missing", ("generate", P, "--out", "no/such/folder/x.gif"), 2,
        "error: argument --out: --out 'no/such/folder/x.gif': the folder 'no/such/folder' does not exist "
        "(create it first)"),
    Row(GEN, "generate-guidance-negative", ("generate", P, "--guidance", "-2"), 2,
        "error: argument --guidance: guidance '-2' must be a finite number >= 0 (1 = no guidance)"),
    Row(GEN, "generate-guidance-nan", ("generate", P, "--guidance", "nan"), 2,
        "error: argument --guidance: guidance 'nan' must be a finite number >= 0 (1 = no guidance)"),
    Row(GEN, "generate-guidance-a-word", ("generate", P, "--guidance", "six"), 2,
        "error: argument --guidance: guidance 'six' is not a number"),
    Row(GEN, "generate-steps-zero", ("generate", P, "--steps", "0"), 2,
        "error: argument --steps: '0' must be an integer >= 1"),
    Row(GEN, "generate-steps-above-training", ("generate", P, "--out", "x.gif", "--steps", "2000"), 2,
        "error: num_inference_steps must be an int in 1..1000 (num_train_timesteps), got 2000"),
    Row(GEN, "generate-passes-three", ("generate", P, "--passes", "3"), 2,
        "error: argument --passes: invalid choice: 3 (choose from 0, 1, 2)"),
    Row(GEN, "generate-scheduler-unknown", ("generate", P, "--scheduler", "heun"), 2,
        "error: argument --scheduler: invalid choice: 'heun' (choose from 'dpm', 'dpm-sde', 'euler', 'ddim', 'ddpm')"),
    Row(GEN, "generate-seed-a-word", ("generate", P, "--seed", "abc"), 2,
        "error: argument --seed: invalid int value: 'abc'"),
    Row(GEN, "generate-fps-zero", ("generate", P, "--fps", "0"), 2,
        "error: argument --fps: '0' must be an integer >= 1"),
    Row(GEN, "generate-option-unknown", ("generate", P, "--colour", "red"), 2,
        "error: unrecognized arguments: --colour red"),
    Row(GEN, "generate-prompt-too-long", ("generate", " ".join([P] * 4), "--out", "x.gif"), 2,
        "error: prompt 'a red circle moves right … has 20 words, more than max_length 16; shorten it …"),
    Row(GEN, "generate-unknown-word", ("generate", "a red circle moonwalks right", "--out", "x.gif", "--steps",
                                       "1", "--passes", "0", "--no-progress"), 0,
        "UserWarning: words not in the vocabulary, encoded as <unk>: ['moonwalks']"),
    Row(GEN, "generate-checkpoint-missing", ("generate", P, "--out", "x.gif", "--checkpoint", "no_such_folder"), 2,
        "error: pipeline folder 'no_such_folder' does not exist"),
    Row(GEN, "generate-checkpoint-part-missing", ("generate", P, "--out", "x.gif", "--checkpoint", "pipe"), 2,
        "error: pipeline folder 'pipe' is incomplete: model_index.json lists 'keyframe_unet' but the folder …",
        given="pipe/ = the shipped checkpoint without keyframe_unet/", setup="pipe_without_keyframe_unet"),
    Row(GEN, "generate-checkpoint-corrupt", ("generate", P, "--out", "x.gif", "--checkpoint", "pipe"), 2,
        "error: checkpoint file 'pipe/keyframe_unet/model.safetensors' is corrupt or unreadable: …",
        given="pipe/keyframe_unet/model.safetensors holds junk bytes", setup="pipe_junk_keyframe_weights"),
    Row(GEN, "generate-checkpoint-does-not-fit", ("generate", P, "--out", "x.gif", "--checkpoint", "pipe"), 2,
        "error: checkpoint file 'pipe/keyframe_unet/model.safetensors' does not match KeyframeUNet: weights of "
        "another shape, …; was 'pipe/keyframe_unet/config.json' edited?",
        given="pipe/keyframe_unet/config.json edited to block_out_channels [32, 64, 256]",
        setup="pipe_widened_keyframe_unet"),

    # CLI train -----------------------------------------------------------------------------------
    Row(TRAIN_CLI, "train-stage-unknown", ("train", "vae", "--out", "run"), 2,
        "error: argument STAGE: invalid choice: 'vae' (choose from 'text_encoder', 'autoencoder', 't2i', …, 'all')"),
    Row(TRAIN_CLI, "train-out-missing", ("train", "autoencoder"), 2,
        "error: the following arguments are required: --out"),
    Row(TRAIN_CLI, "train-out-a-file", ("train", "autoencoder", "--out", "notes.txt"), 2,
        "error: argument --out: --out 'notes.txt' exists and is not a folder",
        given="notes.txt is a file", setup="a_file"),
    Row(TRAIN_CLI, "train-steps-a-word", ("train", "autoencoder", "--out", "run", "--steps", "ten"), 2,
        "error: argument --steps: 'ten' is not an integer"),
    Row(TRAIN_CLI, "train-seed-negative", ("train", "autoencoder", "--out", "run", "--seed", "-1"), 2,
        "error: argument --seed: '-1' must be an integer >= 0"),
    Row(TRAIN_CLI, "train-temporal-unknown", ("train", "keyframes", "--out", "run", "--temporal", "conv2d"), 2,
        "error: argument --temporal: invalid choice: 'conv2d' (choose from 'conv1d_attn1d_layers', …)"),
    Row(TRAIN_CLI, "train-temporal-wrong-stage", ("train", "autoencoder", "--out", "run", "--temporal",
                                                  "conv3d_attn1d_blocks"), 2,
        "error: --temporal applies to the keyframes stage only, not to 'autoencoder'"),
    Row(TRAIN_CLI, "train-variant-unknown", ("train", "decoder", "--out", "run", "--variant", "big"), 2,
        "error: argument --variant: invalid choice: 'big' (choose from 'conv1d', 'conv3d', …)"),
    Row(TRAIN_CLI, "train-skip-unknown", ("train", "all", "--out", "run", "--skip", "vae"), 2,
        "error: argument --skip: invalid choice: 'vae' (choose from 'text_encoder', 'autoencoder', …)"),
    Row(TRAIN_CLI, "train-skip-wrong-stage", ("train", "autoencoder", "--out", "run", "--skip", "mfi"), 2,
        "error: --skip applies to the stage 'all' only, not to 'autoencoder'"),
    Row(TRAIN_CLI, "train-data-missing", ("train", "autoencoder", "--out", "run", "--data", "no_such_folder"), 2,
        "error: argument --data: data folder 'no_such_folder' does not exist or is not a folder"),
    Row(TRAIN_CLI, "train-config-missing", ("train", "autoencoder", "--out", "run", "--config", "recipe.json"), 2,
        "error: argument --config: config file 'recipe.json' does not exist"),
    Row(TRAIN_CLI, "train-config-corrupt", ("train", "autoencoder", "--out", "run", "--config", "recipe.json"), 2,
        "error: config file 'recipe.json' is not valid JSON: …",
        given="recipe.json cut short", setup="cut_recipe"),
    Row(TRAIN_CLI, "train-config-key-unknown", ("train", "autoencoder", "--out", "run", "--config",
                                                "recipe.json"), 2,
        "error: unknown AutoencoderRecipe.training keys ['learning_rate']; allowed: […, 'lr', …]",
        given='recipe.json = {"training": {"learning_rate": 0.001}}', setup="recipe_unknown_key"),
    Row(TRAIN_CLI, "train-stage-out-of-order", ("train", "keyframes", "--out", "run"), 2,
        "error: 'run/autoencoder' is missing; the keyframes stage starts from the autoencoder stage: "
        "python -m minifusion train autoencoder --out run"),
    Row(TRAIN_CLI, "train-over-an-earlier-run", ("train", "autoencoder", "--out", "run"), 2,
        "error: 'run/runs/autoencoder' already holds a training run; pass resume=True (CLI: --resume) to "
        "continue it, or choose another --out",
        given="run/runs/autoencoder/log.csv exists", setup="earlier_run"),
    Row(TRAIN_CLI, "train-resume-nothing-to-resume", ("train", "autoencoder", "--out", "run", "--resume", "--config",
                                                      "tiny.json", "--steps", "1", "--no-progress"), 0,
        "UserWarning: resume=True (CLI: --resume) but 'run/runs/autoencoder/checkpoints' holds no usable checkpoint "
        "to resume from: training starts from step 0",
        given="run/ does not exist; tiny.json = a tiny autoencoder recipe", setup="tiny_recipe"),

    # CLI bench -----------------------------------------------------------------------------------
    Row(BENCH, "bench-threads-zero", ("bench", "--threads", "0"), 2,
        "error: argument --threads: '0' must be an integer >= 1"),
    Row(BENCH, "bench-json-folder-missing", ("bench", "--json", "no/such/folder/bench.json"), 2,
        "error: argument --json: --json 'no/such/folder/bench.json': the folder 'no/such/folder' does not exist"),
    Row(BENCH, "bench-json-a-folder", ("bench", "--json", "."), 2,
        "error: argument --json: --json '.' is a folder, not a file"),
    Row(BENCH, "bench-checkpoint-not-a-pipeline", ("bench", "--checkpoint", "."), 2,
        "error: argument --checkpoint: --checkpoint '.' is not a pipeline folder (no model_index.json in it)"),
    Row(BENCH, "bench-option-unknown", ("bench", "--quick", "--gpu"), 2,
        "error: unrecognized arguments: --gpu"),

    # CLI, other commands -------------------------------------------------------------------------
    Row(OTHER_CLI, "no-command", (), 2, "error: the following arguments are required: COMMAND"),
    Row(OTHER_CLI, "command-unknown", ("frobnicate",), 2,
        "error: argument COMMAND: invalid choice: 'frobnicate' (choose from 'demo', 'render', 'generate', 'train', "
        "'evaluate', 'probe-text', 'evaluate-t2i', 'ablate', 'bench')"),
    Row(OTHER_CLI, "probe-text-no-encoder", ("probe-text", "--checkpoint", "nowhere"), 2,
        "error: no text encoder in 'nowhere': give a pipeline folder holding text_encoder/ or a text_encoder folder"),
    Row(OTHER_CLI, "probe-text-too-few", ("probe-text", "--num-test", "3"), 2,
        "error: argument --num-test: '3' must be an integer >= 10"),
    Row(OTHER_CLI, "render-split-unknown", ("render", "--out", "clips", "--split", "test"), 2,
        "error: split 'test' is not one of 'train', 'val', 'heldout'"),
    Row(OTHER_CLI, "render-size-too-small", ("render", "--out", "clips", "--size", "4"), 2,
        "error: size 4 is not allowed; it must be an integer >= 8 (pixels)"),
    Row(OTHER_CLI, "demo-num-zero", ("demo", "--num", "0"), 2, "error: argument --num: '0' must be an integer >= 1"),
]
GROUPS = [DATA, MODELS, SCHED, CALL, FILES, TRAIN, GEN, TRAIN_CLI, BENCH, OTHER_CLI]


# -- the files rows start from (written into the row's empty working folder) ----------------------
def _tiny_gif(path: Path, frames: int = 1) -> None:
    from PIL import Image

    images = [Image.new("RGB", (16, 16), (40 * i, 0, 0)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:])


def _saved_unet(world: dict) -> Path:
    return world["unet"].save_pretrained("unet")


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}))


def _clips(captions: str | None, gif_frames: int | None = 1) -> None:
    Path("clips").mkdir()
    if gif_frames:
        _tiny_gif(Path("clips/a.gif"), gif_frames)
    if captions is not None:
        Path("clips/captions.txt").write_text(captions)


def _shipped_copy(*, without: str | None = None, own: str | None = None) -> Path:
    """pipe/: the shipped checkpoint by symlinks; ``own`` gets a real folder (its files linked) to edit."""
    folder = Path("pipe")
    folder.mkdir()
    for item in SHIPPED.iterdir():
        if item.name == without:
            continue
        if item.name == own:
            (folder / own).mkdir()
            for f in item.iterdir():
                (folder / own / f.name).symlink_to(f)
        else:
            (folder / item.name).symlink_to(item, target_is_directory=item.is_dir())
    return folder


def _replace(path: Path, text: str | bytes) -> None:
    path.unlink()  # it may be a symlink into the shipped checkpoint: never write through it
    path.write_bytes(text.encode() if isinstance(text, str) else text)


SETUPS = {
    "clips_without_captions": lambda w: _clips(None),
    "clips_space_separated": lambda w: _clips("a.gif a red circle moves right\n"),
    "clips_missing_clip": lambda w: _clips("a.gif\ta red circle moves right\nb.gif\ta blue square moves left\n"),
    "clips_junk_gif": lambda w: (_clips("a.gif\ta red circle moves right\n", None),
                                 Path("clips/a.gif").write_bytes(b"not a gif")),
    "clips_one_frame": lambda w: _clips("a.gif\ta red circle moves right\n", 1),
    "unet_saved": _saved_unet,
    "unet_without_weights": lambda w: (_saved_unet(w) / "model.safetensors").unlink(),
    "unet_junk_weights": lambda w: (_saved_unet(w) / "model.safetensors").write_bytes(b"junk" * 8),
    "unet_cut_config": lambda w: (_saved_unet(w) / "config.json").write_text('{"block_out_channels": [8, '),
    "unet_extra_key": lambda w: _edit_json(_saved_unet(w) / "config.json", colour="red"),
    "unet_list_config": lambda w: (_saved_unet(w) / "config.json").write_text("[1, 2]"),
    "unet_widened": lambda w: _edit_json(_saved_unet(w) / "config.json", block_out_channels=[8, 32]),
    "a_file": lambda w: Path("notes.txt").write_text("not a folder\n"),
    "pipe_without_keyframe_unet": lambda w: _shipped_copy(without="keyframe_unet"),
    "pipe_cut_index": lambda w: _replace(_shipped_copy(own=None) / "model_index.json", '{"_class_name": '),
    "pipe_junk_keyframe_weights": lambda w: _replace(
        _shipped_copy(own="keyframe_unet") / "keyframe_unet" / "model.safetensors", b"junk" * 8),
    "pipe_widened_keyframe_unet": lambda w: _widen(_shipped_copy(own="keyframe_unet") / "keyframe_unet"),
    "junk_checkpoint": lambda w: Path("step_000100.pt").write_bytes(b"junk" * 8),
    "foreign_checkpoint": lambda w: torch.save({"weights": torch.zeros(1)}, "other.pt"),
    "cut_training_config": lambda w: Path("training_config.json").write_text('{"steps": '),
    "cut_recipe": lambda w: Path("recipe.json").write_text('{"training": '),
    "recipe_unknown_key": lambda w: Path("recipe.json").write_text('{"training": {"learning_rate": 0.001}}'),
    "tiny_recipe": lambda w: Path("tiny.json").write_text(json.dumps(
        {"model": {"block_out_channels": [8, 16], "norm_groups": 4, "sample_size": 16},
         "training": {"batch_size": 2, "device": "cpu", "plot_loss": False},
         "data": {"num_clips": 2, "num_frames": 2, "frame_skip": 1, "size": 16}, "val_frames": 2,
         "scaling_frames": 2})),
    "earlier_run": lambda w: (Path("run/runs/autoencoder").mkdir(parents=True),
                              Path("run/runs/autoencoder/log.csv").write_text("step,loss\n")),
}


def _widen(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    _replace(folder / "config.json", json.dumps({**config, "block_out_channels": [32, 64, 256]}))


# -- running a row -------------------------------------------------------------------------------
@dataclass
class Outcome:
    error: BaseException | None  # what an API row raised (CLI: an exception that escaped main)
    code: int | None  # a CLI row's exit code
    text: str  # the error message, or stderr plus the warnings (CLI)
    caught: list[warnings.WarningMessage]  # every warning the row gave


def run_row(row: Row, world: dict) -> Outcome:
    if row.setup is not None:
        SETUPS[row.setup](world)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if row.where == API:
            try:
                eval(row.code, dict(world))  # noqa: S307 - the rows are this file's own code
            except Exception as e:
                return Outcome(e, None, str(e), caught)
            return Outcome(None, None, "", caught)
        stderr = io.StringIO()
        error, code = None, None
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(list(row.code))
            except SystemExit as e:  # argparse
                code = e.code
            except Exception as e:
                error = e
    text = stderr.getvalue() + "".join(f"\n{w.category.__name__}: {w.message}" for w in caught)
    return Outcome(error, code, str(error) if error is not None else text, caught)


def check(outcome: Outcome, expect, message: str) -> None:
    """``expect``: an exception class, a warning class (the call goes on), an exit code, or None (no error)."""
    if isinstance(expect, int):
        if outcome.error is not None:
            raise outcome.error
        assert outcome.code == expect, f"exit code {outcome.code}, not {expect}; stderr: {outcome.text}"
    elif expect is None or issubclass(expect, Warning):
        if outcome.error is not None:
            raise outcome.error
        if expect is None:
            return
        texts = [str(w.message) for w in outcome.caught if issubclass(w.category, expect)]
        assert any(pattern(message).search(t) for t in texts), f"no {expect.__name__} matching {message!r}: {texts}"
        return
    else:
        assert outcome.error is not None, f"no error; expected {expect.__name__}: {message}"
        assert type(outcome.error) is expect, f"{type(outcome.error).__name__}: {outcome.error}"
    assert pattern(message).search(outcome.text), f"{message!r} not in {outcome.text!r}"


@pytest.fixture(scope="module")
def world() -> dict:
    torch.manual_seed(0)
    names: dict = {}
    with pytest.MonkeyPatch.context() as m:
        m.delenv("MINIFUSION_CHECKPOINTS", raising=False)  # pipe = the shipped checkpoint, whatever the user set
        exec(WORLD, names)  # noqa: S102 - the names the doc shows
    return names


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINIFUSION_CHECKPOINTS", raising=False)
    return tmp_path


def _param(row: Row):
    marks = [pytest.mark.xfail(strict=True, reason=row.gap)] if row.gap else []
    return pytest.param(row, id=row.id, marks=marks)


@pytest.mark.parametrize("row", [_param(r) for r in ROWS])
def test_bad_input(row, world, in_tmp):
    check(run_row(row, world), row.expect, row.message)


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS if r.gap])
def test_gap_rows_behave_as_documented_today(row, world, in_tmp):
    outcome = run_row(row, world)
    if row.now is None:
        check(outcome, None, "")
    else:
        check(outcome, row.now, row.now_message)


def test_rows_are_well_formed():
    assert len({r.id for r in ROWS}) == len(ROWS), "duplicate ids"
    assert {r.group for r in ROWS} == set(GROUPS)
    for r in ROWS:
        assert (r.setup is None or r.setup in SETUPS) and bool(r.gap) == (r.now is not None or bool(r.now_message))
        assert "`" not in r.message + r.now_message + r.given, r.id  # they go inside `code` spans
        plain = r.given + (r.gap or "") + (r.now_message if r.now is None else "")  # shown outside code spans
        assert "<" not in plain, r.id  # markdown would take it for HTML


# -- the doc ---------------------------------------------------------------------------------------
def _kind(expect) -> str:
    if expect is None:
        return "no error"
    if isinstance(expect, int):
        return f"exit {expect}"
    return expect.__name__


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`"


def _shell(argv: tuple[str, ...]) -> str:
    def quote(a: str) -> str:
        return f'"{a}"' if not a or re.search(r"[^\w@%+=:,./-]", a) else a

    return " ".join(["python -m minifusion", *map(quote, argv)])


def _what_you_get(row: Row) -> str:
    def one(expect, message: str) -> str:
        if expect is not None and not isinstance(expect, int) and issubclass(expect, Warning):
            return f"{expect.__name__} (the call goes on): {_code(message)}"
        if isinstance(expect, int) and expect == 0 and message:
            return f"exit 0 (the command runs), with {_code(message)}"
        return f"{_kind(expect)}: {_code(message)}" if message else _kind(expect)

    if not row.gap:
        return one(row.expect, row.message)
    now = f"{_kind(row.now)}: {_code(row.now_message)}" if row.now is not None else _cell(row.now_message)
    return f"**gap**. Today {now}. Why: {_cell(row.gap)}. Wanted: {one(row.expect, row.message)}"


def render(rows: list[Row] = ROWS) -> str:
    gaps = [r for r in rows if r.gap]
    lines = [
        "# Bad inputs and what you get",
        "",
        f"{len(rows)} bad inputs to the Python API and the command line, with the error or warning each gets "
        "today. Every row is tried by `tests/test_bad_inputs.py`, and this file is generated from the rows there "
        "(`python tests/test_bad_inputs.py` rewrites it; a test fails if the two differ).",
        "",
        "How to read it:",
        "",
        "- **API** rows are Python expressions using the names below (tiny random models, so each runs in "
        "milliseconds; `pipe` is the shipped checkpoint). **CLI** rows are commands. Both run in an empty "
        "folder, holding only the files that *given* describes.",
        "- `…` marks where a message is abridged; everything else is the message word for word.",
        f"- **gap** rows ({len(gaps)}) are inputs whose error is not yet good: a traceback from inside torch, a "
        "silent correction, or a message that does not name the value and what is allowed. The row says what "
        "happens today and what the test wants; the test is marked `xfail(strict=True)`, so fixing one makes it "
        "fail until the row is moved to the wanted behaviour.",
        "- Unknown words in a prompt are not an error: they give a `UserWarning` naming them and are encoded as "
        "the unknown-word token `<unk>`.",
        "",
        "```python",
        WORLD.rstrip(),
        "```",
        "",
        "| where | bad input | what you get |",
        "| --- | --- | --- |",
    ]
    for group in GROUPS:
        lines.append(f"| **{group}** | | |")
        for r in (r for r in rows if r.group == group):
            code = _code(r.code if r.where == API else _shell(r.code))
            if r.given:
                code += f"<br>*given*: {_cell(r.given)}"
            lines.append(f"| {r.where} | {code} | {_what_you_get(r)} |")
    return "\n".join(lines) + "\n"


def test_doc_is_rendered_from_rows():
    assert DOC.is_file() and DOC.read_text() == render(), "docs/bad_inputs.md is stale: python tests/test_bad_inputs.py"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC} ({len(ROWS)} rows, {sum(1 for r in ROWS if r.gap)} gaps)", file=sys.stderr)
