"""Stage ``keyframes``: add temporal parts to the trained T2I U-Net and train only them on keyframe clips.

FusionFrames (arXiv 2311.13073, section 3.1, Table 1) builds its keyframe model from the
text-to-image U-Net: the spatial weights are frozen and only the new temporal layers or blocks
(and the frame-position embedding) are trained. Here, at toy scale:

- model: ``KeyframeUNet.from_t2i(OUT/unet, temporal=VARIANT)`` (one of the four variants of
  Table 1; default the released ``"conv1d_attn1d_blocks"``), ``freeze_spatial()``; the text
  encoder (``OUT/text_encoder``) is frozen too, so only temporal parts change;
- data: K = 8 keyframes at frame skip 4 of the source timeline (paper: 16 at every 12th frame)
  starting at a random source frame in 0..skip-1 of each Moving Shapes clip (drawn from
  (data seed, clip), so the latent cache stays valid); the model is told each keyframe's
  source position relative to its first keyframe, 0, 4, ..., 28, as the pipeline does at
  inference. ``--data`` clips are read from their first frame at ``folder_frame_skip``;
- objective: as the t2i stage (epsilon prediction, the t2i stage's cosine schedule from
  ``OUT/scheduler``, 10% caption dropout to the null embedding), on video latents
  (B, 4, 8, 16, 16) encoded once into a ``LatentCache``;
- motion check (``recipes/motion_check.py``; motion is learned long after
  appearance and the loss says nothing about it): every ``motion_check_every`` steps the EMA model samples the prompts
  ``a {color} {shape} moves {direction}`` through the pipeline's keyframe sampler, and the
  decoded keyframes are measured with ``minifusion.eval.pixel_metrics``: fraction with the
  prompted colour, fraction moving in the prompted direction (chance 1/8), background flicker.
  One row per check goes to ``runs/keyframes/motion.csv``; ``motion_samples.png`` shows the latest.

Writes ``OUT/keyframe_unet/`` (EMA weights) and ``OUT/model_index.json`` (latent range measured
on the training latents), so that the folder loads as a keyframes-only ``FusionFramesPipeline``.

Taught in notebook 08 (notebooks/08_keyframes.ipynb).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from minifusion.checks import check_int, check_number, positive_int
from minifusion.diffusion import DDIMScheduler, DDPMScheduler
from minifusion.diffusion.thresholding import sample_range_from_data
from minifusion.models.keyframe_unet import KeyframeUNet, check_temporal
from minifusion.models.text_encoder import TextEncoder
from minifusion.models.tokenizer import Tokenizer
from minifusion.models.unet import UNet
from minifusion.training.config import TrainingConfig
from minifusion.training.distributed import finish_stage
from minifusion.training.latent_cache import LatentCache, dataset_description
from minifusion.training.objectives.keyframes import LOSS_WEIGHTINGS, KeyframesTask
from minifusion.training.precision import resolve_device
from minifusion.training.randomness import seed_everything
from minifusion.training.recipes.common import (
    METRICS_NAME,
    DataOptions,
    build_clips,
    cache_dir,
    check_resumed_field,
    load_scheduler,
    prepare_recipe,
    run_dir,
    seconds_per_step,
    train_run,
    write_json,
)
from minifusion.training.recipes.motion_check import (  # noqa: F401  (re-exported)
    DEFAULT_MOTION_PROMPTS,
    MOTION_COLUMNS,
    MOTION_CSV,
    MotionCheck,
    motion_targets,
)
from minifusion.training.trainer import Trainer

STAGE = "keyframes"

def _default_training() -> TrainingConfig:
    return TrainingConfig(steps=3000, batch_size=8, lr=3e-4, warmup_steps=100, ema_decay=0.999, ema_warmup=True,
                          checkpoint_every=250, log_every=10, extra={"recipe": STAGE})


@dataclass
class KeyframesRecipe:
    temporal: str = "conv1d_attn1d_blocks"  # temporal variant (Table 1); CLI: --temporal
    temporal_head_dim: int | None = None  # channels per temporal-attention head; None = the U-Net's attention_head_dim
    attention_window: int = 2  # window side of "conv1d_attn3d_blocks"
    temporal_text_pooling: bool = True  # the temporal parts' own pooled text (KeyframeUNet docstring)
    # per-token text attention in the temporal parts at levels at most this many latent pixels on a side
    # (KeyframeUNet's temporal_text_attention_size; docs/motion.md); 0 = off, the paper's variants
    temporal_text_attention_size: int = 0
    temporal_text_per_frame: bool = False  # each keyframe reads the text through its own embedding (TemporalTextAttention)
    # full spatio-temporal attention at levels at most this many latent pixels on a side (0 = off), and in it
    # the text-conditioned motion bias (MotionBiasedAttention; docs/motion.md)
    spatiotemporal_attention_size: int = 0
    spatiotemporal_motion_bias: bool = False
    init_from: str | None = None  # a keyframe_unet folder to warm-start from (``warm_start``); None = T2I + fresh temporal parts
    training: TrainingConfig = field(default_factory=_default_training)
    data: DataOptions = field(default_factory=lambda: DataOptions(num_clips=4000))  # num_frames = keyframes K
    random_start: bool = True  # start each clip at a random source frame in 0..frame_skip-1 (Moving Shapes)
    caption_dropout: float = 0.1  # probability of training a sample with the null embedding (for guidance)
    loss_weighting: str = "epsilon"  # "epsilon" (plain noise MSE) or "v" (KeyframesTask: high noise weighs more)
    loss_weight_cap: float = 20.0  # "v": cap on the per-sample weight 1 / alpha_bar_t
    encode_batch_size: int = 16  # clips per autoencoder call when filling the latent cache
    latent_range_quantile: float = 0.999  # quantile of |latents| stored as the pipeline's latent_range
    motion_check_every: int = 250  # steps between motion checks; 0 = only the final one
    motion_prompts: tuple[str, ...] = DEFAULT_MOTION_PROMPTS  # each "a {color} {shape} moves {direction}"
    motion_samples_per_prompt: int = 2  # videos per prompt per check
    motion_num_inference_steps: int = 20  # DDIM steps per check
    motion_guidance_scale: float = 5.0  # classifier-free guidance s of the checks (1 = none)

    def validate(self) -> None:
        check_temporal(self.temporal)
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting {self.loss_weighting!r} is not allowed; it must be one of "
                             + ", ".join(map(repr, LOSS_WEIGHTINGS)))
        check_number("loss_weight_cap", self.loss_weight_cap, minimum=1)
        for name in ("random_start", "temporal_text_pooling", "temporal_text_per_frame", "spatiotemporal_motion_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} {getattr(self, name)!r} is not allowed; it must be true or false")
        if self.init_from is not None and not (Path(self.init_from) / "config.json").is_file():
            raise ValueError(f"init_from {self.init_from!r} is not a saved keyframe_unet folder (no config.json); "
                             "give a folder written by save_pretrained, e.g. OUT/keyframe_unet, or null")
        if self.temporal_head_dim is not None:
            positive_int("temporal_head_dim", self.temporal_head_dim, note="or None (the U-Net's attention_head_dim)")
        check_number("caption_dropout", self.caption_dropout, minimum=0, maximum=1, exclusive_maximum=True)
        check_number("latent_range_quantile", self.latent_range_quantile, minimum=0, maximum=1,
                     exclusive_minimum=True)
        for name, low in (("encode_batch_size", 1), ("motion_check_every", 0), ("motion_samples_per_prompt", 1),
                          ("motion_num_inference_steps", 1), ("attention_window", 1),
                          ("temporal_text_attention_size", 0), ("spatiotemporal_attention_size", 0)):
            check_int(name, getattr(self, name), minimum=low)
        if self.spatiotemporal_motion_bias and not self.spatiotemporal_attention_size:
            raise ValueError("spatiotemporal_motion_bias needs spatiotemporal_attention_size > 0 (the bias is added "
                             "to that attention)")
        check_number("motion_guidance_scale", self.motion_guidance_scale, minimum=0, note="(1 = no guidance)")
        motion_targets(self.motion_prompts)


# -- data ----------------------------------------------------------------------------------------
class KeyframeClips(Dataset):
    """Keyframe clips: K frames ``frame_skip`` source frames apart, from a random start.

    Item i is ``{"video": (C, K, H, W) in [-1, 1], "caption", "attributes"}``; for Moving Shapes
    the clip is rendered at source times ``start + k * frame_skip`` with ``start`` in
    0..frame_skip-1 drawn from (seed, i) (``attributes["start"]``), so item i is a pure function
    of i. Other datasets (``ClipFolder``) are returned as they are (start 0).
    """

    def __init__(self, clips: Dataset, *, random_start: bool = True, seed: int = 0) -> None:
        self.clips, self.random_start, self.seed = clips, bool(random_start), int(seed)
        self.num_frames = int(clips.num_frames)
        self.frame_skip = int(getattr(clips, "frame_skip", 1))

    def __len__(self) -> int:
        return len(self.clips)

    def start(self, index: int) -> int:
        if not self.random_start or not hasattr(self.clips, "clip_params"):
            return 0
        return int(np.random.default_rng((self.seed, 7, int(index))).integers(self.frame_skip))

    def __getitem__(self, index: int) -> dict:
        if not hasattr(self.clips, "clip_params"):
            item = self.clips[index]
            return {"video": item["video"], "caption": item["caption"], "attributes": dict(item.get("attributes") or {})}
        params = self.clips.clip_params(index)
        start = self.start(index)
        times = start + params.times  # (K,) source frames
        attributes = {**params.attributes, "start": start, "times": torch.from_numpy(times.astype(np.float32))}
        return {"video": self.clips.render(index, times), "caption": params.caption, "attributes": attributes}

    def fingerprint_fields(self) -> dict:
        """What defines the items (for ``LatentCache``), including a clip folder's files."""
        fields = {"clips": dataset_description(self.clips), "random_start": self.random_start, "seed": self.seed}
        if hasattr(self.clips, "entries"):  # ClipFolder: its path, files and captions
            fields["root"] = str(Path(self.clips.root).resolve())
            fields["files"] = [[p.name, caption, p.stat().st_mtime_ns if p.is_file() else 0]
                               for p, caption in self.clips.entries]
        return fields


