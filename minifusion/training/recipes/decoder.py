"""Stage ``decoder``: fine-tune a temporal video decoder from the trained image autoencoder.

FusionFrames (arXiv 2311.13073, section 3.3, Table 3) decodes videos either with the image
decoder (frame by frame) or with a decoder that has temporal layers - 3x1x1 or 3x3x3
convolutions, optionally temporal attention, alpha-merged and starting as the identity -
fine-tuned on 8-frame clips with the encoder frozen; 3x3x3 conv + attention was best (PSNR
33.84 vs 32.97 for the image decoder). Here, at toy scale:

- model: ``Autoencoder.from_image_autoencoder(OUT/autoencoder, ...)`` for ``variant`` one of
  "conv1d", "conv3d", "conv1d_attn", "conv3d_attn" (default "conv3d_attn", the paper's best);
  only the temporal layers train (``train_spatial=True`` also fine-tunes the decoder's spatial
  layers); the encoder is always frozen, so the latents stay those the diffusion models know;
- data: 8-frame clips at frame skip 1 of Moving Shapes (or ``--data DIR``), each encoded by the
  frozen encoder on the fly (``(B, 3, 8, 64, 64) -> (B, 4, 8, 16, 16)``) and decoded by the
  video decoder, which sees all 8 frames at once;
- loss on the decoded frames, as the autoencoder stage:
  ``mse_weight * MSE + l1_weight * L1 + gradient_weight * L1(image gradients)
  + temporal_gradient_weight * L1(frame-to-frame differences)``;
- evaluation (``evaluate_decoders``): image decoder vs video decoder on held-out clips (the
  Moving Shapes "heldout" split; the training folder with ``--data``): PSNR, SSIM, flicker ratio
  and temporal error from ``minifusion.eval.video_metrics``.

Writes ``OUT/video_decoder/`` (EMA weights, the autoencoder's ``scaling_factor``), re-writes
``OUT/model_index.json`` (keeping its settings; the pipeline then decodes with the video
decoder), and ``OUT/runs/decoder/`` with ``metrics.json`` and ``compare.png``.

Taught in notebook 10 (notebooks/10_video_decoder.ipynb).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from minifusion.checks import check_number, positive_int
from minifusion.eval.video_metrics import reconstruction_report
from minifusion.models.autoencoder import Autoencoder
from minifusion.training.config import TrainingConfig
from minifusion.training.distributed import finish_stage
from minifusion.training.objectives.decoder import DecoderTask, temporal_gradient_l1
from minifusion.training.precision import resolve_device
from minifusion.training.randomness import seed_everything
from minifusion.training.recipes.common import (
    METRICS_NAME,
    DataOptions,
    build_clips,
    check_resumed_field,
    prepare_recipe,
    run_dir,
    seconds_per_step,
    spread_indices,
    train_run,
    write_json,
)
from minifusion.training.trainer import Trainer

STAGE = "decoder"
COMPONENT = "video_decoder"
# variant -> (decoder_temporal, decoder_temporal_attention); FusionFrames Table 3
VARIANTS: dict[str, tuple[str, bool]] = {
    "conv1d": ("conv1d", False),
    "conv3d": ("conv3d", False),
    "conv1d_attn": ("conv1d", True),
    "conv3d_attn": ("conv3d", True),
}


def check_variant(variant: object) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"decoder variant {variant!r} is not one of {', '.join(map(repr, VARIANTS))}")
    return variant  # type: ignore[return-value]


def _default_training() -> TrainingConfig:
    return TrainingConfig(steps=600, batch_size=4, lr=1e-3, warmup_steps=50, ema_decay=0.995, ema_warmup=True,
                          checkpoint_every=200, log_every=10, extra={"recipe": STAGE})


@dataclass
class DecoderRecipe:
    variant: str = "conv3d_attn"  # temporal layers: "conv1d", "conv3d", "conv1d_attn", "conv3d_attn"; CLI: --variant
    train_spatial: bool = False  # also fine-tune the decoder's spatial layers (the encoder stays frozen)
    temporal_attention_head_dim: int | None = None  # width of a temporal attention head; None = the autoencoder's
    training: TrainingConfig = field(default_factory=_default_training)  # optimiser, steps, batch (clips), EMA, ...
    data: DataOptions = field(default_factory=lambda: DataOptions(num_clips=4000, num_frames=8, frame_skip=1))
    mse_weight: float = 1.0  # weight of the mean squared error of the decoded frames
    l1_weight: float = 0.1  # weight of their mean absolute error
    gradient_weight: float = 0.0  # weight of the L1 error of horizontal/vertical pixel differences (edges)
    temporal_gradient_weight: float = 0.0  # weight of the L1 error of frame-to-frame differences (flicker)
    eval_clips: int = 32  # held-out clips for the image vs video decoder comparison
    latent_range_quantile: float = 0.999  # for a model_index.json written by this stage (see train_decoder)

    def validate(self) -> None:
        check_variant(self.variant)
        if not isinstance(self.train_spatial, bool):
            raise ValueError(f"train_spatial {self.train_spatial!r} is not allowed; it must be true or false")
        head = self.temporal_attention_head_dim
        if head is not None:
            positive_int("temporal_attention_head_dim", head, note="or None (the autoencoder's)")
        weights = ("mse_weight", "l1_weight", "gradient_weight", "temporal_gradient_weight")
        for name in weights:
            check_number(name, getattr(self, name), minimum=0)
        if sum(getattr(self, n) for n in weights) == 0:
            raise ValueError(f"{', '.join(weights)} are all 0: there is no reconstruction loss")
        positive_int("eval_clips", self.eval_clips)
        check_number("latent_range_quantile", self.latent_range_quantile, minimum=0, maximum=1,
                     exclusive_minimum=True)
        if self.data.num_frames < 2:
            raise ValueError(f"data.num_frames {self.data.num_frames!r} is not allowed; a video decoder trains on "
                             "clips of at least 2 frames (FusionFrames: 8)")


def build_video_decoder(autoencoder: Autoencoder, variant: str = "conv3d_attn", *,
                        temporal_attention_head_dim: int | None = None, train_spatial: bool = False) -> Autoencoder:
    """The image ``autoencoder`` with identity-initialised temporal decoder layers, frozen for fine-tuning.

    The encoder is frozen; so are the decoder's spatial layers unless ``train_spatial``.
    """
    temporal, attention = VARIANTS[check_variant(variant)]
    model = Autoencoder.from_image_autoencoder(autoencoder, decoder_temporal=temporal,
                                               decoder_temporal_attention=attention,
                                               temporal_attention_head_dim=temporal_attention_head_dim)
    return model.freeze_encoder() if train_spatial else model.freeze_spatial()


# -- data and loss ---------------------------------------------------------------------------------
def collate_clips(items: list[dict]) -> dict:
    """Clip items -> {"video": (B, C, F, H, W)} (captions and attributes dropped)."""
    return {"video": torch.stack([it["video"] for it in items])}


# -- evaluation ------------------------------------------------------------------------------------
def evaluation_clips(recipe: DecoderRecipe, train_clips: Dataset) -> tuple[torch.Tensor, str]:
    """(N, C, F, H, W) clips for the comparison and where they come from."""
    data = recipe.data
    if data.folder is not None:  # a user's folder has no held-out split: say so
        indices = spread_indices(len(train_clips), recipe.eval_clips)
        return torch.stack([train_clips[i]["video"] for i in indices]), "training folder"
    from minifusion.data import MovingShapes

    heldout = MovingShapes(split="heldout", num_frames=data.num_frames, size=data.size, frame_skip=data.frame_skip,
                           seed=data.seed, length=recipe.eval_clips, backgrounds=data.backgrounds)
    return torch.stack([heldout[i]["video"] for i in range(len(heldout))]), "Moving Shapes heldout split"


@torch.no_grad()
def reconstruct(autoencoder: Autoencoder, clips: torch.Tensor, *, batch_size: int = 8) -> torch.Tensor:
    """``autoencoder(clips)`` for clips (N, C, F, H, W), a few clips at a time, on the model's device, to the CPU."""
    param = next(autoencoder.parameters())
    autoencoder.eval()
    return torch.cat([autoencoder(part.to(param.device, param.dtype)).float().cpu()
                      for part in clips.split(batch_size)])


