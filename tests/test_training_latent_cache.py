"""Latent cache: encodes once, reuses, re-encodes when the data or the encoder change; keeps captions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minifusion.data import MovingShapes
from minifusion.training import LatentCache


class Pool(nn.Module):
    """A stand-in encoder: 2x spatial average pooling and a 1x1x1 conv to 2 channels."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 2, 1)
        self.calls = 0

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = nn.functional.avg_pool3d(video, (1, 2, 2))  # (B, 3, F, H/2, W/2)
        return self.conv(x)  # (B, 2, F, H/2, W/2)


def dataset(**kw) -> MovingShapes:
    return MovingShapes("train", num_frames=2, size=8, length=5, **kw)


def test_encode_once_then_reuse(tmp_path):
    enc = Pool()
    cache = LatentCache(tmp_path, encode_fn=enc.encode, encoder=enc, batch_size=2, progress=False)
    ds = dataset()
    cached = cache.load_or_encode(ds)
    assert enc.calls == 3 and len(cached) == 5  # ceil(5 / 2) batches
    item = cached[3]
    assert item["latents"].shape == (2, 2, 4, 4)
    assert item["caption"] == ds[3]["caption"]
    assert item["attributes"]["color"] == ds[3]["attributes"]["color"]
    assert torch.allclose(item["latents"], enc.encode(ds[3]["video"][None])[0], atol=1e-6)
    calls = enc.calls
    again = LatentCache(tmp_path, encode_fn=enc.encode, encoder=enc, progress=False).load_or_encode(ds)
    assert enc.calls == calls and torch.equal(again.latents, cached.latents) and again.path == cached.path


def test_fingerprint_changes_with_data_and_weights(tmp_path):
    enc = Pool()
    cache = LatentCache(tmp_path, encode_fn=enc.encode, encoder=enc, progress=False)
    base = cache.path_for(dataset())
    assert cache.path_for(dataset(seed=1)) != base
    assert cache.path_for(dataset(colors=["red"])) != base
    with torch.no_grad():
        enc.conv.weight.add_(0.01)
    assert LatentCache(tmp_path, encode_fn=enc.encode, encoder=enc, progress=False).path_for(dataset()) != base


def test_damaged_cache_is_rebuilt(tmp_path):
    enc = Pool()
    cache = LatentCache(tmp_path, encode_fn=enc.encode, encoder=enc, progress=False)
    path = cache.load_or_encode(dataset()).path
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="re-encoding"):
        rebuilt = cache.load_or_encode(dataset())
    assert rebuilt.latents.shape == (5, 2, 2, 4, 4)


def test_bad_encoder_output(tmp_path):
    cache = LatentCache(tmp_path, encode_fn=lambda v: v[:1], encoder=None, progress=False)
    with pytest.raises(ValueError, match="one latent per video"):
        cache.load_or_encode(dataset())
