"""The pipeline folder: ``model_index.json``, its settings, and finding the shipped checkpoint.

A pipeline folder (diffusers-style: one subfolder per component) holds::

    PIPE/model_index.json                           components -> class names, plus ``settings``
    PIPE/autoencoder/{config.json,model.safetensors}        latent autoencoder (image decoder)
    PIPE/text_encoder/{config.json,model.safetensors}       text encoder (vocabulary in its config)
    PIPE/keyframe_unet/{config.json,model.safetensors}      KeyframeUNet (epsilon prediction)
    PIPE/interpolation_unet/{config.json,model.safetensors} InterpolationUNet (v-prediction); optional
    PIPE/scheduler/scheduler_config.json                    keyframe sampler (cosine, epsilon)
    PIPE/interpolation_scheduler/scheduler_config.json      interpolation sampler (cosine, v); optional
    PIPE/video_decoder/{config.json,model.safetensors}      Autoencoder with a temporal decoder; optional

Each model folder is that model's ``save_pretrained`` output; each scheduler file is
``{"_class_name": ..., **scheduler.config}``: the sampler the pipeline uses, with the noise schedule
and prediction type its model was trained with (``sampling_scheduler_config``; training stages read it
back as a ``DDPMScheduler``). ``model_index.json``::

    {"_class_name": "FusionFramesPipeline", "_minifusion_version": "0.1.0",
     "components": {"autoencoder": "Autoencoder", "text_encoder": "TextEncoder", ...},
     "settings": {"latent_range": 3.2, "keyframe_frame_skip": 4, ...}}

Other entries of the folder (``unet/`` of the T2I stage, ``runs/``) are ignored. Training
recipes write the components stage by stage and call ``write_model_index(folder, ...)`` to
(re)write the index from the component folders present.

Taught in notebook 11 (notebooks/11_full_pipeline.ipynb).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minifusion.checks import check_number, positive_int
from minifusion.json_files import read_json_object
from minifusion.models.modeling_utils import CONFIG_NAME, atomic_write_bytes
from minifusion.pipelines.denoising import check_strength

MODEL_INDEX_NAME = "model_index.json"
SCHEDULER_CONFIG_NAME = "scheduler_config.json"
PIPELINE_CLASS_NAME = "FusionFramesPipeline"

SCHEDULER_CLASS_NAMES = ("DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler")
# component -> class names it may hold; the first four must be present, the rest are optional
COMPONENT_CLASSES: dict[str, tuple[str, ...]] = {
    "autoencoder": ("Autoencoder",),
    "text_encoder": ("TextEncoder",),
    "keyframe_unet": ("KeyframeUNet",),
    "scheduler": SCHEDULER_CLASS_NAMES,
    "interpolation_unet": ("InterpolationUNet",),
    "interpolation_scheduler": SCHEDULER_CLASS_NAMES,
    "video_decoder": ("Autoencoder",),
}
REQUIRED_COMPONENTS = ("autoencoder", "text_encoder", "keyframe_unet", "scheduler")
SCHEDULER_COMPONENTS = ("scheduler", "interpolation_scheduler")
# where ``pretrained`` looks: data_samples/checkpoints of the repository (editable install)
CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "data_samples" / "checkpoints"
DEFAULT_CHECKPOINT = "moving-shapes-motion"  # what pretrained() and every --checkpoint default load


@dataclass
class PipelineSettings:
    """What the pipeline needs besides the weights (stored under "settings" in model_index.json)."""

    latent_range: float  # R: the clean latents lie in [-R, R] (e.g. 99.9th percentile of |latents| on data)
    keyframe_frame_skip: int = 4  # source frames between neighbouring keyframes (frame positions 0, 4, 8, ...)
    dynamic_thresholding: bool = True  # threshold the predicted x0 relative to latent_range at every step
    dynamic_thresholding_ratio: float = 0.98  # its quantile (the release uses 0.98)
    sample_max_value: float | None = None  # largest threshold in latent units; None = 1.5 * latent_range
    num_inference_steps: int = 15  # default keyframe sampling steps (SDE-DPM-Solver++: docs/performance.md)
    guidance_scale: float = 6.0  # default keyframe guidance s (paper w = 5)
    interpolation_num_inference_steps: int = 5  # default interpolation sampling steps per pass
    interpolation_guidance_scale: float = 1.25  # default context guidance s (paper w = 0.25)
    interpolation_strength: float = 1.0  # 1 = from pure noise (the paper); < 1 = from the keyframes' blend, noised
    decode_chunk_size: int = 8  # frames decoded at a time (the video decoder's clip length)

    def __post_init__(self) -> None:
        check_number("latent_range", self.latent_range, minimum=0, exclusive_minimum=True)
        check_number("dynamic_thresholding_ratio", self.dynamic_thresholding_ratio, minimum=0, maximum=1,
                     exclusive_minimum=True)
        if not isinstance(self.dynamic_thresholding, bool):
            raise ValueError(f"dynamic_thresholding must be True or False, got {self.dynamic_thresholding!r}")
        if self.sample_max_value is not None:
            check_number("sample_max_value", self.sample_max_value, minimum=self.latent_range,
                         note="(latent_range) or None (1.5 * latent_range)")
        for name in ("keyframe_frame_skip", "num_inference_steps", "interpolation_num_inference_steps",
                     "decode_chunk_size"):
            positive_int(name, getattr(self, name))
        for name in ("guidance_scale", "interpolation_guidance_scale"):
            check_number(name, getattr(self, name), minimum=0, note="(1 = no guidance)")

        check_strength(self.interpolation_strength, "interpolation_strength")

    @property
    def threshold_max_value(self) -> float:
        """The largest dynamic threshold, in latent units."""
        return 1.5 * self.latent_range if self.sample_max_value is None else float(self.sample_max_value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "settings") -> PipelineSettings:
        """Build from a dict; unknown keys or a missing ``latent_range`` raise ValueError naming ``source``."""
        if not isinstance(values, dict):
            raise ValueError(f"{source}: settings must be a JSON object, got {type(values).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"{source}: unknown pipeline settings {unknown}; allowed: {sorted(fields)}")
        if "latent_range" not in values:
            raise ValueError(f"{source} is incomplete: settings has no 'latent_range' (the latents' range for "
                             "dynamic thresholding, e.g. sample_range_from_data(latents, 0.999))")
        try:
            return cls(**values)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None


# The sampler a trained pipeline ships with: SDE-DPM-Solver++ 2M, chosen by measurement (docs/performance.md:
# at 15 keyframe + 5 interpolation steps it loses no quality against 25 + 25 DDIM steps, over two seeds).
DEFAULT_SAMPLER_CLASS = "DPMSolverMultistepScheduler"
DEFAULT_SAMPLER_OPTIONS: dict[str, Any] = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}


def sampling_scheduler_config(training_scheduler, sampler_class: str = DEFAULT_SAMPLER_CLASS,
                              **options: Any) -> dict[str, Any]:
    """The ``scheduler_config.json`` content of a pipeline folder for a model trained with ``training_scheduler``.

    The same noise schedule, timesteps and prediction type, sampled with ``sampler_class`` (default
    ``DEFAULT_SAMPLER_CLASS`` with ``DEFAULT_SAMPLER_OPTIONS``), then ``options``, e.g. the
    interpolator's ``timestep_spacing="trailing"``. A training stage that reads the file back
    converts it to the class it needs (``DDPMScheduler.from_config``), as diffusers does.
    """
    from minifusion import diffusion

    if sampler_class not in SCHEDULER_CLASS_NAMES:
        raise ValueError(f"sampler_class {sampler_class!r} is not one of {SCHEDULER_CLASS_NAMES}")
    defaults = DEFAULT_SAMPLER_OPTIONS if sampler_class == DEFAULT_SAMPLER_CLASS else {}
    sampler = getattr(diffusion, sampler_class).from_config(dict(training_scheduler.config),
                                                            **{**defaults, **options})
    return {"_class_name": sampler_class, **sampler.config}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"pipeline folder {str(path.parent)!r} is incomplete: missing {path.name} ({str(path)!r})")
    return read_json_object(path)


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_model_index(folder: str | os.PathLike) -> tuple[dict[str, str], PipelineSettings]:
    """(components -> class name, settings) from ``folder/model_index.json``; bad content raises ValueError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"pipeline folder {str(folder)!r} does not exist")
    path = folder / MODEL_INDEX_NAME
    index = _read_json(path)
    if index.get("_class_name", PIPELINE_CLASS_NAME) != PIPELINE_CLASS_NAME:
        raise ValueError(f"{str(path)!r} describes a {index['_class_name']!r}, not a {PIPELINE_CLASS_NAME}")
    components = index.get("components")
    if not isinstance(components, dict):
        raise ValueError(f"{str(path)!r} is incomplete: no 'components' object")
    components = {k: v for k, v in components.items() if v is not None}
    unknown = sorted(set(components) - set(COMPONENT_CLASSES))
    if unknown:
        raise ValueError(f"{str(path)!r} names unknown components {unknown}; allowed: {sorted(COMPONENT_CLASSES)}")
    missing = [c for c in REQUIRED_COMPONENTS if c not in components]
    if missing:
        raise ValueError(f"{str(path)!r} is incomplete: no entry for {missing}")
    for name, class_name in components.items():
        if class_name not in COMPONENT_CLASSES[name]:
            raise ValueError(f"{str(path)!r}: component {name!r} is a {class_name!r}, expected one of "
                             f"{', '.join(map(repr, COMPONENT_CLASSES[name]))}")
    if ("interpolation_unet" in components) != ("interpolation_scheduler" in components):
        raise ValueError(f"{str(path)!r}: 'interpolation_unet' and 'interpolation_scheduler' come together; "
                         f"got only one of them")
    return components, PipelineSettings.from_dict(index.get("settings", {}), source=repr(str(path)))


