"""Stage ``t2i``: train the text-to-image U-Net on single frames, conditioned on the frozen text encoder.

FusionFrames (arXiv 2311.13073, section 3) starts from a text-to-image model (Kandinsky 3.0)
conditioned on a frozen language model; its keyframe model reuses the T2I U-Net's spatial
weights. Here the T2I model is trained from scratch at toy scale, in latent space (Rombach et
al. 2022):

- frames: one random frame of each clip, encoded once with the trained autoencoder
  (``OUT/autoencoder``) into a ``LatentCache``: (B, 4, 1, 16, 16) scaled latents;
- text: the ``text_encoder`` stage's encoder (``OUT/text_encoder``), trained on the captions
  alone and **frozen** here, as the paper freezes Flan-UL2: only the U-Net learns. (Trained
  jointly on still frames, an encoder drops the words a still frame cannot show, such as the
  direction of motion, and no later stage could get them back.) Its vocabulary must cover the
  training captions' words;
- objective (Ho et al. 2020, eq. 14): epsilon prediction, cosine schedule
  ("squaredcos_cap_v2", Nichol and Dhariwal 2021), MSE on the target; per sample, in this
  order, a timestep, noise, and the 10% caption dropout (Ho and Salimans 2022) whose dropped
  captions get the text encoder's null embedding (a fixed token the U-Net learns to read as
  "no text").

Writes ``OUT/unet/`` (EMA weights), ``OUT/scheduler/scheduler_config.json`` and ``OUT/runs/t2i/``
(with ``samples.png``: guided DDIM samples for a few fixed prompts). ``sample_t2i`` draws images
from those parts (used for the grid and by notebook 06).

Taught in notebook 06 (notebooks/06_text_to_image.ipynb).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from minifusion.checks import check_number, positive_int
from minifusion.diffusion import DDIMScheduler, DDPMScheduler, classifier_free_guidance, sample_loop
from minifusion.models.autoencoder import Autoencoder
from minifusion.models.text_encoder import TextEncoder
from minifusion.models.tokenizer import Tokenizer
from minifusion.models.unet import UNet, UNetConfig
from minifusion.training.config import TrainingConfig
from minifusion.training.distributed import finish_stage
from minifusion.training.latent_cache import LatentCache
from minifusion.training.objectives.t2i import T2ITask
from minifusion.training.precision import resolve_device
from minifusion.training.randomness import seed_everything
from minifusion.training.recipes.common import (
    METRICS_NAME,
    DataOptions,
    FrameDataset,
    build_clips,
    cache_dir,
    load_scheduler,
    prepare_recipe,
    run_dir,
    save_scheduler_config,
    train_run,
    write_json,
)
from minifusion.training.trainer import Trainer

STAGE = "t2i"
DEFAULT_PROMPTS = ("a red circle moves right", "a blue square moves left", "a green triangle moves up",
                   "a yellow star moves down")


def _default_training() -> TrainingConfig:
    return TrainingConfig(steps=3000, batch_size=32, lr=3e-4, warmup_steps=100, ema_decay=0.999, ema_warmup=True,
                          checkpoint_every=500, log_every=10, extra={"recipe": STAGE})


@dataclass
class T2IRecipe:
    unet: UNetConfig = field(default_factory=UNetConfig)  # cross_attention_dim must equal the text encoder's width
    training: TrainingConfig = field(default_factory=_default_training)
    data: DataOptions = field(default_factory=lambda: DataOptions(num_clips=5000))  # one frame per clip
    caption_dropout: float = 0.1  # probability of training a sample with the null embedding (for guidance)
    beta_schedule: str = "squaredcos_cap_v2"  # noise schedule of training and sampling
    num_train_timesteps: int = 1000  # diffusion steps T
    encode_batch_size: int = 64  # frames per autoencoder call when filling the latent cache
    sample_prompts: tuple[str, ...] = DEFAULT_PROMPTS  # prompts of samples.png (MovingShapes; --data: its captions)
    samples_per_prompt: int = 4  # images per prompt in samples.png
    num_inference_steps: int = 25  # DDIM steps for samples.png
    guidance_scale: float = 5.0  # classifier-free guidance s (diffusers convention; 1 = none) for samples.png

    def validate(self) -> None:
        check_number("caption_dropout", self.caption_dropout, minimum=0, maximum=1, exclusive_maximum=True)
        for name in ("samples_per_prompt", "num_inference_steps", "encode_batch_size"):
            positive_int(name, getattr(self, name))
        if not self.sample_prompts or not all(isinstance(p, str) and p for p in self.sample_prompts):
            raise ValueError(f"sample_prompts {self.sample_prompts!r} must be a non-empty list of prompts")
        DDPMScheduler(beta_schedule=self.beta_schedule, num_train_timesteps=self.num_train_timesteps,
                      prediction_type=self.unet.prediction_type)  # validates the three


# -- training --------------------------------------------------------------------------------------
class CaptionCollate:
    """Cached-latent items -> {"latents": (B, C, h, w), "input_ids": (B, L), "attention_mask": (B, L)}."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: list[dict]) -> dict:
        latents = torch.stack([it["latents"][:, 0] for it in items])  # (B, C, 1, h, w) -> (B, C, h, w)
        input_ids, attention_mask = self.tokenizer([it["caption"] for it in items])
        return {"latents": latents, "input_ids": input_ids, "attention_mask": attention_mask}


