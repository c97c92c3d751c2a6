"""Stage ``interpolation``: train the FusionFrames interpolation U-Net for both passes.

FusionFrames (arXiv 2311.13073, section 3.2) interpolates with a U-Net initialised from the
T2I model that sees one keyframe pair per latent: channels [left (4) | 3 noisy latents (12) |
right (4)], the pairs of one video along the time axis (``InterpolationUNet``). The paper
fine-tunes the *whole* interpolator; so does this recipe (``freeze_spatial`` is an experiment).
Training samples are clips of K = 8 keyframes plus the 3 frames between each pair:

- pass 1 (frame skip 4): keyframes at source times t0 + 4k, targets at t0 + 4k + 1, 2, 3;
- pass 2 (frame skip 1): keyframes at t0 + k, targets at the quarter frames t0 + k + 0.25, 0.5,
  0.75, which Moving Shapes renders exactly (continuous-time trajectories).

Each window is encoded once into its own latent set (``LatentCache``); per sample, from the
sample's generator and in this order (``draw_sample_randomness``, shared with the ``mfi`` stage):
the pass (``fine_fraction`` = 50% pass 2), the timestep t, t_p uniform in 0..250, the 10%
keyframe dropout, the noise of the whole clip and the keyframes' perturbation noise. The
keyframes are noised to t_p with the same cosine schedule ("conditional frame perturbation",
``perturbation_level=t_p``); dropped samples get zeroed keyframe channels (the "uncond" of the
pipeline's context guidance). Loss: MSE to v (v-prediction). The inputs are laid out exactly as
``minifusion.pipelines.interpolation.interpolate_pass`` lays them out (``build_interpolation_input``).

Writes ``OUT/interpolation_unet/`` (EMA weights), ``OUT/interpolation_scheduler/`` (its sampler: cosine,
v), updates ``OUT/model_index.json`` and ``OUT/runs/interpolation/`` whose ``metrics.json`` holds
``evaluate_interpolation``: PSNR of the interpolated middle frames of held-out clips against the
rendered truth, next to a pixel-space linear blend of the two keyframes and the autoencoder's own
round trip (the ceiling), for pass 1 and pass 2.

Taught in notebook 09 (notebooks/09_interpolation.ipynb).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from minifusion.checks import check_int, check_number
from minifusion.data.interpolation_windows import InterpolationClips, window_length
from minifusion.diffusion import DDPMScheduler, sample_range_from_data
from minifusion.eval.interpolation_eval import evaluate_interpolation, save_interpolation_figure
from minifusion.models.interpolation_unet import INITS, InterpolationUNet
from minifusion.pipelines.model_index import (
    DEFAULT_SAMPLER_CLASS,
    MODEL_INDEX_NAME,
    SCHEDULER_CONFIG_NAME,
    sampling_scheduler_config,
    write_model_index,
)
from minifusion.training.checkpointing import list_checkpoints
from minifusion.training.config import TrainingConfig
from minifusion.training.distributed import finish_stage
from minifusion.training.latent_cache import LatentCache
from minifusion.training.objectives.interpolation import (
    InterpolationTask,
)
from minifusion.training.precision import resolve_device
from minifusion.training.randomness import seed_everything
from minifusion.training.recipes.common import (
    METRICS_NAME,
    DataOptions,
    build_clips,
    cache_dir,
    prepare_recipe,
    run_dir,
    train_run,
    write_json,
)
from minifusion.training.trainer import Trainer

STAGE = "interpolation"


def _default_training() -> TrainingConfig:
    return TrainingConfig(steps=2000, batch_size=8, lr=1e-4, warmup_steps=100, ema_decay=0.999, ema_warmup=True,
                          checkpoint_every=250, log_every=10, extra={"recipe": STAGE})


@dataclass
class InterpolationRecipe:
    training: TrainingConfig = field(default_factory=_default_training)  # batch_size = clips (videos) per step
    data: DataOptions = field(default_factory=lambda: DataOptions(num_clips=1000))  # num_frames = keyframes K,
    #   frame_skip = pass-1 skip (clips span frame_skip * (K - 1) source frames)
    frames_per_pair: int = 3  # frames generated between two keyframes
    fine_fraction: float = 0.5  # share of samples from the pass-2 windows (skip frame_skip / (frames_per_pair + 1))
    max_perturbation: int = 250  # conditional frame perturbation t_p uniform in 0..max_perturbation
    keyframe_dropout: float = 0.1  # probability of zeroing a sample's keyframe channels (context guidance)
    freeze_spatial: bool = False  # train only the new parts (the paper fine-tunes everything)
    init: str = "slots"  # InterpolationUNet.from_t2i: "slots" (every noisy slot reads the T2I input) or "middle"
    blend_path: bool | None = None  # from_t2i's path from the keyframes' difference to each output (None: with "slots")
    beta_schedule: str = "squaredcos_cap_v2"  # noise schedule of training and sampling
    num_train_timesteps: int = 1000  # diffusion steps T
    encode_batch_size: int = 8  # clips per autoencoder call when filling the latent caches
    eval_clips: int = 8  # held-out clips for evaluate_interpolation (0 = skip the evaluation)
    eval_num_inference_steps: int = 25  # DDIM steps per pass in the evaluation
    eval_guidance_scale: float = 1.25  # context guidance s (paper w = 0.25) in the evaluation

    def validate(self) -> None:
        for name, low in (("frames_per_pair", 1), ("encode_batch_size", 1), ("eval_num_inference_steps", 1),
                          ("max_perturbation", 0), ("eval_clips", 0)):
            check_int(name, getattr(self, name), minimum=low)
        for name in ("fine_fraction", "keyframe_dropout"):
            check_number(name, getattr(self, name), minimum=0, maximum=1)
        if not isinstance(self.freeze_spatial, bool):
            raise ValueError(f"freeze_spatial {self.freeze_spatial!r} is not allowed; it must be true or false")
        if self.init not in INITS:
            raise ValueError(f"init {self.init!r} is not allowed; it must be one of {INITS}")
        if self.blend_path is not None and not isinstance(self.blend_path, bool):
            raise ValueError(f"blend_path {self.blend_path!r} is not allowed; it must be true, false or null")
        check_number("eval_guidance_scale", self.eval_guidance_scale, minimum=0, note="(1 = no guidance)")
        if self.max_perturbation >= self.num_train_timesteps:
            raise ValueError(f"max_perturbation {self.max_perturbation} must be below num_train_timesteps "
                             f"{self.num_train_timesteps}")
        DDPMScheduler(beta_schedule=self.beta_schedule, num_train_timesteps=self.num_train_timesteps,
                      prediction_type="v_prediction")  # validates both


# -- data: latents of the clip windows --------------------------------------------------------------
class PairedLatents(Dataset):
    """Item i = ``{"coarse": (C, F, h, w), "fine": (C, F, h, w)}``: clip i's pass-1 and pass-2 window latents."""

    def __init__(self, coarse: torch.Tensor, fine: torch.Tensor | None) -> None:
        if fine is not None and fine.shape != coarse.shape:
            raise ValueError(f"latent sets differ: coarse {tuple(coarse.shape)}, fine {tuple(fine.shape)}")
        self.coarse, self.fine = coarse, fine

    def __len__(self) -> int:
        return self.coarse.shape[0]

    def __getitem__(self, index: int) -> dict:
        item = {"coarse": self.coarse[index]}
        if self.fine is not None:
            item["fine"] = self.fine[index]
        return item