def model_index_dict(components: dict[str, str], settings: PipelineSettings) -> dict:
    from minifusion import __version__

    return {"_class_name": PIPELINE_CLASS_NAME, "_minifusion_version": __version__,
            "components": dict(sorted(components.items())), "settings": settings.to_dict()}


def write_model_index(folder: str | os.PathLike, settings: PipelineSettings | dict | None = None,
                      **setting_overrides: Any) -> Path:
    """(Re)write ``folder/model_index.json`` from the component folders present in ``folder``.

    Class names come from each component's ``config.json`` (``_class_name``) or
    ``scheduler_config.json``. Settings: ``settings`` (a ``PipelineSettings`` or dict), else
    those of an existing index, updated with ``setting_overrides``; ``latent_range`` must be
    known. For training recipes: call it after each stage, e.g.
    ``write_model_index(out, latent_range=sample_range_from_data(latents, 0.999))``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"pipeline folder {str(folder)!r} does not exist")
    components: dict[str, str] = {}
    for name in COMPONENT_CLASSES:
        file = folder / name / (SCHEDULER_CONFIG_NAME if name in SCHEDULER_COMPONENTS else CONFIG_NAME)
        if file.is_file():
            class_name = _read_json(file).get("_class_name")
            if class_name not in COMPONENT_CLASSES[name]:
                raise ValueError(f"{str(file)!r} holds a {class_name!r}, expected one of {COMPONENT_CLASSES[name]}")
            components[name] = class_name
    if settings is None:
        previous = folder / MODEL_INDEX_NAME
        values = _read_json(previous).get("settings", {}) if previous.is_file() else {}
    else:
        values = settings.to_dict() if isinstance(settings, PipelineSettings) else dict(settings)
    settings = PipelineSettings.from_dict({**values, **setting_overrides}, source="write_model_index")
    return write_json(folder / MODEL_INDEX_NAME, model_index_dict(components, settings))


def pretrained(name: str = DEFAULT_CHECKPOINT) -> Path:
    """The folder of a shipped pipeline: ``data_samples/checkpoints/NAME`` next to the package.

    The default, ``moving-shapes-motion``, is the pipeline whose keyframe model follows the prompted
    motion (docs/motion.md); ``moving-shapes`` keeps the paper's keyframe design for comparison.

    Works from any working directory (notebooks run from ``notebooks/``). The environment variable
    ``MINIFUSION_CHECKPOINTS`` replaces the shipped folder by another one (e.g. your own ``train all``
    output's parent), so that notebooks sample from your weights. Raises ValueError when the folder or
    its ``model_index.json`` is missing, saying how to train it.
    """
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"name must be a checkpoint folder name such as 'moving-shapes', got {name!r}")
    root = Path(os.environ["MINIFUSION_CHECKPOINTS"]) if os.environ.get("MINIFUSION_CHECKPOINTS") else CHECKPOINTS_DIR
    folder = root / name
    if not (folder / MODEL_INDEX_NAME).is_file():
        available = sorted(p.name for p in root.iterdir() if (p / MODEL_INDEX_NAME).is_file()) if root.is_dir() else []
        raise ValueError(
            f"no trained pipeline {name!r} at {str(folder)!r} (available: {available or 'none'}). Train it with "
            f"`python -m minifusion train STAGE --out data_samples/checkpoints/{name}` for each stage in order "
            "(autoencoder, t2i, keyframes, interpolation; see `python -m minifusion train --help`)"
        )
    return folder
