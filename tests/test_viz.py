"""Tests for minifusion.viz: conversions, GIF/HTML export, figures, drawing functions and widgets."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from minifusion import viz

F, H, W = 5, 8, 8
RED, GREEN = (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0)


def moving_square(frames: int = F, color=RED, size: int = H) -> torch.Tensor:
    """(3, F, size, size) in [-1, 1]: a 2x2 square one pixel further right each frame."""
    video = torch.full((3, frames, size, size), -1.0)
    for f in range(frames):
        x = f % (size - 2)
        video[:, f, 2:4, x : x + 2] = torch.tensor(color)[:, None, None]
    return video


def uniform_video(values) -> torch.Tensor:
    """(3, F, 4, 4) whose frame f is one grey level values[f] (in [-1, 1])."""
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1).expand(3, -1, 4, 4).clone()


class StubScheduler:
    """Stand-in for the diffusion module's schedulers: alphas_cumprod and add_noise (DDPM)."""

    def __init__(self, num_train_timesteps: int = 10):
        betas = torch.linspace(1e-3, 0.5, num_train_timesteps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1 - betas, 0).float()

    def add_noise(self, x0, noise, timesteps):
        a = self.alphas_cumprod[timesteps].view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise


def read_gif(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ---------------------------------------------------------------- conversions


def test_torch_video_maps_minus_one_to_one_onto_0_255():
    video = torch.tensor([-1.0, 0.0, 1.0, -0.5]).view(1, 4, 1, 1).expand(3, 4, 2, 2)  # (C, F, H, W)
    frames = viz.to_uint8_frames(video)
    assert frames.dtype == np.uint8 and frames.shape == (4, 2, 2, 3)
    assert frames[:, 0, 0, 0].tolist() == [0, 128, 255, 64]  # rint(0.25 * 255) = 64


def test_numpy_pipeline_output_agrees_with_torch_model_tensor():
    video = moving_square() * 0.9  # (C, F, H, W) in [-1, 1]
    batch = torch.stack([video, -video])  # (B, C, F, H, W)
    pipeline = ((batch + 1) / 2).permute(0, 2, 3, 4, 1).numpy()  # (B, F, H, W, C) in [0, 1]
    np.testing.assert_array_equal(viz.to_uint8_frames(batch), viz.to_uint8_frames(pipeline))
    assert viz.to_uint8_frames(batch).shape == (2, F, H, W, 3)
    np.testing.assert_array_equal(viz.to_uint8_frames(video), viz.to_uint8_frames(pipeline[0]))


def test_explicit_layout_and_value_range():
    video = moving_square()
    channels_last = video.permute(1, 2, 3, 0)  # (F, H, W, C) torch tensor
    np.testing.assert_array_equal(
        viz.to_uint8_frames(channels_last, layout="fhwc"), viz.to_uint8_frames(video)
    )
    uint8 = viz.to_uint8_frames(video)
    np.testing.assert_array_equal(viz.to_uint8_frames(uint8, value_range=(0, 255)), uint8)
    as_numpy_cfhw = video.numpy()
    np.testing.assert_array_equal(
        viz.to_uint8_frames(as_numpy_cfhw, layout="cfhw", value_range=(-1, 1)), uint8
    )


def test_grey_image_and_low_precision_inputs():
    grey = torch.linspace(-1, 1, 16).view(1, 1, 4, 4)  # (C=1, F=1, H, W)
    frames = viz.to_uint8_frames(grey)
    assert frames.shape == (1, 4, 4, 1)
    rgb = viz.to_uint8_frames(grey, rgb=True)
    assert rgb.shape == (1, 4, 4, 3) and (rgb == frames).all()
    image = viz.to_uint8_image(grey[:, 0])  # (C, H, W)
    assert image.shape == (4, 4, 1) and image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    assert viz.to_uint8_frames(grey[:, 0]).shape == (1, 4, 4, 1)  # an image is one frame
    np.testing.assert_array_equal(viz.to_uint8_frames(grey.to(torch.bfloat16)), frames)
    np.testing.assert_array_equal(viz.to_uint8_image(np.full((2, 2, 3), 1.0))[..., 0], 255)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(4, 4), r"\(4, 4\)"),  # rank 2
        (torch.zeros(1, 1, 3, 2, 4, 4), r"\(1, 1, 3, 2, 4, 4\)"),  # rank 6
        (torch.zeros(4, 2, 8, 8), r"\(4, 2, 8, 8\).*4 channels.*latents"),  # latents
        (torch.zeros(2, 8, 8, 3), r"\(2, 8, 8, 3\).*layout='fhwc'"),  # channels last torch
        (np.zeros((3, 2, 8, 8)), r"\(3, 2, 8, 8\).*layout='cfhw'"),  # channels first numpy
        (torch.zeros(3, 2, 4, 4, dtype=torch.bool), "dtype bool"),
        (np.zeros((2, 4, 4, 3), np.uint8), "value_range"),
        (torch.full((3, 2, 4, 4), 255.0), r"255.*value_range \(-1, 1\)"),
        (np.full((2, 4, 4, 3), 255.0), r"value_range \(0, 1\)"),  # 0..255 data read as [0, 1]
        (torch.full((3, 2, 4, 4), float("nan")), "NaN"),
        ([[0.0]], "list"),
    ],
)
def test_bad_input_raises_with_shape_or_value(bad, match):
    with pytest.raises(ValueError, match=match):
        viz.to_uint8_frames(bad)