class KeyframeCollate:
    """Cached-latent items -> {"latents": (B, C, K, h, w), "input_ids": (B, L), "attention_mask": (B, L)}."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: list[dict]) -> dict:
        input_ids, attention_mask = self.tokenizer([it["caption"] for it in items])
        return {"latents": torch.stack([it["latents"] for it in items]), "input_ids": input_ids,
                "attention_mask": attention_mask}


# -- training --------------------------------------------------------------------------------------


# -- the stage -------------------------------------------------------------------------------------
def _load_parts(out_dir: Path) -> tuple:
    from minifusion.models.autoencoder import Autoencoder

    needs = {"autoencoder": ("autoencoder", Autoencoder), "text_encoder": ("text_encoder", TextEncoder),
             "unet": ("t2i", UNet)}
    parts = []
    for name, (stage, cls) in needs.items():
        if not (out_dir / name / "config.json").is_file():
            raise ValueError(f"{str(out_dir / name)!r} is missing; the keyframes stage starts from the {stage} stage: "
                             f"python -m minifusion train {stage} --out {out_dir}")
        parts.append(cls.from_pretrained(out_dir / name))
    return (*parts, load_scheduler(out_dir, DDPMScheduler))


def train_keyframes(out_dir: str | Path, *, steps: int | None = None,
                    config: KeyframesRecipe | dict | str | Path | None = None, resume: bool = False,
                    data_dir: str | Path | None = None, seed: int | None = None, progress: bool = True,
                    temporal: str | None = None) -> Path:
    """Train the keyframes stage into ``out_dir`` (which must hold the autoencoder and t2i stages).

    Arguments as ``train_autoencoder``, plus ``temporal``: the temporal variant (overrides the
    recipe's; one of ``KeyframeUNet`` variants). Returns ``out_dir / "keyframe_unet"``.
    """
    if temporal is not None:
        check_temporal(temporal)
    out_dir, run = Path(out_dir), run_dir(out_dir, STAGE)
    recipe = prepare_recipe(KeyframesRecipe, STAGE, out_dir, config=config, steps=steps, resume=resume,
                            data_dir=data_dir, seed=seed, progress=progress)
    if temporal is not None:
        recipe.temporal = temporal
    check_resumed_field(run, recipe, "temporal", resume=resume)
    device = resolve_device(recipe.training.device)
    autoencoder, text_encoder, unet, scheduler = _load_parts(out_dir)
    autoencoder, text_encoder = autoencoder.to(device).eval(), text_encoder.to(device).eval()
    if scheduler.config["prediction_type"] != unet.config.prediction_type:
        raise ValueError(f"OUT/scheduler predicts {scheduler.config['prediction_type']!r} but OUT/unet was trained "
                         f"for {unet.config.prediction_type!r}; retrain the t2i stage")

    clips = KeyframeClips(build_clips(recipe.data), random_start=recipe.random_start, seed=recipe.data.seed)
    cache = LatentCache(cache_dir(out_dir), encode_fn=autoencoder.encode, encoder=autoencoder,
                        batch_size=recipe.encode_batch_size, device=device, progress=recipe.training.progress,
                        extra_fingerprint={"scaling_factor": autoencoder.scaling_factor})
    latents = cache.load_or_encode(clips)  # items {"latents": (C, K, h, w), "caption", "attributes"}
    if latents.captions is None:
        raise ValueError("the training clips have no captions; the keyframes stage needs one caption per clip")
    latent_range = sample_range_from_data(latents.latents, recipe.latent_range_quantile)
    num_keyframes, latent_size = int(latents.latents.shape[2]), int(latents.latents.shape[-1])
    frame_skip = recipe.data.frame_skip if recipe.data.folder is None else recipe.data.folder_frame_skip

    seed_everything(recipe.training.seed)  # the initial temporal weights depend on the seed only
    model = KeyframeUNet.from_t2i(unet, temporal=recipe.temporal, temporal_head_dim=recipe.temporal_head_dim,
                                  attention_window=recipe.attention_window, num_frames=num_keyframes,
                                  sample_size=latent_size, temporal_text_pooling=recipe.temporal_text_pooling,
                                  temporal_text_attention_size=recipe.temporal_text_attention_size,
                                  temporal_text_per_frame=recipe.temporal_text_per_frame,
                                  spatiotemporal_attention_size=recipe.spatiotemporal_attention_size,
                                  spatiotemporal_motion_bias=recipe.spatiotemporal_motion_bias)
    if recipe.init_from is not None and not resume:
        warm_start(model, recipe.init_from)
    model.freeze_spatial()
    positions = torch.arange(num_keyframes, dtype=torch.float32) * frame_skip  # (K,) 0, 4, ..., 28
    task = KeyframesTask(scheduler, text_encoder, frame_positions=positions, caption_dropout=recipe.caption_dropout,
                         loss_weighting=recipe.loss_weighting, loss_weight_cap=recipe.loss_weight_cap)

    from minifusion.pipelines import PipelineSettings

    settings = PipelineSettings(latent_range=latent_range, keyframe_frame_skip=frame_skip)
    check = _motion_check(recipe, autoencoder, text_encoder, settings, out_dir, run, num_keyframes)
    callbacks = [check] if check is not None and recipe.motion_check_every > 0 else []
    trainer = Trainer(model, task, latents, recipe.training, run, collate_fn=KeyframeCollate(text_encoder.tokenizer),
                      callbacks=callbacks)
    result, seconds = train_run(trainer, recipe, run, resume=resume)
    if not trainer.is_main:  # under torchrun rank 0 alone writes the stage's files; the others wait for it
        return finish_stage(out_dir / "keyframe_unet")
    if result.model_dir is None:
        raise RuntimeError(f"training stopped at step {result.step} of {recipe.training.steps}")

    from minifusion.pipeline import FusionFramesPipeline
    from minifusion.pipelines import write_model_index

    final = KeyframeUNet.from_pretrained(result.model_dir).save_pretrained(out_dir / "keyframe_unet")  # EMA weights
    write_model_index(out_dir, latent_range=latent_range, keyframe_frame_skip=frame_skip)
    pipe = FusionFramesPipeline.from_pretrained(out_dir, device=device)  # the folder must load as a pipeline
    metrics = {"stage": STAGE, "step": result.step, "last_loss": result.last_loss, "session_seconds": seconds,
               "seconds_per_step": seconds_per_step(run / "log.csv"),
               "train_clips": len(latents), "temporal": recipe.temporal, "latent_range": latent_range,
               "trainable_parameters": sum(p.numel() for p in model.temporal_parameters()),
               "parameters": sum(p.numel() for p in model.parameters())}
    if check is not None:
        report = check.last_report  # the callback measured the same EMA weights at the last step
        if report is None or report["step"] != result.step:
            report = check.check(pipe.keyframe_unet, result.step)
        metrics["motion"] = {k: report[k] for k in MOTION_COLUMNS}
    write_json(run / METRICS_NAME, metrics)
    if recipe.training.progress:
        print(f"keyframes ({recipe.temporal}): step {result.step}, last loss {result.last_loss:.4g}; "
              f"latent range {latent_range:.3f}; -> {final}")
    return finish_stage(final)


def warm_start(model: KeyframeUNet, folder: str | Path) -> list[str]:
    """Copy a saved keyframe U-Net's weights into ``model``; returns the names it did not have.

    For continuing a trained model with an added part (e.g. ``temporal_text_pooling``): the
    saved model must be the same temporal variant and built on the same T2I weights (its spatial
    weights must equal ``model``'s); parameters the saved model lacks keep their fresh init.
    """
    source = KeyframeUNet.from_pretrained(folder)
    if source.config.temporal != model.config.temporal:
        raise ValueError(f"init_from {str(folder)!r} is a {source.config.temporal!r} model; this run trains "
                         f"{model.config.temporal!r}")
    own = model.state_dict()
    state = source.state_dict()
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise ValueError(f"init_from {str(folder)!r} has parameters this model lacks: {unexpected[:5]}")
    changed = [k for k, v in state.items() if not model.is_new_parameter(k) and not torch.equal(v, own[k])]
    if changed:
        raise ValueError(f"init_from {str(folder)!r} was not built on this run's T2I U-Net (OUT/unet): its spatial "
                         f"weights differ, e.g. {changed[:3]}")
    model.load_state_dict(state, strict=False)
    return sorted(set(own) - set(state))


def _motion_check(recipe: KeyframesRecipe, autoencoder, text_encoder: TextEncoder, settings, out_dir: Path, run: Path,
                  num_keyframes: int) -> MotionCheck | None:
    """The motion check of the recipe, or None when its prompts use words the text encoder does not know."""
    unknown = text_encoder.tokenizer.unknown_words(list(recipe.motion_prompts))
    if unknown:
        warnings.warn(f"motion check disabled: the motion prompts use words the text encoder does not know "
                      f"({unknown}); set motion_prompts to captions of your data", UserWarning, stacklevel=3)
        return None
    return MotionCheck(every_n_steps=recipe.motion_check_every, autoencoder=autoencoder, text_encoder=text_encoder,
                       scheduler=load_scheduler(out_dir, DDIMScheduler), settings=settings,
                       prompts=recipe.motion_prompts, samples_per_prompt=recipe.motion_samples_per_prompt,
                       num_inference_steps=recipe.motion_num_inference_steps,
                       guidance_scale=recipe.motion_guidance_scale, num_keyframes=num_keyframes,
                       seed=recipe.training.seed, run=run, verbose=recipe.training.progress)


__all__ = ["DEFAULT_MOTION_PROMPTS", "KeyframeClips", "KeyframeCollate", "KeyframesRecipe", "KeyframesTask",
           "MotionCheck", "motion_targets", "train_keyframes"]