def evaluate_decoders(image_autoencoder: Autoencoder, video_autoencoder: Autoencoder,
                      clips: torch.Tensor) -> dict[str, dict]:
    """``reconstruction_report`` of both decoders on ``clips`` (N, C, F, H, W) in [-1, 1], plus the reconstructions."""
    out = {}
    for name, model in (("image_decoder", image_autoencoder), ("video_decoder", video_autoencoder)):
        recon = reconstruct(model, clips)
        out[name] = {"report": reconstruction_report(recon, clips), "reconstruction": recon}
    return out


def save_comparison(clips: torch.Tensor, results: dict[str, dict], path: str | Path, *, num_clips: int = 2) -> Path:
    """A PNG of a few clips: ground truth, both decoders, and the error of each decoder's frame-to-frame change."""
    import matplotlib.pyplot as plt

    from minifusion.viz import show_frames

    rows = {}
    for k in range(min(num_clips, clips.shape[0])):
        x = clips[k]  # (C, F, H, W)
        rows[f"clip {k}: ground truth"] = x
        for name, res in results.items():
            label = name.replace("_", " ")
            rows[f"clip {k}: {label} ({res['report']['psnr_db']:.1f} dB on all clips)"] = res["reconstruction"][k]
        for name, res in results.items():
            recon = res["reconstruction"][k].clamp(-1, 1)
            # (C, F - 1, H, W) in colour units [0, 1]; shown 4x brighter (black = no error)
            error = ((recon[:, 1:] - recon[:, :-1]) - (x[:, 1:] - x[:, :-1])).abs() / 2
            rows[f"clip {k}: {name.replace('_', ' ')}, error of the change from frame t to t+1 (x4)"] = 8 * error - 1
    fig = show_frames(rows, value_range=(-1, 1), clip=True)
    path = Path(path)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