def test_bad_arguments_raise():
    video = moving_square()
    with pytest.raises(ValueError, match="layout 'nchw' is not one of"):
        viz.to_uint8_frames(video, layout="nchw")
    with pytest.raises(ValueError, match=r"layout 'bcfhw' needs a 5-D array, got shape \(3, 5, 8, 8\)"):
        viz.to_uint8_frames(video, layout="bcfhw")
    with pytest.raises(ValueError, match="low < high"):
        viz.to_uint8_frames(video, value_range=(1, -1))
    with pytest.raises(ValueError, match="one image"):
        viz.to_uint8_image(video)


def test_overshoot_and_noise_are_clipped_and_clip_allows_anything():
    video = torch.tensor([-1.3, 1.2]).view(1, 2, 1, 1).expand(3, 2, 1, 1)
    assert viz.to_uint8_frames(video)[:, 0, 0, 0].tolist() == [0, 255]
    noisy = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0)) * 2  # like x_t
    frames = viz.to_uint8_frames(noisy)  # (F, H, W, C)
    values = noisy.permute(1, 2, 3, 0).numpy()
    assert (frames[values >= 1] == 255).all() and (frames[values <= -1] == 0).all()
    inside = np.abs(values) < 0.99
    np.testing.assert_array_equal(frames[inside], np.rint((values[inside] + 1) * 127.5))
    huge = noisy * 10
    with pytest.raises(ValueError, match="clip=True"):
        viz.to_uint8_frames(huge)
    assert (viz.to_uint8_frames(huge, clip=True)[values * 10 >= 1] == 255).all()