def _load_autoencoder(out_dir: Path) -> Autoencoder:
    folder = out_dir / "autoencoder"
    if not (folder / "config.json").is_file():
        raise ValueError(f"{str(folder)!r} holds no trained autoencoder; train the autoencoder stage first: "
                         f"python -m minifusion train autoencoder --out {out_dir}")
    return Autoencoder.from_pretrained(folder)


def load_frozen_text_encoder(out_dir: Path, captions: list[str] | None = None) -> TextEncoder:
    """``OUT/text_encoder`` (the text_encoder stage), checked to know every word of ``captions``."""
    folder = out_dir / "text_encoder"
    if not (folder / "config.json").is_file():
        raise ValueError(f"{str(folder)!r} holds no trained text encoder; train the text_encoder stage first: "
                         f"python -m minifusion train text_encoder --out {out_dir}")
    encoder = TextEncoder.from_pretrained(folder)
    unknown = encoder.tokenizer.unknown_words(list(dict.fromkeys(captions))) if captions else []
    if unknown:
        raise ValueError(f"the text encoder in {str(folder)!r} does not know the training captions' words "
                         f"{unknown[:10]}; train the text_encoder stage on these captions (--data)")
    return encoder


def train_t2i(out_dir: str | Path, *, steps: int | None = None, config: T2IRecipe | dict | str | Path | None = None,
              resume: bool = False, data_dir: str | Path | None = None, seed: int | None = None,
              progress: bool = True) -> Path:
    """Train the t2i stage into the pipeline folder ``out_dir`` (which must hold ``text_encoder/`` and ``autoencoder/``).

    Arguments as ``train_autoencoder``. Returns ``out_dir / "unet"``.
    """
    recipe = prepare_recipe(T2IRecipe, STAGE, out_dir, config=config, steps=steps, resume=resume,
                            data_dir=data_dir, seed=seed, progress=progress)
    out_dir, run = Path(out_dir), run_dir(out_dir, STAGE)
    device = resolve_device(recipe.training.device)
    autoencoder = _load_autoencoder(out_dir).to(device).eval()
    frames = FrameDataset(build_clips(recipe.data), frames_per_clip=1, seed=recipe.data.seed)
    cache = LatentCache(cache_dir(out_dir), encode_fn=autoencoder.encode, encoder=autoencoder,
                        batch_size=recipe.encode_batch_size, device=device, progress=recipe.training.progress,
                        extra_fingerprint={"scaling_factor": autoencoder.scaling_factor})
    latents = cache.load_or_encode(frames)  # items {"latents": (C, 1, h, w), "caption", ...}
    if latents.captions is None:
        raise ValueError("the training clips have no captions; the t2i stage needs one caption per clip")
    text_encoder = load_frozen_text_encoder(out_dir, latents.captions).to(device)
    if recipe.unet.cross_attention_dim != text_encoder.config.hidden_size:
        raise ValueError(f"unet.cross_attention_dim {recipe.unet.cross_attention_dim} must equal the text encoder's "
                         f"hidden_size {text_encoder.config.hidden_size} (the U-Net attends to its tokens)")
    seed_everything(recipe.training.seed)  # the initial weights depend on the seed only
    # sample_size only feeds example_inputs and sampling: it is the latents' size, whatever the config said.
    unet = UNet(dataclasses.replace(recipe.unet, sample_size=int(latents.latents.shape[-1])))
    scheduler = DDPMScheduler(num_train_timesteps=recipe.num_train_timesteps, beta_schedule=recipe.beta_schedule,
                              prediction_type=recipe.unet.prediction_type)
    task = T2ITask(scheduler, text_encoder, caption_dropout=recipe.caption_dropout)
    trainer = Trainer(unet, task, latents, recipe.training, run,
                      collate_fn=CaptionCollate(text_encoder.tokenizer))
    result, seconds = train_run(trainer, recipe, run, resume=resume)
    if not trainer.is_main:  # under torchrun rank 0 alone writes the stage's files; the others wait for it
        return finish_stage(out_dir / "unet")
    if result.model_dir is None:
        raise RuntimeError(f"training stopped at step {result.step} of {recipe.training.steps}")

    unet = UNet.from_pretrained(result.model_dir)  # EMA weights
    final = unet.save_pretrained(out_dir / "unet")
    save_scheduler_config(scheduler, out_dir)

    prompts = list(recipe.sample_prompts) if recipe.data.folder is None else \
        list(dict.fromkeys(latents.captions))[: len(recipe.sample_prompts)]
    grid = save_sample_grid(unet.to(device), text_encoder.to(device), autoencoder, prompts, run / "samples.png",
                            samples_per_prompt=recipe.samples_per_prompt,
                            num_inference_steps=recipe.num_inference_steps, guidance_scale=recipe.guidance_scale,
                            scheduler=DDIMScheduler.from_config(scheduler.config), seed=recipe.training.seed)
    write_json(run / METRICS_NAME, {"stage": STAGE, "step": result.step, "last_loss": result.last_loss,
                                    "session_seconds": seconds, "train_frames": len(latents),
                                    "vocab_size": text_encoder.tokenizer.vocab_size, "samples": str(grid)})
    if recipe.training.progress:
        print(f"t2i: step {result.step}, last loss {result.last_loss:.4g}; samples {grid}; -> {out_dir}")
    return finish_stage(final)


