"""``FusionFramesPipeline``: text -> keyframes -> interpolation -> decoded video.

FusionFrames / Kandinsky Video 1.0 (Arkhipkin et al., arXiv 2311.13073), at toy scale:

1. keyframes (section 3.1): the keyframe U-Net samples K keyframe latents (B, 4, K, 16, 16) at
   source positions 0, 4, 8, ... with classifier-free guidance ``uncond + s * (cond - uncond)``
   (diffusers' s; the paper's w = s - 1, its w = 5 is s = 6) and dynamic thresholding of the
   predicted x0 at the 0.98 quantile *relative to the latents' range* R (``settings.latent_range``,
   measured on training latents; latents are never clipped to [-1, 1]);
2. interpolation (section 3.2): 0, 1 or 2 passes of the pair-wise interpolator, K -> 4K - 3 ->
   16K - 15 frames (8 -> 29 -> 113), with context guidance (s = 1.25 is the paper's w = 0.25);
3. decoding in chunks of ``decode_chunk_size`` frames with the image decoder or, when the folder
   has one, the video decoder (section 3.3, ``decoder="image" | "video"``).

Every random draw comes from ``generator`` (CPU): the same seed gives the same video. Outputs
(``output_type``): "np" (B, F, H, W, C) float32 in [0, 1]; "pt" (B, C, F, H, W) float32 in [0, 1]
(the package's channels-first video layout; give ``value_range=(0, 1)`` to ``minifusion.viz``);
"pil" a list (per video) of lists (per frame) of PIL images; "latent" the latents (B, 4, F, h, w).
The folder layout is described in ``minifusion.pipelines.model_index``.

Taught in notebook 11 (notebooks/11_full_pipeline.ipynb).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from minifusion.checks import check_int, check_number, check_one_of, positive_int
from minifusion.diffusion import (
    BaseScheduler,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
)
from minifusion.models import Autoencoder, InterpolationUNet, KeyframeUNet, TextEncoder
from minifusion.models.tokenizer import check_prompts
from minifusion.pipelines.denoising import check_guidance_scale, check_strength, kept_steps
from minifusion.pipelines.interpolation import interpolate_pass, interpolation_frame_skips
from minifusion.pipelines.keyframes import check_negative_prompt, sample_keyframes
from minifusion.pipelines.model_index import (
    MODEL_INDEX_NAME,
    SCHEDULER_COMPONENTS,
    SCHEDULER_CONFIG_NAME,
    PipelineSettings,
    _read_json,
    model_index_dict,
    read_model_index,
    write_json,
)

OUTPUT_TYPES = ("np", "pt", "pil", "latent")
DECODERS = ("image", "video")
# ``scheduler=`` / ``--scheduler`` names -> classes (and the options a name fixes); each stage keeps its own
# config otherwise (schedule, prediction type, spacing)
SCHEDULERS = {"dpm": DPMSolverMultistepScheduler, "dpm-sde": DPMSolverMultistepScheduler,
              "euler": EulerDiscreteScheduler, "ddim": DDIMScheduler, "ddpm": DDPMScheduler}
SCHEDULER_OPTIONS = {"dpm": {"algorithm_type": "dpmsolver++"}, "dpm-sde": {"algorithm_type": "sde-dpmsolver++"}}
SCHEDULER_CLASSES = {cls.__name__: cls for cls in SCHEDULERS.values()}
MODEL_CLASSES = {"Autoencoder": Autoencoder, "TextEncoder": TextEncoder, "KeyframeUNet": KeyframeUNet,
                 "InterpolationUNet": InterpolationUNet}


def _select_frames(frames: Any, indices: list[int], output_type: str) -> Any:
    """The frames at ``indices`` of decoded output: np (B, F, ...), pt (B, C, F, ...) or pil (lists per video).

    The keyframes are taken from the decoded video rather than decoded again on their own: the same
    frames the video shows (a temporal decoder sees their neighbours), for no extra decoding."""
    if output_type == "pil":
        return [[clip[i] for i in indices] for clip in frames]
    return frames[:, :, indices] if output_type == "pt" else frames[:, indices]


@dataclass
class _CallInputs:
    """What ``check_inputs`` returns: the checked call, the settings filled in."""

    prompts: list[str]
    steps: int
    guidance_scale: float
    interpolation_steps: int
    interpolation_guidance_scale: float
    interpolation_strength: float
    decode_chunk_size: int
    dynamic_thresholding: bool


@dataclass
class FusionFramesPipelineOutput:
    frames: Any  # the video in ``output_type`` (np: (B, F, H, W, C) in [0, 1])
    keyframes: Any  # the keyframes as they appear in ``frames`` (the frames at keyframe_indices), same convention
    keyframe_indices: list[int]  # where the keyframes sit in ``frames`` (0, 4, 8, ... after one pass)


def _load_scheduler(path: Path, class_name: str):
    config = _read_json(path)
    saved = config.pop("_class_name", class_name)
    if saved != class_name:
        raise ValueError(f"{str(path)!r} holds a {saved!r} but model_index.json says {class_name!r}")
    try:
        return SCHEDULER_CLASSES[class_name].from_config(config)
    except (ValueError, TypeError) as e:
        raise ValueError(f"scheduler file {str(path)!r} is corrupt: {e}") from None


class FusionFramesPipeline:
    """Text-to-video with the FusionFrames components (see the module docstring).

    Build with ``from_pretrained(folder)`` or from components; models are put in eval mode.
    ``interpolation_unet`` / ``interpolation_scheduler`` may be None (keyframes only: passes = 0).
    """

    def __init__(
        self,
        *,
        autoencoder: Autoencoder,
        text_encoder: TextEncoder,
        keyframe_unet: KeyframeUNet,
        scheduler,
        settings: PipelineSettings,
        interpolation_unet: InterpolationUNet | None = None,
        interpolation_scheduler=None,
        video_decoder: Autoencoder | None = None,
    ) -> None:
        if not isinstance(settings, PipelineSettings):
            raise ValueError(f"settings must be a PipelineSettings, got {type(settings).__name__}")
        if (interpolation_unet is None) != (interpolation_scheduler is None):
            raise ValueError("interpolation_unet and interpolation_scheduler must be given together")
        self.autoencoder, self.text_encoder, self.keyframe_unet = autoencoder, text_encoder, keyframe_unet
        self.interpolation_unet, self.video_decoder = interpolation_unet, video_decoder
        self.scheduler, self.interpolation_scheduler = scheduler, interpolation_scheduler
        self.settings = settings
        self.use_autocast = True  # bf16/fp16 autocast when on CUDA (never on the CPU)
        self._progress_bar_config: dict[str, Any] = {}
        self._check_components()
        for model in self.models.values():
            model.eval()

    # -- components ---------------------------------------------------------------------------
    @property
    def models(self) -> dict[str, torch.nn.Module]:
        names = ("autoencoder", "text_encoder", "keyframe_unet", "interpolation_unet", "video_decoder")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    @property
    def components(self) -> dict[str, Any]:
        return {**self.models, **{n: getattr(self, n) for n in SCHEDULER_COMPONENTS if getattr(self, n) is not None}}

    def _check_components(self) -> None:
        for name, cls in (("autoencoder", Autoencoder), ("text_encoder", TextEncoder),
                          ("keyframe_unet", KeyframeUNet), ("interpolation_unet", InterpolationUNet),
                          ("video_decoder", Autoencoder)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, cls):
                raise ValueError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
        latent, kf = self.autoencoder.config.latent_channels, self.keyframe_unet.config
        if kf.in_channels != latent or kf.cross_attention_dim != self.text_encoder.config.hidden_size:
            raise ValueError(f"keyframe_unet takes {kf.in_channels} channels and text width {kf.cross_attention_dim}; "
                             f"the autoencoder has {latent} latent channels and the text encoder width "
                             f"{self.text_encoder.config.hidden_size}")
        pairs = [("scheduler", self.scheduler, kf.prediction_type, "keyframe_unet")]
        if self.interpolation_unet is not None:
            if self.interpolation_unet.latent_channels != latent:
                raise ValueError(f"interpolation_unet works on {self.interpolation_unet.latent_channels}-channel "
                                 f"latents, the autoencoder has {latent}")
            pairs.append(("interpolation_scheduler", self.interpolation_scheduler,
                          self.interpolation_unet.config.prediction_type, "interpolation_unet"))
        if self.video_decoder is not None and self.video_decoder.config.latent_channels != latent:
            raise ValueError(f"video_decoder takes {self.video_decoder.config.latent_channels} latent channels, "
                             f"the autoencoder has {latent}")
        for name, sched, prediction_type, model in pairs:
            if not isinstance(sched, BaseScheduler):
                raise ValueError(f"{name} must be one of {', '.join(SCHEDULER_CLASSES)}, got {type(sched).__name__}")
            if sched.config["prediction_type"] != prediction_type:
                raise ValueError(f"{name} expects {sched.config['prediction_type']!r} outputs but {model} was "
                                 f"trained for {prediction_type!r}")

    @property
    def device(self) -> torch.device:
        return next(self.keyframe_unet.parameters()).device

    def to(self, device: str | torch.device) -> FusionFramesPipeline:
        """Move every model to ``device`` ("cpu", "cuda", "cuda:N" or "auto"; checked, ValueError otherwise)."""
        from minifusion.training.precision import resolve_device

        device = resolve_device(device)
        for model in self.models.values():
            model.to(device)
        return self

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        """tqdm arguments for every sampling loop, e.g. ``disable=True``."""
        self._progress_bar_config = dict(kwargs)

    # -- persistence --------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, *, dtype: torch.dtype | None = None) -> Path:
        """One folder: a subfolder per component and ``model_index.json`` (written last).

        ``dtype=torch.float16`` stores the weights in half precision (half the size; they load
        back as float32)."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in self.models.items():
            model.save_pretrained(folder / name, dtype=dtype)
        for name in SCHEDULER_COMPONENTS:
            sched = getattr(self, name)
            if sched is not None:
                write_json(folder / name / SCHEDULER_CONFIG_NAME, {"_class_name": type(sched).__name__,
                                                                   **sched.config})
        classes = {name: type(c).__name__ for name, c in self.components.items()}
        write_json(folder / MODEL_INDEX_NAME, model_index_dict(classes, self.settings))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, device: str | torch.device | None = None,
                        ) -> FusionFramesPipeline:
        """Load a pipeline folder; a missing, incomplete or corrupt file raises ValueError naming it."""
        folder = Path(folder)
        classes, settings = read_model_index(folder)
        parts: dict[str, Any] = {}
        for name, class_name in classes.items():
            if name in SCHEDULER_COMPONENTS:
                parts[name] = _load_scheduler(folder / name / SCHEDULER_CONFIG_NAME, class_name)
            else:
                if not (folder / name).is_dir():
                    raise ValueError(f"pipeline folder {str(folder)!r} is incomplete: model_index.json lists "
                                     f"{name!r} but the folder {str(folder / name)!r} is missing")
                parts[name] = MODEL_CLASSES[class_name].from_pretrained(folder / name)
        pipe = cls(settings=settings, **parts)
        return pipe.to(device) if device is not None else pipe

    # -- sampling -----------------------------------------------------------------------------
    def _schedulers(self, scheduler: str | None, thresholding: bool) -> tuple[Any, Any]:
        """Fresh copies of the two schedulers (the stored ones are never mutated), with the
        thresholding of ``settings`` applied."""
        if scheduler is not None and scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler {scheduler!r} is not one of {', '.join(map(repr, SCHEDULERS))} or None")
        s = self.settings
        overrides = dict(thresholding=True, dynamic_thresholding_ratio=s.dynamic_thresholding_ratio,
                         clip_sample_range=s.latent_range, sample_max_value=s.threshold_max_value,
                         clip_sample=False) if thresholding else {}
        out = []
        for sched in (self.scheduler, self.interpolation_scheduler):
            if sched is None:
                out.append(None)
                continue
            kind = SCHEDULERS[scheduler] if scheduler is not None else type(sched)
            out.append(kind.from_config(sched.config, **overrides, **SCHEDULER_OPTIONS.get(scheduler, {})))
        return out[0], out[1]

    def interpolation_sampler(self, scheduler: str | None = None):
        """A fresh copy of the interpolation scheduler exactly as ``__call__`` samples with it (its class or
        ``scheduler``, with the dynamic thresholding of the settings); evaluations use it to measure what
        the pipeline makes."""
        return self._schedulers(scheduler, self.settings.dynamic_thresholding)[1]

    def check_inputs(self, prompt, negative_prompt, num_keyframes, num_inference_steps, guidance_scale,
                     interpolation_passes, interpolation_guidance_scale, generator, output_type, callback_on_step_end, *,
                     interpolation_num_inference_steps, interpolation_strength, eta, decoder, decode_chunk_size,
                     dynamic_thresholding) -> _CallInputs:
        """Every argument of ``__call__`` checked (a ValueError naming it), and None filled from the settings."""
        s = self.settings
        prompts = check_prompts(prompt)
        if negative_prompt is not None:
            check_negative_prompt(negative_prompt, len(prompts))
        check_int("num_keyframes", num_keyframes, minimum=2, note="(interpolation needs pairs)")
        check_one_of("interpolation_passes", interpolation_passes, (0, 1, 2))
        if interpolation_passes and self.interpolation_unet is None:
            raise ValueError(f"interpolation_passes={interpolation_passes} needs an interpolation_unet; this "
                             "pipeline has none (train the interpolation stage, or pass interpolation_passes=0)")
        check_one_of("output_type", output_type, OUTPUT_TYPES)
        if decoder is not None and decoder not in DECODERS:
            raise ValueError(f"decoder {decoder!r} is not one of 'image', 'video' or None")
        if decoder == "video" and self.video_decoder is None:
            raise ValueError("decoder='video' needs a video_decoder; this pipeline has none (use decoder='image')")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        steps = positive_int("num_inference_steps", s.num_inference_steps if num_inference_steps is None
                             else num_inference_steps)
        interp_steps = positive_int("interpolation_num_inference_steps", s.interpolation_num_inference_steps
                                    if interpolation_num_inference_steps is None else interpolation_num_inference_steps)
        scale = check_guidance_scale("guidance_scale", s.guidance_scale if guidance_scale is None else guidance_scale)
        interp_scale = check_guidance_scale("interpolation_guidance_scale", s.interpolation_guidance_scale
                                            if interpolation_guidance_scale is None else interpolation_guidance_scale)
        interp_strength = check_strength(s.interpolation_strength if interpolation_strength is None
                                         else interpolation_strength, "interpolation_strength")
        if interpolation_passes:
            kept_steps(interp_strength, interp_steps)  # fail before the keyframes are drawn
        chunk = positive_int("decode_chunk_size", s.decode_chunk_size if decode_chunk_size is None else decode_chunk_size)
        if dynamic_thresholding is not None and not isinstance(dynamic_thresholding, bool):
            raise ValueError(f"dynamic_thresholding {dynamic_thresholding!r} is not allowed; it must be True, False "
                             "or None (the pipeline's setting)")
        check_number("eta", eta, minimum=0, maximum=1, note="(DDIM's; DDPM ignores it)")
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise ValueError("callback_on_step_end must be callable as fn(pipe, step_index, timestep, callback_kwargs) "
                             f"or None, got {type(callback_on_step_end).__name__}")
        self._warn_unknown_words(prompts, negative_prompt)
        return _CallInputs(prompts, steps, scale, interp_steps, interp_scale, interp_strength, chunk,
                           s.dynamic_thresholding if dynamic_thresholding is None else dynamic_thresholding)

    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_keyframes: int = 8,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        interpolation_passes: int = 1,
        interpolation_guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        callback_on_step_end: Callable | None = None,
        return_dict: bool = True,
        *,
        interpolation_num_inference_steps: int | None = None,
        interpolation_strength: float | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
        decoder: str | None = None,
        decode_chunk_size: int | None = None,
        dynamic_thresholding: bool | None = None,
        progress: bool | None = None,
    ) -> FusionFramesPipelineOutput | tuple[Any, Any]:
        """Generate videos for ``prompt`` (one video per prompt).

        Args:
            prompt: a str or a list of str. Unknown words give a warning and become ``<unk>``.
            negative_prompt: None (the learned null embedding is the unconditional input), a str
                for every prompt, or one str per prompt.
            num_keyframes: K >= 2 keyframes at source positions 0, s, 2s, ... (s = settings.keyframe_frame_skip).
            num_inference_steps, guidance_scale: keyframe steps and guidance s (None: from settings).
            interpolation_passes: 0, 1 or 2 -> K, 4K - 3 or 16K - 15 frames.
            interpolation_guidance_scale: context guidance s (None: settings, 1.25).
            generator: a torch.Generator (CPU recommended) for every random draw.
            output_type: "np", "pt", "pil" or "latent" (see the module docstring).
            callback_on_step_end: ``fn(pipe, step_index, timestep, callback_kwargs) -> dict | None``,
                called after every step of every stage; ``callback_kwargs["stage"]`` is "keyframes",
                "interpolation_1" or "interpolation_2"; returning ``{"latents": x}`` replaces the latents.
            return_dict: False returns ``(frames, keyframes)``.
            interpolation_num_inference_steps: steps per interpolation pass (None: settings).
            interpolation_strength: in (0, 1]; 1 starts each pass from pure noise (the paper), below 1
                from the keyframes' latent blend noised to the first of the last round(strength * steps)
                steps, which alone run (an SDEdit start; None: settings).
            scheduler: "dpm" (DPM-Solver++ 2M), "dpm-sde" (its SDE variant), "euler", "ddim" or "ddpm" for both
                stages, each built from that stage's scheduler config (schedule, prediction type); None = the
                pipeline's own schedulers.
            eta: DDIM's eta (0 = deterministic), ignored by DDPM.
            decoder: "image", "video" or None (the video decoder when the pipeline has one).
            decode_chunk_size: frames decoded at a time (None: settings).
            dynamic_thresholding: None = settings; False samples with the schedulers as configured.
            progress: False hides the progress bars (None: ``set_progress_bar_config``).
        """
        # 1. check the inputs; what the call leaves out comes from the pipeline's settings
        c = self.check_inputs(prompt, negative_prompt, num_keyframes, num_inference_steps, guidance_scale,
                              interpolation_passes, interpolation_guidance_scale, generator, output_type,
                              callback_on_step_end, interpolation_num_inference_steps=interpolation_num_inference_steps,
                              interpolation_strength=interpolation_strength, eta=eta, decoder=decoder,
                              decode_chunk_size=decode_chunk_size, dynamic_thresholding=dynamic_thresholding)
        # 2. the samplers of both stages
        keyframe_scheduler, interp_scheduler = self._schedulers(scheduler, c.dynamic_thresholding)
        bar = dict(self._progress_bar_config)
        if progress is not None:
            bar["disable"] = not progress
        loop = dict(pipe=self, callback_on_step_end=callback_on_step_end, progress_bar_config=bar,
                    use_autocast=self.use_autocast)

        def step_kwargs(sched) -> dict:
            return {"eta": eta} if isinstance(sched, DDIMScheduler) else {}

        frame_skip = self.settings.keyframe_frame_skip
        with torch.inference_mode():
            # 3. keyframes: the prompts' text -> K keyframe latents (B, 4, K, h, w)
            keyframes = sample_keyframes(
                self.keyframe_unet, self.text_encoder, keyframe_scheduler, c.prompts, negative_prompt=negative_prompt,
                num_keyframes=num_keyframes, frame_skip=frame_skip, num_inference_steps=c.steps,
                guidance_scale=c.guidance_scale, generator=generator, latent_size=self.keyframe_unet.config.sample_size,
                device=self.device, step_kwargs=step_kwargs(keyframe_scheduler), **loop,
            )
            # 4. interpolation: each pass puts 3 frames between every pair, F -> 4F - 3 (8 -> 29 -> 113)
            latents = keyframes
            per_pair = self.interpolation_unet.config.frames_per_pair if interpolation_passes else 3
            for k, skip in enumerate(interpolation_frame_skips(frame_skip, interpolation_passes, per_pair)):
                latents = interpolate_pass(
                    self.interpolation_unet, interp_scheduler, latents, frame_skip=skip,
                    num_inference_steps=c.interpolation_steps, guidance_scale=c.interpolation_guidance_scale,
                    generator=generator, strength=c.interpolation_strength, stage=f"interpolation_{k + 1}",
                    step_kwargs=step_kwargs(interp_scheduler), **loop,
                )  # (B, 4, 4F - 3, h, w)
            # 5. decode the latents to frames, and point at the keyframes among them
            stride = (latents.shape[2] - 1) // (num_keyframes - 1)
            indices = list(range(0, latents.shape[2], stride))
            frames = self._postprocess(latents, output_type, decoder, c.decode_chunk_size)
            keyframe_out = keyframes if output_type == "latent" else _select_frames(frames, indices, output_type)
        if not return_dict:
            return frames, keyframe_out
        return FusionFramesPipelineOutput(frames=frames, keyframes=keyframe_out, keyframe_indices=indices)

    def _warn_unknown_words(self, prompts: list[str], negative_prompt: Any) -> None:
        """One warning, pointing at the caller of ``__call__``, for words outside the vocabulary (they become <unk>)."""
        texts = prompts + ([negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt or []))
        unknown = self.text_encoder.tokenizer.unknown_words([t for t in texts if isinstance(t, str)] or [""])
        if unknown:
            warnings.warn(f"words not in the vocabulary, encoded as <unk>: {unknown}", UserWarning, stacklevel=4)

    # -- decoding -----------------------------------------------------------------------------
    def decode_latents(self, latents: torch.Tensor, *, decoder: str | None = None,
                       chunk_size: int | None = None) -> torch.Tensor:
        """Latents (B, 4, F, h, w) -> frames (B, 3, F, H, W) in [-1, 1] (clamped), ``chunk_size`` frames at a time."""
        use_video = decoder == "video" or (decoder is None and self.video_decoder is not None)
        model = self.video_decoder if use_video else self.autoencoder
        param = next(model.parameters())
        chunk = chunk_size or self.settings.decode_chunk_size
        return model.decode(latents.to(param.device, param.dtype), chunk_size=chunk).float().clamp(-1, 1)

    def _postprocess(self, latents: torch.Tensor, output_type: str, decoder: str | None, chunk: int):
        if output_type == "latent":
            return latents
        video = (self.decode_latents(latents, decoder=decoder, chunk_size=chunk) + 1) / 2  # (B, 3, F, H, W) in [0, 1]
        if output_type == "pt":
            return video.cpu()
        frames = rearrange(video, "b c f h w -> b f h w c").cpu().numpy().astype(np.float32)
        if output_type == "np":
            return frames
        from PIL import Image

        pixels = (frames * 255).round().astype(np.uint8)
        if pixels.shape[-1] == 1:  # grey: PIL wants (H, W)
            pixels = pixels[..., 0]
        return [[Image.fromarray(frame) for frame in clip] for clip in pixels]