def test_upscale_and_tile_batch():
    frames = viz.to_bfhwc_uint8(torch.stack([moving_square(), moving_square(color=GREEN)]))
    big = viz.upscale(frames, 3)
    assert big.shape == (2, F, 3 * H, 3 * W, 3)
    np.testing.assert_array_equal(big[..., ::3, ::3, :], frames)  # nearest neighbour, exact
    assert viz.upscale(frames, 0.5).shape == (2, F, H // 2, W // 2, 3)
    with pytest.raises(ValueError, match="scale"):
        viz.upscale(frames, 0)
    tiled = viz.tile_batch(frames, gap=2)
    assert tiled.shape == (F, H, 2 * W + 2, 3)
    np.testing.assert_array_equal(tiled[:, :, :W], frames[0])
    np.testing.assert_array_equal(tiled[:, :, W + 2 :], frames[1])
    assert (tiled[:, :, W : W + 2] == 255).all()
    assert viz.tile_batch(frames, ncols=1, gap=0).shape == (F, 2 * H, W, 3)


# ---------------------------------------------------------------- GIF / MP4 / HTML


def test_save_gif_round_trip(tmp_path):
    video = moving_square() * 0.8  # flat colours: the palette keeps them (almost) exactly
    path = viz.save_gif(video, tmp_path / "clip.gif", fps=10)
    assert path == tmp_path / "clip.gif" and path.exists()
    frames = read_gif(path.read_bytes())
    assert frames.shape == (F, H, W, 3)
    assert np.abs(frames.astype(int) - viz.to_uint8_frames(video)).max() <= 3
    with Image.open(path) as im:
        assert im.info["loop"] == 0 and im.info["duration"] == 100


def test_save_gif_scale_and_batch_tiling(tmp_path):
    batch = torch.stack([moving_square(), moving_square(color=GREEN)])  # (B, C, F, H, W)
    frames = read_gif(viz.save_gif(batch, tmp_path / "b.gif", scale=2).read_bytes())
    assert frames.shape == (F, 2 * H, 2 * (2 * W) + 2, 3)  # two 2x clips, 2-pixel gap
    expected = viz.tile_batch(viz.upscale(viz.to_bfhwc_uint8(batch), 2))
    assert np.abs(frames.astype(int) - expected).max() <= 3
    grey = moving_square()[:1]
    assert read_gif(viz.gif_bytes(grey)).shape == (F, H, W, 3)


def test_save_gif_bad_arguments(tmp_path):
    video = moving_square()
    with pytest.raises(ValueError, match="does not exist"):
        viz.save_gif(video, tmp_path / "missing" / "clip.gif")
    with pytest.raises(ValueError, match="'.gif'"):
        viz.save_gif(video, tmp_path / "clip.png")
    with pytest.raises(ValueError, match="fps 60"):
        viz.save_gif(video, tmp_path / "clip.gif", fps=60)
    with pytest.raises(ValueError, match="loop"):
        viz.save_gif(video, tmp_path / "clip.gif", loop=-1)


def test_save_mp4_without_imageio_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio", None)  # makes `import imageio` fail
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    with pytest.raises(ImportError, match="imageio-ffmpeg"):
        viz.save_mp4(moving_square(), tmp_path / "clip.mp4")


def test_video_html_is_a_small_img_with_the_gif():
    video = moving_square()
    html = viz.video_html(video, fps=8, scale=3)
    assert html.startswith("<img ") and "<script" not in html
    assert f'width="{3 * W}"' in html and f'height="{3 * H}"' in html
    data = base64.b64decode(re.search(r'base64,([^"]+)"', html).group(1))
    assert read_gif(data).shape == (F, H, W, 3)  # stored at native size; the browser enlarges
    small = viz.video_html(video, scale=0.5)
    assert read_gif(base64.b64decode(re.search(r'base64,([^"]+)"', small).group(1))).shape == (F, 4, 4, 3)
    shown = viz.show_video(video, fps=8, scale=3)
    assert type(shown).__name__ == "HTML" and shown.data == html


# ---------------------------------------------------------------- figures


def test_show_frames_rows_titles_labels_highlight():
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    keyframes, interpolated = moving_square(3), moving_square(9)
    fig = viz.show_frames(
        {"keyframes": keyframes, "interpolated": interpolated},
        labels=[["k0", "k1", "k2"], [str(i) for i in range(9)]],
        highlight=[[], [0, 4, 8]],
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    top, bottom = fig.axes
    assert top.get_title(loc="left") == "keyframes"
    assert [t.get_text() for t in top.get_xticklabels()] == ["k0", "k1", "k2"]
    assert sum(isinstance(p, Rectangle) for p in bottom.patches) == 3
    drawn = top.get_images()[0].get_array()
    np.testing.assert_array_equal(drawn[:, :W], viz.to_uint8_frames(keyframes)[0])
    batch = viz.show_frames(torch.stack([keyframes, keyframes]), titles=["a", "b"])
    assert len(batch.axes) == 2
    batch.savefig(io.BytesIO(), format="png")  # renders headless
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # closed in pyplot: shown once in a notebook, never leaked


def test_show_frames_bad_arguments():
    video = moving_square(3)
    with pytest.raises(ValueError, match="titles has 1 entries for 2 rows"):
        viz.show_frames([video, video], titles=["a"])
    with pytest.raises(ValueError, match="highlight index 3"):
        viz.show_frames(video, highlight=[3])
    with pytest.raises(ValueError, match="labels for row 0 has 2 entries for 3 frames"):
        viz.show_frames(video, labels=["a", "b"])
    with pytest.raises(ValueError, match="49 frames"):
        viz.show_frames(torch.zeros(3, 49, 2, 2))


def test_plot_schedules_draws_alpha_bar_and_log_snr():
    scheduler = StubScheduler(10)
    fig = viz.plot_schedules({"stub": scheduler, "raw": scheduler.alphas_cumprod.numpy()})
    ax_bar, ax_snr = fig.axes
    a = scheduler.alphas_cumprod.double().numpy()
    np.testing.assert_allclose(ax_bar.lines[0].get_ydata(), a)
    np.testing.assert_allclose(ax_snr.lines[0].get_ydata(), np.log(a / (1 - a)), rtol=1e-12)
    np.testing.assert_array_equal(ax_bar.lines[0].get_xdata(), np.arange(10))
    normalized = viz.plot_schedules({"stub": scheduler}, normalize_t=True)
    assert normalized.axes[0].lines[0].get_xdata()[-1] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="non-empty"):
        viz.plot_schedules({})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        viz.plot_schedules({"bad": np.array([1.0, 0.5, -0.1])})
    # a zero-terminal-SNR schedule ends at alpha_bar = 0 and still plots
    zsnr = viz.plot_schedules({"zero terminal SNR": np.array([1.0, 0.5, 0.0])})
    assert np.isneginf(zsnr.axes[1].lines[0].get_ydata()[-1])


def test_forward_noising_video_matches_closed_form():
    scheduler = StubScheduler(10)
    x0 = moving_square(1)[:, 0]  # (C, H, W)
    video = viz.forward_noising_video(x0, scheduler, [0, 4, 9], seed=3)
    assert video.shape == (3, 3, H, W)  # (C, T, H, W)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    for i, t in enumerate([0, 4, 9]):
        a = scheduler.alphas_cumprod[t]
        torch.testing.assert_close(video[:, i], a.sqrt() * x0 + (1 - a).sqrt() * noise)
    torch.testing.assert_close(video, viz.forward_noising_video(x0, scheduler, [0, 4, 9], seed=3))
    assert not torch.equal(video, viz.forward_noising_video(x0, scheduler, [0, 4, 9], seed=4))
    with pytest.raises(ValueError, match=r"\(3, 1, 8, 8\)"):
        viz.forward_noising_video(x0[:, None], scheduler, [0], seed=0)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        viz.forward_noising_video(x0, scheduler, [10], seed=0)


# ---------------------------------------------------------------- drawing functions


def test_draw_frame_and_png():
    video = moving_square()
    picture = viz.draw_frame(video, 2, scale=2)
    np.testing.assert_array_equal(picture, viz.upscale(viz.to_uint8_frames(video)[2], 2))
    labelled = viz.draw_frame(video, 2, scale=2, label="keyframe")
    assert labelled.shape[0] > picture.shape[0] and labelled.shape[1] == picture.shape[1]
    np.testing.assert_array_equal(labelled[: 2 * H], picture)
    np.testing.assert_array_equal(decode_png(viz.render_frame_png(video, 2, 2, "keyframe")), labelled)
    for bad in (F, -1):
        with pytest.raises(ValueError, match=rf"frame index {bad} is out of range: allowed 0..{F - 1}"):
            viz.draw_frame(video, bad)


def test_compare_times_put_keyframe_k_at_frame_4k():
    times = viz.compare_times({"keyframes": 8, "interpolated": 29})
    np.testing.assert_array_equal(times["keyframes"], 4 * np.arange(8))
    np.testing.assert_array_equal(times["interpolated"], np.arange(29))
    assert len(viz.compare_timeline(times)) == 29
    _, shown = viz.compare_frame_indices(times, 8)
    assert shown == {"keyframes": (2, True), "interpolated": (8, True)}
    _, shown = viz.compare_frame_indices(times, 11)
    assert shown["keyframes"] == (2, False)  # held between keyframes 2 and 3
    custom = viz.compare_times({"a": 2, "b": 3}, times={"a": [0.5, 1.5], "b": [0, 1, 2]})
    assert viz.compare_timeline(custom).tolist() == [0, 0.5, 1, 1.5, 2]
    assert viz.compare_frame_indices(custom, 0)[1]["a"] == (0, False)  # before its first frame
    with pytest.raises(ValueError, match="strictly increasing"):
        viz.compare_times({"a": 2}, times={"a": [1, 0]})
    with pytest.raises(ValueError, match="rows"):
        viz.compare_times({"a": 2}, times={"b": [0, 1]})


def test_draw_compare_frame_shows_the_right_frames():
    # Every frame one grey level, distinct across rows, so a colour identifies a frame.
    keys = uniform_video(np.linspace(-0.9, -0.2, 3))  # 3 keyframes
    frames = uniform_video(np.linspace(0.1, 0.9, 9))  # 4 * 3 - 3 = 9 interpolated frames
    rows = {"keyframes": keys, "interpolated": frames}
    key_levels = viz.to_uint8_frames(keys)[:, 0, 0, 0]
    frame_levels = viz.to_uint8_frames(frames)[:, 0, 0, 0]

    def levels(picture):  # grey levels that fill a frame's area (not the few anti-aliased pixels of the labels)
        grey = picture[(picture[..., 0] == picture[..., 1]) & (picture[..., 1] == picture[..., 2])][:, 0]
        values, counts = np.unique(grey, return_counts=True)
        return set(values[counts >= 64].tolist())

    for index, key in [(4, 1), (5, 1), (8, 2)]:
        picture = viz.draw_compare_frame(rows, index, scale=4)
        assert key_levels[key] in levels(picture) and frame_levels[index] in levels(picture)
        others = set(key_levels.tolist()) - {key_levels[key]}
        assert not others & levels(picture)
    with pytest.raises(ValueError, match="time index 9 is out of range"):
        viz.draw_compare_frame(rows, 9)


def test_draw_denoising_step_image_and_video():
    scheduler = StubScheduler(10)
    x0 = moving_square(1)[:, 0]
    noisy = viz.forward_noising_video(x0, scheduler, [9, 5], seed=0)
    trajectory = [(9, noisy[:, 0], None), (torch.tensor(5), noisy[:, 1], x0)]
    picture = viz.draw_denoising_step(trajectory, 1, scale=2)
    assert picture.ndim == 3 and picture.shape[2] == 3
    assert picture.shape[1] >= 2 * (2 * W)  # side by side
    clean = viz.upscale(viz.to_uint8_image(x0), 2)
    found = any(
        np.array_equal(picture[y : y + 2 * H, x : x + 2 * W], clean)
        for y in range(picture.shape[0] - 2 * H + 1)
        for x in range(picture.shape[1] - 2 * W + 1)
    )
    assert found
    video_trajectory = [(9, torch.randn(3, 3, H, W), moving_square(3))]
    tall = viz.draw_denoising_step(video_trajectory, 0, scale=1)
    assert tall.shape[0] > 2 * H and tall.shape[1] >= 3 * W  # two rows of three frames
    with pytest.raises(ValueError, match="step index 2 is out of range"):
        viz.draw_denoising_step(trajectory, 2)
    with pytest.raises(ValueError, match="entry 0"):
        viz.draw_denoising_step([(9, x0)], 0)


# ---------------------------------------------------------------- widgets


def test_frame_player_slider_updates_the_image():
    video = moving_square()
    labels = [f"f{i}" for i in range(F)]
    player = viz.frame_player(video, fps=10, scale=2, labels=labels)
    assert player.slider.max == F - 1 and player.play.max == F - 1 and player.play.interval == 100
    first = player.image.value
    assert first == viz.render_frame_png(video, 0, 2, "f0")
    player.slider.value = 3
    assert player.image.value != first
    assert player.image.value == viz.render_frame_png(video, 3, 2, "f3")
    np.testing.assert_array_equal(viz.widget_png(player), viz.draw_frame(video, 3, scale=2, label="f3"))
    with pytest.raises(ValueError, match="labels must be a sequence of 5 strings"):
        viz.frame_player(video, labels=["a"])


def test_compare_player_slider_runs_over_the_timeline():
    rows = {"keyframes": moving_square(3), "interpolated": moving_square(9)}
    player = viz.compare_player(rows, scale=2)
    assert player.slider.max == 8
    first = player.image.value
    player.slider.value = 5
    assert player.image.value != first
    np.testing.assert_array_equal(viz.widget_png(player), viz.draw_compare_frame(rows, 5, scale=2))


def test_denoising_scrubber_slider_updates_the_image():
    x0 = moving_square(1)[:, 0]
    noisy = viz.forward_noising_video(x0, StubScheduler(10), [9, 5, 0], seed=0)
    trajectory = [(t, noisy[:, i], x0 * (i + 1) / 3) for i, t in enumerate([9, 5, 0])]
    scrubber = viz.denoising_scrubber(trajectory, scale=2)
    assert scrubber.slider.max == 2
    first = scrubber.image.value
    scrubber.slider.value = 2
    assert scrubber.image.value != first
    np.testing.assert_array_equal(viz.widget_png(scrubber), viz.draw_denoising_step(trajectory, 2, scale=2))


def test_import_is_cheap():
    code = (
        "import sys, minifusion.viz; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'ipywidgets', 'IPython') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_save_mp4_round_trip_when_ffmpeg_is_installed(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    imageio = pytest.importorskip("imageio.v2")
    video = torch.rand(3, 4, 7, 9, generator=torch.Generator().manual_seed(0)) * 2 - 1
    path = viz.save_mp4(video, tmp_path / "clip.mp4", fps=8)
    frames = imageio.mimread(path)
    assert len(frames) == 4 and frames[0].shape == (8, 10, 3)  # padded to even sizes