# -- the layout the pipeline uses ------------------------------------------------------------------


# -- randomness and the loss ----------------------------------------------------------------------


# -- the stage ------------------------------------------------------------------------------------
def encode_windows(recipe: InterpolationRecipe, autoencoder, out_dir: Path, device: torch.device) -> PairedLatents:
    """Pass-1 and pass-2 window latents of the training clips, from (or into) the latent cache.

    Moving Shapes clips have ``data.num_frames`` keyframes ``data.frame_skip`` apart; a clip folder
    gives whole frames only: windows of (n + 1)(K - 1) + 1 consecutive frames, pass 1 only.
    """
    data, n = recipe.data, recipe.frames_per_pair
    kwargs = dict(num_keyframes=data.num_frames, frames_per_pair=n, seed=data.seed)
    cache = LatentCache(cache_dir(out_dir), encode_fn=autoencoder.encode, encoder=autoencoder,
                        batch_size=recipe.encode_batch_size, device=device, progress=recipe.training.progress,
                        extra_fingerprint={"scaling_factor": autoencoder.scaling_factor})
    if data.folder is not None:
        clips = build_clips(dataclasses.replace(data, num_frames=window_length(data.num_frames, n)))
        return PairedLatents(cache.load_or_encode(InterpolationClips(clips, frame_skip=n + 1, **kwargs)).latents, None)
    clips = build_clips(data)
    coarse = cache.load_or_encode(InterpolationClips(clips, frame_skip=data.frame_skip, **kwargs)).latents
    fine = None if recipe.fine_fraction == 0 else \
        cache.load_or_encode(InterpolationClips(clips, frame_skip=data.frame_skip / (n + 1), **kwargs)).latents
    return PairedLatents(coarse, fine)