# -- the stage -------------------------------------------------------------------------------------
def _load_autoencoder(out_dir: Path) -> Autoencoder:
    folder = out_dir / "autoencoder"
    if not (folder / "config.json").is_file():
        raise ValueError(f"{str(folder)!r} is missing; the decoder stage fine-tunes the trained autoencoder: "
                         f"python -m minifusion train autoencoder --out {out_dir}")
    autoencoder = Autoencoder.from_pretrained(folder)
    if autoencoder.is_temporal:
        raise ValueError(f"{str(folder)!r} already has a temporal decoder ({autoencoder.config.decoder_temporal!r}); "
                         "the decoder stage starts from the image autoencoder")
    return autoencoder


@torch.no_grad()
def _latent_range(autoencoder: Autoencoder, clips: Dataset, quantile: float, *, count: int = 16) -> float:
    """The scaled latents' range (for a model_index.json written by this stage) on up to ``count`` clips."""
    from minifusion.diffusion.thresholding import sample_range_from_data

    param = next(autoencoder.parameters())
    videos = torch.stack([clips[i]["video"] for i in spread_indices(len(clips), count)])  # (N, C, F, H, W)
    latents = torch.cat([autoencoder.encode(v.to(param.device)) for v in videos.split(8)])
    return sample_range_from_data(latents.float().cpu(), quantile)


