"""Text-to-image U-Net (Kandinsky 3.0 style): shapes, frames = images, masks, save/load, errors."""

from __future__ import annotations

import pytest
import torch

from minifusion.models import UNet, UNetConfig
from minifusion.nn import AttentionBlock


def tiny(**kw) -> UNet:
    torch.manual_seed(0)
    cfg = dict(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=8, attention_head_dim=8,
               norm_groups=2, sample_size=8, text_length=3)
    return UNet(UNetConfig(**{**cfg, **kw})).eval()


def inputs(b=2, f=None, size=8):
    g = torch.Generator().manual_seed(1)
    shape = (b, 4, size, size) if f is None else (b, 4, f, size, size)
    return torch.randn(shape, generator=g), torch.tensor([10.0, 900.0])[:b], torch.randn(b, 3, 8, generator=g)


def test_default_is_a_few_million_parameters_with_attention_only_below_the_top():
    model = UNet()
    assert model.config.block_out_channels == (32, 64, 128)
    assert 2e6 < model.num_parameters() < 8e6
    top = [m for m in model.down_blocks[0].modules() if isinstance(m, AttentionBlock)]
    top += [m for m in model.up_blocks[-1].modules() if isinstance(m, AttentionBlock)]
    below = [m for m in model.down_blocks[1].modules() if isinstance(m, AttentionBlock)]
    assert not top and {m.is_cross_attention for m in below} == {True, False}


def test_image_shape_and_video_equals_frame_by_frame():
    model = tiny()
    x, t, text = inputs()
    assert model(x, t, text).shape == x.shape
    video, t, text = inputs(f=3)
    out = model(video, t, text)
    assert out.shape == video.shape
    for f in range(3):
        torch.testing.assert_close(out[:, :, f], model(video[:, :, f], t, text), atol=1e-5, rtol=0)


def test_timestep_and_text_matter_and_scalar_timestep_broadcasts():
    model = tiny()
    torch.nn.init.normal_(model.down_blocks[0].layers[0].blocks[0].norm.context_mlp[1].weight)
    x, t, text = inputs()
    out = model(x, t, text)
    assert not torch.allclose(out, model(x, t + 100, text))
    assert not torch.allclose(out, model(x, t, text.flip(0)))
    torch.testing.assert_close(model(x, 7, text), model(x, torch.tensor([7, 7]), text))


def test_padded_text_tokens_are_ignored():
    model = tiny()
    x, t, text = inputs()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    text2 = text.clone()
    text2[0, 2] = 5.0
    torch.testing.assert_close(model(x, t, text, mask), model(x, t, text2, mask))
    assert not torch.allclose(model(x, t, text), model(x, t, text2))


def test_save_load_round_trip(tmp_path):
    model = tiny(prediction_type="v_prediction")
    model.save_pretrained(tmp_path)
    loaded = UNet.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    x, t, text = inputs()
    assert torch.equal(loaded(x, t, text), model(x, t, text))


def test_summary_and_dict_config():
    model = UNet({"block_out_channels": (8, 16), "layers_per_block": 1, "cross_attention_dim": 8,
                  "attention_head_dim": 8, "norm_groups": 2, "sample_size": 8})
    line = model.summary()
    assert line.startswith("UNet:") and "MFLOPs/frame" in line


def test_input_errors_show_the_shape():
    model = tiny()
    x, t, text = inputs()
    with pytest.raises(ValueError, match=r"got shape \(4, 8, 8\)"):
        model(x[0], t, text)
    with pytest.raises(ValueError, match=r"3 channels.*\(2, 3, 8, 8\)"):
        model(x[:, :3], t, text)
    with pytest.raises(ValueError, match=r"divisible by the down-sampling factor 2, got shape \(2, 4, 7, 7\)"):
        model(x[..., :7, :7], t, text)
    with pytest.raises(ValueError, match=r"\(B, L, 8\).*\(2, 3, 5\)"):
        model(x, t, text[..., :5])
    with pytest.raises(ValueError, match=r"timestep.*\(3,\)"):
        model(x, torch.zeros(3), text)


def test_config_errors():
    with pytest.raises(ValueError, match="prediction_type 'eps' is not one of 'epsilon', 'v_prediction', 'sample'"):
        tiny(prediction_type="eps")
    with pytest.raises(ValueError, match="norm_groups 3 does not divide"):
        tiny(norm_groups=3)
    with pytest.raises(ValueError, match="attention_levels"):
        tiny(attention_levels=(True,))


def test_meta_device_forward_for_flop_counts_and_nan_timestep_error():
    # FLOPs are counted on the meta device (notebook 09, flops_per_frame): the input checks must not
    # need the values there, while on a real device a NaN timestep is refused by name
    model = tiny()
    x, t, text = inputs()
    meta = model.to("meta")
    out = meta(x.to("meta"), t.to("meta"), text.to("meta"))
    assert out.device.type == "meta" and out.shape == x.shape
    with pytest.raises(ValueError, match=r"timestep must be finite, got \[nan, 900.0\]"):
        tiny()(x, torch.tensor([float("nan"), 900.0]), text)
