"""Latent caching: encode a dataset's videos once, train later stages on the stored latents.

Latent diffusion trains the denoiser on ``encode(video)`` (Rombach et al. 2022); the
autoencoder is frozen by then, so encoding the same clips at every step is wasted work.
``LatentCache`` encodes a whole dataset once (batched, with a progress bar), stores the
latents with the captions and attributes in one tensor file (written atomically), and reuses
it on the next run (and in the other processes of a torchrun). The file name is a fingerprint of
the dataset's settings and the encoder's weights, so a changed dataset or a retrained autoencoder
can never be served stale latents: it simply gets a new file.

Shapes: videos (B, C, F, H, W) in, latents (B, C', F, h, w) out, stored float32 on the CPU.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from minifusion.checks import positive_int
from minifusion.models.modeling_utils import atomic_write_bytes
from minifusion.viz.progress import progress_bar

_SIMPLE = (str, int, float, bool, type(None))


def module_weights_hash(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def dataset_description(dataset) -> dict:
    """The settings that define a dataset's items: its class and simple public attributes.

    For ``MovingShapes`` that is split, frames, size, frame skip, seed, length and the attribute
    filters. Datasets with unusual state can define ``fingerprint_fields()`` returning a dict.
    """
    if hasattr(dataset, "fingerprint_fields"):
        fields = dict(dataset.fingerprint_fields())
    else:
        fields = {}
        for k, v in sorted(vars(dataset).items()):
            if k.startswith("_"):
                continue
            if isinstance(v, _SIMPLE) or (isinstance(v, (list, tuple)) and all(isinstance(x, _SIMPLE) for x in v)):
                fields[k] = list(v) if isinstance(v, tuple) else v
    return {"class": type(dataset).__name__, "length": len(dataset), **fields}


class CachedLatents(Dataset):
    """Items ``{"latents": (C', F, h, w), "caption": str, "attributes": dict}``.

    ``caption`` and ``attributes`` are present when the source dataset's items had them.
    """

    def __init__(self, latents: torch.Tensor, captions: list[str] | None = None,
                 attributes: list[dict] | None = None, *, path: Path | None = None) -> None:
        self.latents, self.captions, self.attributes, self.path = latents, captions, attributes, path

    def __len__(self) -> int:
        return self.latents.shape[0]

    def __getitem__(self, index: int) -> dict:
        item = {"latents": self.latents[index]}
        if self.captions is not None:
            item["caption"] = self.captions[index]
        if self.attributes is not None:
            item["attributes"] = self.attributes[index]
        return item


class LatentCache:
    """Encode-once store of a dataset's latents under ``cache_dir``.

    Args:
        cache_dir: folder for the cache files (one per fingerprint).
        encode_fn: maps a video batch (B, C, F, H, W) on ``device`` to latents (B, C', F, h, w).
        encoder: the module whose weights ``encode_fn`` uses (hashed into the fingerprint);
            None only if ``encode_fn`` has no weights.
        batch_size: videos encoded per call.
        video_key: item entry holding the video.
        device: where encoding runs.
        progress: show a progress bar.
        extra_fingerprint: anything else that changes the latents (e.g. a latent scaling factor).
    """

    def __init__(self, cache_dir: str | os.PathLike, *, encode_fn: Callable[[torch.Tensor], torch.Tensor],
                 encoder: nn.Module | None, batch_size: int = 16, video_key: str = "video",
                 device: str | torch.device = "cpu", progress: bool = True,
                 extra_fingerprint: Mapping | None = None) -> None:
        positive_int("batch_size", batch_size)
        self.cache_dir, self.encode_fn, self.encoder = Path(cache_dir), encode_fn, encoder
        self.batch_size, self.video_key, self.device = batch_size, video_key, torch.device(device)
        self.progress, self.extra_fingerprint = progress, dict(extra_fingerprint or {})
        self._encoder_hash = module_weights_hash(encoder) if encoder is not None else "none"

    def fingerprint(self, dataset) -> str:
        desc = {"dataset": dataset_description(dataset), "encoder": self._encoder_hash,
                "video_key": self.video_key, "extra": self.extra_fingerprint}
        text = json.dumps(desc, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def path_for(self, dataset) -> Path:
        return self.cache_dir / f"latents_{type(dataset).__name__}_{self.fingerprint(dataset)}.pt"

    def load_or_encode(self, dataset) -> CachedLatents:
        """The cached latents of ``dataset``, encoding (and storing) them first if needed.

        Under torchrun the first process of each machine does this first and the others then read
        its file (``distributed.local_main_first``): one encoding per machine, no two writers of a file.
        """
        from minifusion.training.distributed import local_main_first

        with local_main_first():
            return self._load_or_encode(dataset)

    def _load_or_encode(self, dataset) -> CachedLatents:
        path = self.path_for(dataset)
        if path.is_file():
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True)
                if stored["latents"].shape[0] == len(dataset):
                    return CachedLatents(stored["latents"], stored.get("captions"), stored.get("attributes"), path=path)
            except Exception as e:  # a damaged cache file is rebuilt, never trusted
                warnings.warn(f"latent cache {str(path)!r} is unreadable ({type(e).__name__}: {e}); re-encoding",
                              stacklevel=2)
        latents, captions, attributes = self._encode_all(dataset)
        buf = io.BytesIO()
        torch.save({"latents": latents, "captions": captions, "attributes": attributes,
                    "fingerprint": self.fingerprint(dataset)}, buf)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
        return CachedLatents(latents, captions, attributes, path=path)

    @torch.no_grad()
    def _encode_all(self, dataset) -> tuple[torch.Tensor, list[str] | None, list[dict] | None]:
        chunks, captions, attributes = [], [], []
        was_training = self.encoder.training if self.encoder is not None else False
        if self.encoder is not None:
            self.encoder.eval()
        try:
            starts = range(0, len(dataset), self.batch_size)
            for start in progress_bar(starts, desc="encoding latents", disable=not self.progress):
                items = [dataset[i] for i in range(start, min(start + self.batch_size, len(dataset)))]
                if self.video_key not in items[0]:
                    raise ValueError(f"dataset items have no entry {self.video_key!r}; they have {sorted(items[0])}")
                video = default_collate([it[self.video_key] for it in items]).to(self.device)  # (B, C, F, H, W)
                if video.ndim != 5:
                    raise ValueError(f"videos must be (B, C, F, H, W), got shape {tuple(video.shape)}")
                latents = self.encode_fn(video)  # (B, C', F, h, w)
                if not isinstance(latents, torch.Tensor) or latents.shape[0] != video.shape[0]:
                    got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
                    raise ValueError(f"encode_fn returned {got} for a batch of shape {tuple(video.shape)}; "
                                     "it must return one latent per video")
                chunks.append(latents.detach().float().cpu())
                captions += [it.get("caption") for it in items]
                attributes += [_plain(it.get("attributes")) for it in items]
        finally:
            if self.encoder is not None:
                self.encoder.train(was_training)
        return (torch.cat(chunks), captions if all(isinstance(c, str) for c in captions) else None,
                attributes if all(a is not None for a in attributes) else None)


def _plain(value):
    """Attributes as plain values and tensors (what ``torch.load(weights_only=True)`` accepts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return torch.as_tensor(value.tolist())
    return value