def train_decoder(out_dir: str | Path, *, steps: int | None = None,
                  config: DecoderRecipe | dict | str | Path | None = None, resume: bool = False,
                  data_dir: str | Path | None = None, seed: int | None = None, progress: bool = True,
                  variant: str | None = None) -> Path:
    """Fine-tune a video decoder into ``out_dir`` (which must hold the autoencoder stage).

    Arguments as ``train_autoencoder``, plus ``variant``: the temporal decoder (overrides the
    recipe's; one of ``VARIANTS``). Returns ``out_dir / "video_decoder"``. ``model_index.json``
    is re-written keeping its settings; if there is none yet, one is written with the latent range
    measured on training clips (the keyframes stage replaces it with its own measurement).
    """
    if variant is not None:
        check_variant(variant)
    out_dir, run = Path(out_dir), run_dir(out_dir, STAGE)
    image_autoencoder = _load_autoencoder(out_dir)  # before anything is written
    recipe = prepare_recipe(DecoderRecipe, STAGE, out_dir, config=config, steps=steps, resume=resume,
                            data_dir=data_dir, seed=seed, progress=progress)
    if variant is not None:
        recipe.variant = variant
    check_resumed_field(run, recipe, "variant", resume=resume)
    if recipe.data.size % image_autoencoder.downsampling_factor:
        raise ValueError(f"data.size {recipe.data.size} is not divisible by the autoencoder's downsampling factor "
                         f"{image_autoencoder.downsampling_factor}")
    device = resolve_device(recipe.training.device)

    clips = build_clips(recipe.data)  # items {"video": (C, F, H, W)}
    seed_everything(recipe.training.seed)  # the initial temporal weights depend on the seed only
    model = build_video_decoder(image_autoencoder, recipe.variant,
                                temporal_attention_head_dim=recipe.temporal_attention_head_dim,
                                train_spatial=recipe.train_spatial)
    task = DecoderTask(mse_weight=recipe.mse_weight, l1_weight=recipe.l1_weight, gradient_weight=recipe.gradient_weight,
                       temporal_gradient_weight=recipe.temporal_gradient_weight)
    trainer = Trainer(model, task, clips, recipe.training, run, collate_fn=collate_clips)
    result, seconds = train_run(trainer, recipe, run, resume=resume)
    if not trainer.is_main:  # under torchrun rank 0 alone writes the stage's files; the others wait for it
        return finish_stage(out_dir / COMPONENT)
    if result.model_dir is None:
        raise RuntimeError(f"training stopped at step {result.step} of {recipe.training.steps}")

    video_autoencoder = Autoencoder.from_pretrained(result.model_dir)  # EMA weights
    video_autoencoder.set_scaling_factor(image_autoencoder.scaling_factor)  # the latents the pipeline makes
    final = video_autoencoder.save_pretrained(out_dir / COMPONENT)

    from minifusion.pipelines.model_index import MODEL_INDEX_NAME, write_model_index

    image_autoencoder, video_autoencoder = image_autoencoder.to(device).eval(), video_autoencoder.to(device).eval()
    if (out_dir / MODEL_INDEX_NAME).is_file():
        write_model_index(out_dir)  # keeps the earlier settings; lists video_decoder now
    else:
        write_model_index(out_dir, latent_range=_latent_range(image_autoencoder, clips, recipe.latent_range_quantile))

    eval_clips, eval_source = evaluation_clips(recipe, clips)
    results = evaluate_decoders(image_autoencoder, video_autoencoder, eval_clips)
    save_comparison(eval_clips, results, run / "compare.png")
    trainable = [p for p in model.parameters() if p.requires_grad]
    metrics = {"stage": STAGE, "step": result.step, "variant": recipe.variant, "train_spatial": recipe.train_spatial,
               "last_loss": result.last_loss, "session_seconds": seconds,
               "seconds_per_step": seconds_per_step(run / "log.csv"),
               "trainable_parameters": sum(p.numel() for p in trainable),
               "parameters": sum(p.numel() for p in model.parameters()),
               "eval_source": eval_source, "scaling_factor": video_autoencoder.scaling_factor,
               **{name: res["report"] for name, res in results.items()}}
    write_json(run / METRICS_NAME, metrics)
    if recipe.training.progress:
        img, vid = results["image_decoder"]["report"], results["video_decoder"]["report"]
        print(f"decoder ({recipe.variant}): step {result.step}; {eval_source}: PSNR {img['psnr_db']:.2f} -> "
              f"{vid['psnr_db']:.2f} dB, SSIM {img['ssim']:.4f} -> {vid['ssim']:.4f}, flicker ratio "
              f"{img['flicker_ratio']:.3f} -> {vid['flicker_ratio']:.3f} (image -> video decoder) -> {final}")
    return finish_stage(final)


__all__ = ["VARIANTS", "DecoderRecipe", "DecoderTask", "build_video_decoder", "check_variant", "collate_clips",
           "evaluate_decoders", "evaluation_clips", "reconstruct", "save_comparison", "temporal_gradient_l1",
           "train_decoder"]