# The interpolators sample in 5 steps, so where the first step sits matters: "leading" spacing
# starts 5 steps at t = 800, where the cosine schedule keeps sqrt(alpha_bar) = 0.31 of the signal, and
# the model is asked to read structure into pure noise; "trailing" starts at t = 999 (alpha_bar ~ 0),
# as Lin et al. 2024 (sections 3.3-3.4) recommend. Measured on the interpolator (docs/interpolation.md):
# SSIM of the generated frames 0.950 -> 0.956 at the same PSNR.
INTERPOLATION_SAMPLER_OPTIONS = {"timestep_spacing": "trailing"}
# Each component's sampler: (class, options). FusionFrames' interpolator starts from the keyframes'
# latent blend (INTERPOLATION_PIPELINE_SETTINGS), deterministically: DDIM (docs/interpolation.md
# section 4). The MFI baseline samples from pure noise with the pipeline's default solver.
INTERPOLATION_SAMPLERS = {"interpolation_unet": ("DDIMScheduler", INTERPOLATION_SAMPLER_OPTIONS),
                          "mfi_unet": (DEFAULT_SAMPLER_CLASS, INTERPOLATION_SAMPLER_OPTIONS)}
# What the interpolation stage writes into model_index.json: context guidance s = 1.5 (the best of
# 1-2.5, section 3) and a start from the keyframes' blend noised to t = 799 of 5 trailing steps
# (strength 0.8: 4 steps run; section 4). The paper's sampler is interpolation_strength=1.
INTERPOLATION_PIPELINE_SETTINGS = {"interpolation_guidance_scale": 1.5, "interpolation_strength": 0.8}


def save_scheduler(scheduler, folder: Path, component: str = "interpolation_unet") -> Path:
    """``folder/scheduler_config.json``: the pipeline's sampler for ``component`` trained with ``scheduler``
    (``INTERPOLATION_SAMPLERS``: trailing timestep spacing; DDIM for the FusionFrames interpolator)."""
    if component not in INTERPOLATION_SAMPLERS:
        raise ValueError(f"component {component!r} is not one of {sorted(INTERPOLATION_SAMPLERS)}")
    sampler_class, options = INTERPOLATION_SAMPLERS[component]
    return write_json(folder / SCHEDULER_CONFIG_NAME, sampling_scheduler_config(scheduler, sampler_class, **options))


def run_interpolation_stage(stage: str, recipe_class: type, out_dir, *, build_model: Callable, make_task: Callable,
                            component: str, steps, config, resume, data_dir, seed, progress
                            ) -> tuple[Path, dict | None]:
    """What the ``interpolation`` and ``mfi`` stages share: load T2I, encode, train, export, evaluate.

    ``build_model(recipe, t2i_unet, text_encoder, latent_size)`` gives the model to train,
    ``make_task(recipe, scheduler)`` its task; the EMA weights go to ``OUT/<component>``. Under
    torchrun only rank 0 exports and evaluates; the other ranks get ``(path, None)``.
    """
    from minifusion.training.recipes.t2i import load_t2i

    recipe = prepare_recipe(recipe_class, stage, out_dir, config=config, steps=steps, resume=resume,
                            data_dir=data_dir, seed=seed, progress=progress)
    out_dir, run = Path(out_dir), run_dir(out_dir, stage)
    device = resolve_device(recipe.training.device)
    parts = load_t2i(out_dir, device=device)  # clear errors naming the stage to train first
    autoencoder = parts["autoencoder"]
    latents = encode_windows(recipe, autoencoder, out_dir, device)
    seed_everything(recipe.training.seed)  # the initial weights depend on the seed only
    model = build_model(recipe, parts["unet"].cpu(), parts["text_encoder"].cpu(), int(latents.coarse.shape[-1]))
    scheduler = DDPMScheduler(num_train_timesteps=recipe.num_train_timesteps, beta_schedule=recipe.beta_schedule,
                              prediction_type="v_prediction")
    trainer = Trainer(model, make_task(recipe, scheduler), latents, recipe.training, run)
    start_step = list_checkpoints(run / "checkpoints")[-1][0] if resume and list_checkpoints(run / "checkpoints") \
        else 0
    result, seconds = train_run(trainer, recipe, run, resume=resume)
    if result.model_dir is None:
        raise RuntimeError(f"training stopped at step {result.step} of {recipe.training.steps}")
    if not trainer.is_main:  # under torchrun rank 0 alone writes the stage's files (the caller's finish_stage)
        return out_dir / component, None

    model = type(model).from_pretrained(result.model_dir)  # EMA weights
    final = model.save_pretrained(out_dir / component)
    save_scheduler(scheduler, out_dir / component.replace("unet", "scheduler"), component)
    metrics = {"stage": stage, "step": result.step, "last_loss": result.last_loss, "session_seconds": seconds,
               "seconds_per_step": seconds / max(1, result.step - start_step), "train_clips": len(latents),
               "passes_trained": 1 if latents.fine is None else 2, "device": str(device)}
    if recipe.eval_clips:
        folder = recipe.data.folder is not None
        clips = build_clips(dataclasses.replace(recipe.data, num_frames=window_length(recipe.data.num_frames,
                                                                                      recipe.frames_per_pair))) \
            if folder else None
        evaluation = evaluate_interpolation(
            model.to(device).eval(), scheduler, autoencoder, clips=clips, num_clips=recipe.eval_clips,
            num_keyframes=recipe.data.num_frames, frame_skip=recipe.frames_per_pair + 1 if folder
            else recipe.data.frame_skip, frames_per_pair=recipe.frames_per_pair, size=recipe.data.size,
            num_inference_steps=recipe.eval_num_inference_steps, guidance_scale=recipe.eval_guidance_scale,
            seed=recipe.training.seed, return_frames=True)
        save_interpolation_figure(evaluation, run / "interpolation.png", recipe.frames_per_pair)
        for key in ("pass1", "pass2"):
            if evaluation.get(key):
                evaluation[key].pop("frames")
        metrics["eval"] = evaluation
        if recipe.training.progress:
            for key in ("pass1", "pass2"):
                r = evaluation.get(key)
                if r:
                    print(f"{stage} {key} (skip {r['frame_skip']:g}): PSNR {r['psnr_db']:.2f} dB, linear blend "
                          f"{r['linear_blend_psnr_db']:.2f} dB, autoencoder ceiling {r['autoencoder_psnr_db']:.2f} dB")
    write_json(run / METRICS_NAME, metrics)
    return final, {"recipe": recipe, "latents": latents, "metrics": metrics}