# -- sampling --------------------------------------------------------------------------------------
@torch.no_grad()
def sample_t2i(unet: UNet, text_encoder: TextEncoder, autoencoder: Autoencoder, prompts: str | list[str], *,
               scheduler=None, num_inference_steps: int = 25, guidance_scale: float = 5.0,
               generator: torch.Generator | None = None, latent_size: int | None = None,
               progress: bool = False) -> torch.Tensor:
    """Images for ``prompts``: DDIM with classifier-free guidance in latent space, then decode.

    Args:
        scheduler: a sampler (``DDIMScheduler`` by default, cosine schedule, the U-Net's prediction type).
        guidance_scale: s of ``uncond + s * (cond - uncond)`` (1 = no guidance; the null embedding is uncond).
        generator: a CPU generator for the starting noise (reproducible on any device).
        latent_size: latent height = width (default ``unet.config.sample_size``).

    Returns:
        (B, 3, H, W) frames clamped to [-1, 1], B = number of prompts.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    device = next(unet.parameters()).device
    unet.eval(), text_encoder.eval(), autoencoder.eval()
    if scheduler is None:
        scheduler = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=unet.config.prediction_type)
    size = latent_size or unet.config.sample_size
    b = len(prompts)
    cond, cond_mask = text_encoder.encode(prompts)  # (B, L, D), (B, L)
    uncond, uncond_mask = text_encoder.null_embedding(b)
    guided = guidance_scale != 1.0
    text = torch.cat([cond, uncond.to(cond)]) if guided else cond  # (2B or B, L, D)
    text_mask = torch.cat([cond_mask, uncond_mask.to(cond_mask.device)]) if guided else cond_mask
    noise = torch.randn((b, unet.config.in_channels, size, size), generator=generator).to(device)
    text, text_mask = text.to(device), text_mask.to(device)

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = unet(torch.cat([x, x]) if guided else x, t, text, text_mask)
        if not guided:
            return out
        out_cond, out_uncond = out.chunk(2)
        return classifier_free_guidance(out_uncond, out_cond, guidance_scale)

    # generator: the starting noise only (a stochastic scheduler draws its step noise from torch's global one)
    x = sample_loop(model_fn, scheduler, noise, num_inference_steps=num_inference_steps, progress=progress).sample
    return autoencoder.decode(x.to(next(autoencoder.parameters()).device)).clamp(-1, 1)


def load_t2i(out_dir: str | Path, *, device: str | torch.device = "cpu") -> dict:
    """The trained parts of a pipeline folder: autoencoder, text_encoder, unet and a DDIM scheduler."""
    out_dir = Path(out_dir)
    parts = {"autoencoder": _load_autoencoder(out_dir)}
    for name, cls in (("text_encoder", TextEncoder), ("unet", UNet)):
        if not (out_dir / name / "config.json").is_file():
            stage = "t2i" if name == "unet" else name
            raise ValueError(f"{str(out_dir / name)!r} is missing; train the {stage} stage first: "
                             f"python -m minifusion train {stage} --out {out_dir}")
        parts[name] = cls.from_pretrained(out_dir / name)
    parts = {k: v.to(device).eval() for k, v in parts.items()}
    parts["scheduler"] = load_scheduler(out_dir, DDIMScheduler)
    return parts


def save_sample_grid(unet: UNet, text_encoder: TextEncoder, autoencoder: Autoencoder, prompts: list[str],
                     path: str | Path, *, samples_per_prompt: int = 4, seed: int = 0, **sample_kwargs) -> Path:
    """A PNG with one row per prompt of ``samples_per_prompt`` guided samples; returns its path."""
    from minifusion.viz import show_frames

    generator = torch.Generator().manual_seed(seed)
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    images = sample_t2i(unet, text_encoder, autoencoder, repeated, generator=generator, **sample_kwargs).cpu()
    rows = images.reshape(len(prompts), samples_per_prompt, *images.shape[1:])  # (P, S, C, H, W)
    scale = sample_kwargs.get("guidance_scale", 5.0)
    fig = show_frames({f"{p}  (s={scale:g}, seed {seed})": rows[i].transpose(0, 1)  # (C, S, H, W)
                       for i, p in enumerate(prompts)}, labels=[f"#{k}" for k in range(samples_per_prompt)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
