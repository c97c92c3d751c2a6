"""Save/load and summaries shared by every model (diffusers' ``ModelMixin`` idea, from scratch).

A checkpoint folder holds ``config.json`` (the constructor arguments, a dataclass) and
``model.safetensors`` (tensors only), so loading a stranger's checkpoint never runs code.
Writes are atomic: each file goes to a temporary name in the same folder, then is renamed.

Taught in notebook 13 (notebooks/13_mixed_precision_and_scaling.ipynb).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from minifusion.json_files import read_json_object

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_dtype(name: str, x: torch.Tensor, dtype: torch.dtype, hint: str = "") -> None:
    """A model input must have the model's dtype (autocast may mix floating-point dtypes).

    Without this check a float64 or uint8 input fails deep inside a convolution with a message
    about bias types that names neither the argument nor what it should be.
    """
    if x.dtype == dtype or (x.is_floating_point() and torch.is_autocast_enabled(x.device.type)):
        return
    raise ValueError(f"{name} must be a tensor of the model's dtype {dtype}, got {x.dtype}{hint}")


class ModelMixin(nn.Module):
    """Base class: ``self.config`` is a dataclass of constructor arguments.

    Subclasses set ``config_class`` and build themselves from ``config``; ``Model(config)`` and
    ``Model()`` (toy defaults) both work.
    """

    config_class: ClassVar[type]
    # Config fields added after checkpoints were saved without them, with the value that
    # reproduces those older checkpoints (used only when a saved config.json lacks the key).
    legacy_config_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any | None = None) -> None:
        super().__init__()
        if config is None:
            config = self.config_class()
        if isinstance(config, dict):
            allowed = [f.name for f in dataclasses.fields(self.config_class)]
            unknown = sorted(set(config) - set(allowed))
            if unknown:
                raise ValueError(f"unknown {self.config_class.__name__} keys {unknown}; allowed: {allowed}")
            config = self.config_class(**config)
        if not isinstance(config, self.config_class):
            raise ValueError(
                f"config must be a {self.config_class.__name__} or dict, got {type(config).__name__}"
            )
        self.config = config

    # -- memory ------------------------------------------------------------------------------
    def enable_gradient_checkpointing(self) -> None:
        """Keep only each layer's input during the forward pass and recompute the layer in backward.

        Activation memory in training drops to about one layer's worth plus the layer inputs, for
        about one extra forward pass of compute (Chen et al. 2016, "Training deep nets with sublinear
        memory cost"; diffusers' method of the same name). No effect under ``torch.no_grad()``.
        """
        if not hasattr(self, "gradient_checkpointing"):
            raise ValueError(f"{type(self).__name__} does not support gradient checkpointing (the U-Nets do)")
        self.gradient_checkpointing = True

    def disable_gradient_checkpointing(self) -> None:
        if hasattr(self, "gradient_checkpointing"):
            self.gradient_checkpointing = False

    @staticmethod
    def run_checkpointed(fn, *args):
        """``fn(*args)`` whose intermediate activations are recomputed in backward instead of stored."""
        from torch.utils.checkpoint import checkpoint

        return checkpoint(fn, *args, use_reentrant=False)

    # -- persistence -------------------------------------------------------------------------
    def config_dict(self) -> dict:
        d = dataclasses.asdict(self.config)
        d["_class_name"] = type(self).__name__
        return d

    def save_pretrained(self, save_directory: str | os.PathLike, *, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (atomically) into ``save_directory``.

        ``dtype`` (e.g. ``torch.float16``) stores floating-point tensors in that precision to halve
        the files (the shipped checkpoints); ``from_pretrained`` loads them back into float32 models.
        """
        from safetensors.torch import save as save_tensors

        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating-point torch.dtype such as torch.float16, got {dtype!r}")
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        # safetensors refuses shared or non-contiguous storage: store independent copies.
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.state_dict().items()}
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        atomic_write_bytes(directory / WEIGHTS_NAME, save_tensors(state))
        text = json.dumps(self.config_dict(), indent=2, sort_keys=True, default=_json_default)
        atomic_write_bytes(directory / CONFIG_NAME, text.encode())
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, map_location: str | torch.device = "cpu"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        if not directory.is_dir():
            raise ValueError(f"checkpoint folder {str(directory)!r} does not exist")
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for p in (config_path, weights_path):
            if not p.is_file():
                raise ValueError(f"checkpoint folder {str(directory)!r} is incomplete: missing {p.name}")
        raw = read_json_object(config_path, "checkpoint file", holding="config keys")
        name = raw.pop("_class_name", cls.__name__)
        if name != cls.__name__:
            raise ValueError(f"{str(config_path)!r} holds a {name}, not a {cls.__name__}")
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(raw) - fields)
        if unknown:
            raise ValueError(f"{str(config_path)!r} has unknown {cls.__name__} config keys {unknown}")
        raw = {**cls.legacy_config_defaults, **raw}
        model = cls(cls.config_class(**{k: _from_json(v) for k, v in raw.items()}))
        try:
            state = load_file(str(weights_path), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"checkpoint file {str(weights_path)!r} is corrupt or unreadable: {e}") from None
        own = model.state_dict()
        wrong = [f"{k} {tuple(v.shape)} (the config gives {tuple(own[k].shape)})"
                 for k, v in state.items() if k in own and v.shape != own[k].shape]
        if wrong:
            raise ValueError(
                f"checkpoint file {str(weights_path)!r} does not match {cls.__name__}: weights of another shape, "
                f"{'; '.join(wrong[:3])}{'...' if len(wrong) > 3 else ''}; was {str(config_path)!r} edited?"
            )
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"checkpoint file {str(weights_path)!r} does not match {cls.__name__}: "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            )
        return model

    # -- introspection -----------------------------------------------------------------------
    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def flops_per_frame(self) -> int:
        """FLOPs of one forward pass per frame, counted by ``torch.utils.flop_counter``.

        Subclasses provide ``example_inputs()`` -> (args, kwargs, num_frames) for batch size 1.
        """
        from torch.utils.flop_counter import FlopCounterMode

        args, kwargs, num_frames = self.example_inputs()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            self(*args, **kwargs)
        return int(counter.get_total_flops() // max(num_frames, 1))

    def example_inputs(self) -> tuple[tuple, dict, int]:
        raise NotImplementedError(f"{type(self).__name__} does not define example_inputs()")

    def summary(self) -> str:
        """One line: class, parameters, trainable parameters, forward FLOPs per frame."""
        total, trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
        try:
            flops = f"{self.flops_per_frame() / 1e6:.1f} MFLOPs/frame"
        except NotImplementedError:
            flops = "FLOPs n/a"
        return f"{type(self).__name__}: {total / 1e6:.3f}M params ({trainable / 1e6:.3f}M trainable), {flops}"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a config")


def _from_json(value: Any) -> Any:
    # JSON has no tuples; configs use tuples for widths so they stay hashable and immutable.
    return tuple(_from_json(v) for v in value) if isinstance(value, list) else value
