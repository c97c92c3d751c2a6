"""ClipFolder: GIFs, frame folders, captions formats, resizing, errors; the shipped sample clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from minifusion.data import HELDOUT_COMBINATIONS, ClipFolder, make_params, parse_caption, render_clip
from minifusion.data import clip_folder as clip_folder_module
from minifusion.data.export import SAMPLE_CLIPS
from minifusion.viz import save_gif

ROOT = Path(__file__).resolve().parents[1]


def gray_frames(n: int, size: tuple[int, int] = (12, 12)) -> list[Image.Image]:
    """Frame k is a flat gray of level 10 * k, so the frames read back reveal their order."""
    return [Image.new("RGB", size, (10 * k,) * 3) for k in range(n)]


def level(video: torch.Tensor) -> list[int]:
    """Gray level of each frame of a (C, F, H, W) clip in [-1, 1]."""
    return [round(float(v)) for v in ((video.mean((0, 2, 3)) + 1) * 127.5)]


def write_frames(folder: Path, frames: list[Image.Image], names: list[str]) -> None:
    folder.mkdir(parents=True)
    for frame, name in zip(frames, names):
        frame.save(folder / name)


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """A folder with a rendered GIF, a PNG frame folder (names that sort wrongly as text) and captions."""
    params = make_params(color="red", shape="star", motion="moves", direction="right", num_frames=6, frame_skip=1)
    save_gif(render_clip(params, size=32), tmp_path / "star.gif")
    write_frames(tmp_path / "gray", gray_frames(12), [f"frame_{k}.png" for k in range(12)])
    (tmp_path / "captions.txt").write_text(
        "# file<TAB>caption\n\nstar.gif\ta red star moves right\ngray\ta gray screen gets brighter\n"
    )
    return tmp_path


def test_reads_gif_and_frame_folder(clips: Path):
    ds = ClipFolder(clips, num_frames=6, size=32)
    assert len(ds) == 2
    star = ds[0]
    assert star["caption"] == "a red star moves right" and star["attributes"] == {}
    assert star["video"].shape == (3, 6, 32, 32) and star["video"].dtype == torch.float32
    params = make_params(color="red", shape="star", motion="moves", direction="right", num_frames=6, frame_skip=1)
    assert (star["video"] - render_clip(params, size=32)).abs().mean() < 0.02  # GIF round trip
    gray = ds[1]["video"]
    assert level(gray) == [0, 10, 20, 30, 40, 50]  # frame_2 before frame_10: numbers sort as numbers
    assert gray.min() >= -1 and gray.max() <= 1


def test_frame_skip_and_resize_with_centre_crop(tmp_path: Path):
    frames = []
    for k in range(9):
        im = Image.new("RGB", (30, 10), (0, 0, 0))
        im.paste((10 * k,) * 3, (10, 0, 20, 10))  # only the centre square is lit
        frames.append(im)
    write_frames(tmp_path / "wide", frames, [f"{k:03d}.jpg" if k % 2 else f"{k:03d}.png" for k in range(9)])
    (tmp_path / "c.txt").write_text("wide\twide frames\n")
    ds = ClipFolder(tmp_path, "c.txt", num_frames=3, frame_skip=4, size=20)
    video = ds[0]["video"]
    assert video.shape == (3, 3, 20, 20)
    assert [abs(v - e) <= 2 for v, e in zip(level(video), [0, 40, 80])] == [True] * 3  # jpg is lossy
    assert video.std(dim=(2, 3)).max() < 0.05  # the dark sides were cropped away


def test_json_and_csv_captions(clips: Path):
    (clips / "caps.json").write_text(json.dumps({"star.gif": "a red star moves right", "gray": "gray"}))
    (clips / "list.json").write_text(json.dumps([{"file": "gray", "caption": "gray"}]))
    (clips / "caps.csv").write_text('file,caption\nstar.gif,"a red star moves right"\ngray,"gray, brighter"\n')
    assert [c for _, c in ClipFolder(clips, "caps.json", num_frames=2).entries] == ["a red star moves right", "gray"]
    assert ClipFolder(clips, clips / "list.json", num_frames=2)[0]["caption"] == "gray"
    assert ClipFolder(clips, "caps.csv", num_frames=2)[1]["caption"] == "gray, brighter"


def test_parse_captions_fills_attributes_or_names_the_clip(clips: Path):
    (clips / "captions.txt").write_text("star.gif\ta red star moves right\n")
    assert ClipFolder(clips, num_frames=2, parse_captions=True)[0]["attributes"]["direction"] == "right"
    (clips / "captions.txt").write_text("star.gif\ta red star moves right\ngray\ta gray screen\n")
    with pytest.raises(ValueError, match="gray.*'gray'"):
        ClipFolder(clips, parse_captions=True)


def test_batches_with_the_default_collate(clips: Path):
    batch = next(iter(DataLoader(ClipFolder(clips, num_frames=4, size=16), batch_size=2)))
    assert batch["video"].shape == (2, 3, 4, 16, 16) and len(batch["caption"]) == 2


# ---------------------------------------------------------------- errors name the file and the fix


def test_missing_captions_file(clips: Path):
    with pytest.raises(FileNotFoundError, match="nope.txt.*filename<TAB>caption"):
        ClipFolder(clips, "nope.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ClipFolder(clips / "missing_folder")


def test_captions_entry_without_clip(clips: Path):
    (clips / "captions.txt").write_text("star.gif\ta red star\nghost.gif\ta ghost\n")
    with pytest.raises(FileNotFoundError, match="'ghost.gif'.*no clip"):
        ClipFolder(clips)


def test_clip_missing_when_read(clips: Path):
    ds = ClipFolder(clips, num_frames=2)
    (clips / "star.gif").unlink()
    with pytest.raises(FileNotFoundError, match="star.gif"):
        ds[0]


def test_corrupt_clip_names_the_file(clips: Path):
    (clips / "star.gif").write_bytes(b"GIF89a this is not really a gif")
    ds = ClipFolder(clips, num_frames=2)
    with pytest.raises(ValueError, match="could not read clip .*star.gif"):
        ds[0]
    (clips / "gray" / "frame_3.png").write_bytes(b"\x89PNG broken")
    ds[1]  # only frames 0 and 1 are decoded
    with pytest.raises(ValueError, match="could not read clip .*gray"):
        ClipFolder(clips, num_frames=5)[1]


def test_too_few_frames(clips: Path):
    ds = ClipFolder(clips, num_frames=5, frame_skip=3)  # needs 13 frames, gray has 12
    with pytest.raises(ValueError, match=r"gray has 12 frames; num_frames=5 at frame_skip=3 needs at least 13"):
        ds[1]


def test_bad_captions_lines_and_types(clips: Path):
    (clips / "captions.txt").write_text("star.gif a red star without a tab\n")
    with pytest.raises(ValueError, match="line 1.*filename<TAB>caption"):
        ClipFolder(clips)
    (clips / "captions.txt").write_text("star.gif\tone\nstar.gif\ttwo\n")
    with pytest.raises(ValueError, match="more than once"):
        ClipFolder(clips)
    (clips / "captions.txt").write_text("# only a comment\n")
    with pytest.raises(ValueError, match="no entries"):
        ClipFolder(clips)
    (clips / "caps.yaml").write_text("star.gif: a star\n")
    with pytest.raises(ValueError, match="'.yaml'.*'.json'"):
        ClipFolder(clips, "caps.yaml")
    (clips / "notes.bmp").write_bytes(b"")
    (clips / "captions.txt").write_text("notes.bmp\ta bitmap\n")
    with pytest.raises(ValueError, match="'.bmp'.*'.gif'"):
        ClipFolder(clips)
    (clips / "captions.txt").write_text("star.gif\ta star\n")
    bad = (({"num_frames": 1}, "num_frames 1"), ({"size": 2}, "size 2"), ({"frame_skip": 0}, "frame_skip 0"))
    for kwargs, words in bad:
        with pytest.raises(ValueError, match=words):
            ClipFolder(clips, **kwargs)


def test_mp4_without_reader_says_how_to_install(clips: Path, monkeypatch: pytest.MonkeyPatch):
    (clips / "waves.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (clips / "captions.txt").write_text("waves.mp4\twaves\nstar.gif\ta star\n")
    monkeypatch.setattr(clip_folder_module, "video_reader_available", lambda: False)
    with pytest.raises(ImportError, match="waves.mp4.*pip install imageio imageio-ffmpeg"):
        ClipFolder(clips)


# ---------------------------------------------------------------- the shipped samples


def test_shipped_sample_clips_load_and_match_their_captions():
    ds = ClipFolder(ROOT / "data_samples" / "clips", num_frames=16, parse_captions=True)
    assert len(ds) == len(SAMPLE_CLIPS) == 12
    attrs = [parse_caption(caption) for _, caption in ds.entries]
    assert {a["motion"] for a in attrs} == {"moves", "bounces", "rotates", "grows", "shrinks"}
    assert any((a["color"], a["shape"]) in HELDOUT_COMBINATIONS for a in attrs)
    for i in (0, 4, 8):  # the files are what export_samples renders today
        params = make_params(**SAMPLE_CLIPS[i], num_frames=16, frame_skip=4, seed=i)
        item = ds[i]
        assert item["caption"] == params.caption and parse_caption(item["caption"]) == item["attributes"]
        assert (item["video"] - render_clip(params, size=64)).abs().mean() < 0.02
    for path, _ in ds.entries:
        assert path.stat().st_size < 100_000
    keyframes = ClipFolder(ROOT / "data_samples" / "clips", num_frames=8, frame_skip=2)[0]["video"]
    assert torch.equal(keyframes, ds[0]["video"][:, ::2])
    assert np.isfinite(keyframes.numpy()).all()