def _build_interpolation_unet(recipe: InterpolationRecipe, unet, text_encoder, latent_size: int) -> InterpolationUNet:
    model = InterpolationUNet.from_t2i(unet, init=recipe.init, blend_path=recipe.blend_path,
                                       frames_per_pair=recipe.frames_per_pair,
                                       sample_size=latent_size,
                                       num_pairs=recipe.data.num_frames - 1, null_context_length=1)
    with torch.no_grad():  # the T2I model's unconditional input: the text encoder's null token, alone
        model.null_encoder_hidden_states[0, 0] = text_encoder.null_token
    return model.freeze_spatial() if recipe.freeze_spatial else model


def task_from_recipe(recipe: InterpolationRecipe, scheduler, task_class: type = InterpolationTask):
    """``task_class`` (``InterpolationTask`` or ``MFITask``) with the recipe's settings."""
    skip = recipe.frames_per_pair + 1 if recipe.data.folder is not None else recipe.data.frame_skip
    return task_class(scheduler, frame_skip=skip, frames_per_pair=recipe.frames_per_pair,
                      fine_fraction=recipe.fine_fraction, max_perturbation=recipe.max_perturbation,
                      keyframe_dropout=recipe.keyframe_dropout)


def train_interpolation(out_dir: str | Path, *, steps: int | None = None,
                        config: InterpolationRecipe | dict | str | Path | None = None, resume: bool = False,
                        data_dir: str | Path | None = None, seed: int | None = None, progress: bool = True) -> Path:
    """Train the interpolation stage into ``out_dir`` (which must hold the autoencoder and t2i stages).

    Arguments as ``train_autoencoder``. Returns ``out_dir / "interpolation_unet"``; also writes
    ``interpolation_scheduler/`` and (re)writes ``model_index.json`` keeping its settings.
    """
    final, info = run_interpolation_stage(STAGE, InterpolationRecipe, out_dir, build_model=_build_interpolation_unet,
                                          make_task=task_from_recipe, component="interpolation_unet", steps=steps,
                                          config=config, resume=resume, data_dir=data_dir, seed=seed,
                                          progress=progress)
    out_dir = Path(out_dir)
    if info is None:  # not rank 0 of a torchrun
        return finish_stage(final)
    if (out_dir / MODEL_INDEX_NAME).is_file():
        write_model_index(out_dir, **INTERPOLATION_PIPELINE_SETTINGS)  # keeps the other settings
    else:  # the first stage to write it: the latents' range for dynamic thresholding
        recipe = info["recipe"]
        write_model_index(out_dir, latent_range=sample_range_from_data(info["latents"].coarse, 0.999),
                          keyframe_frame_skip=int(recipe.frames_per_pair + 1 if recipe.data.folder
                                                  else recipe.data.frame_skip), **INTERPOLATION_PIPELINE_SETTINGS)
    return finish_stage(final)
