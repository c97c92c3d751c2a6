"""Train on your own clips: a dataset over a folder of GIFs, frame folders or videos plus captions.

The second loader: a user's own folder of clips. Layout::

    my_clips/
        captions.txt          one line per clip: filename<TAB>caption ('#' starts a comment)
        dog.gif               a GIF
        sunset/               a folder of frames: PNG/JPG, in name order (numbers compared
            frame_001.png       as numbers, so frame_2 comes before frame_10)
            frame_002.png
        waves.mp4             MP4/WebM/MOV/AVI/MKV: needs `pip install imageio imageio-ffmpeg`

The captions file may instead be JSON (``{"dog.gif": "a dog runs", ...}`` or a list of
``{"file": ..., "caption": ...}``) or CSV with a header naming the columns ``file`` and
``caption``. Paths in it are relative to the folder.

Each item takes frames 0, frame_skip, 2 * frame_skip, ... (num_frames of them) from the
start of the clip, centre-crops them to a square, resizes them to `size` and returns the
same dict as `MovingShapes`: ``video`` (C, F, H, W) float32 in [-1, 1], ``caption`` and
``attributes`` (empty, or the attributes a Moving Shapes caption states, with
``parse_captions=True``). Clips are decoded when an item is read.

Taught in notebook 01 (notebooks/01_moving_shapes.ipynb).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence
from torch.utils.data import Dataset

from minifusion.checks import check_int
from minifusion.data.captions import parse_caption
from minifusion.data.clips import check_clip_length

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv")
CAPTION_SUFFIXES = (".txt", ".tsv", ".json", ".csv")
VIDEO_READER_HINT = "pip install imageio imageio-ffmpeg  (or: pip install 'minifusion[video]')"


def video_reader_available() -> bool:
    """True when the optional MP4 reader (imageio with its ffmpeg plugin) is installed."""
    return importlib.util.find_spec("imageio") is not None and importlib.util.find_spec("imageio_ffmpeg") is not None


def read_captions(path: Path) -> list[tuple[str, str]]:
    """(filename, caption) pairs from a .txt/.tsv, .json or .csv captions file."""
    suffix = path.suffix.lower()
    if suffix not in CAPTION_SUFFIXES:
        allowed = ", ".join(map(repr, CAPTION_SUFFIXES))
        raise ValueError(f"captions file {path} has suffix {suffix!r}; allowed: {allowed}")
    text = path.read_text(encoding="utf-8")
    entries: list[tuple[str, str]] = []
    if suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            entries = [(str(k), v) for k, v in data.items()]
        elif isinstance(data, list) and all(isinstance(d, dict) and {"file", "caption"} <= d.keys() for d in data):
            entries = [(str(d["file"]), d["caption"]) for d in data]
        else:
            raise ValueError(f"captions file {path}: expected {{filename: caption}} or a list of "
                             f"{{'file': ..., 'caption': ...}}, got {type(data).__name__}")
    elif suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        columns = rows[0].keys() if rows else []
        if "file" not in columns or "caption" not in columns:
            raise ValueError(f"captions file {path}: the CSV header must name columns 'file' and 'caption', "
                             f"got {list(columns)}")
        entries = [(r["file"], r["caption"]) for r in rows]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, tab, caption = line.partition("\t")
            if not tab:
                raise ValueError(f"captions file {path}, line {number}: expected 'filename<TAB>caption', got {line!r}")
            entries.append((name.strip(), caption.strip()))
    for name, caption in entries:
        if not isinstance(caption, str) or not caption.strip() or not name.strip():
            raise ValueError(f"captions file {path}: entry {name!r} needs a file name and a non-empty caption, "
                             f"got {caption!r}")
    names = [n for n, _ in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"captions file {path} lists {duplicates} more than once")
    if not entries:
        raise ValueError(f"captions file {path} has no entries; write one line per clip: filename<TAB>caption")
    return entries


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class ClipFolder(Dataset):
    """A folder of your own captioned clips, with the same item format as `MovingShapes`.

    Args:
        root: the folder.
        captions_file: file name inside `root` (or an absolute path); .txt/.tsv, .json or .csv.
        num_frames: frames per item (>= 2).
        size: output height and width in pixels (>= 8).
        frame_skip: source frames between returned frames (>= 1).
        parse_captions: fill `attributes` from Moving Shapes captions (error if one does not parse).
    """

    def __init__(
        self,
        root: str | Path,
        captions_file: str | Path = "captions.txt",
        *,
        num_frames: int = 8,
        size: int = 64,
        frame_skip: int = 1,
        parse_captions: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"clip folder {self.root} does not exist or is not a folder")
        self.num_frames, self.frame_skip = check_clip_length(num_frames, frame_skip)
        self.size = check_int("size", size, minimum=8, numpy=True, note="(pixels)")
        captions_path = Path(captions_file)
        if not captions_path.is_absolute():
            captions_path = self.root / captions_path
        if not captions_path.is_file():
            raise FileNotFoundError(
                f"captions file {captions_path} not found; write one line per clip 'filename<TAB>caption' "
                f"(or JSON {{filename: caption}}, or CSV with columns file,caption) and pass its name as captions_file"
            )
        self.captions_path = captions_path
        self.entries: list[tuple[Path, str]] = []
        for name, caption in read_captions(captions_path):
            path = self.root / name
            if not path.exists():
                raise FileNotFoundError(
                    f"captions entry {name!r} in {captions_path.name} has no clip: {path} does not exist"
                )
            self._kind(path)  # unsupported types fail now, not mid-training
            self.entries.append((path, caption))
        videos = [p for p, _ in self.entries if p.suffix.lower() in VIDEO_SUFFIXES]
        if videos and not video_reader_available():
            raise ImportError(
                f"reading {videos[0].name} (and {len(videos) - 1} more video files) needs the optional video "
                f"reader: {VIDEO_READER_HINT}. GIFs and folders of PNG/JPG frames need nothing extra."
            )
        self.parse_captions = bool(parse_captions)
        self._attributes: list[dict] = []
        for path, caption in self.entries:
            try:
                self._attributes.append(parse_caption(caption) if self.parse_captions else {})
            except ValueError as err:
                raise ValueError(f"parse_captions=True: the caption of {path.name} is not a Moving Shapes "
                                 f"caption: {err}") from None

    @staticmethod
    def _kind(path: Path) -> str:
        if path.is_dir():
            return "frames"
        suffix = path.suffix.lower()
        if suffix == ".gif":
            return "gif"
        if suffix in VIDEO_SUFFIXES:
            return "video"
        raise ValueError(f"clip {path} has type {suffix!r}; allowed: a folder of {'/'.join(FRAME_SUFFIXES)} frames, "
                         f"'.gif', or with the video reader {', '.join(map(repr, VIDEO_SUFFIXES))}")

    @property
    def frames_needed(self) -> int:
        """Source frames a clip must have: (num_frames - 1) * frame_skip + 1."""
        return (self.num_frames - 1) * self.frame_skip + 1

    def __len__(self) -> int:
        return len(self.entries)

    def _frames(self, path: Path) -> Iterator[Image.Image]:
        kind = self._kind(path)
        if kind == "gif":
            with Image.open(path) as im:
                for frame in ImageSequence.Iterator(im):
                    yield frame.convert("RGB")
        elif kind == "frames":
            files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
            for file in files:
                with Image.open(file) as im:
                    yield im.convert("RGB")
        else:
            import imageio.v2 as imageio  # optional dependency, checked in __init__

            with imageio.get_reader(str(path)) as reader:
                for array in reader:
                    yield Image.fromarray(np.asarray(array)[..., :3])

    def _to_square(self, image: Image.Image) -> np.ndarray:
        w, h = image.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
        if side != self.size:
            image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)  # antialiased when shrinking
        return np.asarray(image, dtype=np.uint8)

    def load_clip(self, path: Path) -> torch.Tensor:
        """Decode one clip into (C, F, H, W) float32 in [-1, 1]; errors name the file."""
        if not path.exists():
            raise FileNotFoundError(f"clip {path} does not exist (listed in {self.captions_path.name})")
        frames: list[np.ndarray] = []
        count = 0  # source frames decoded
        try:
            for image in self._frames(path):
                if count % self.frame_skip == 0:
                    frames.append(self._to_square(image))
                count += 1
                if len(frames) == self.num_frames:
                    break
        except (OSError, SyntaxError, ValueError, EOFError, RuntimeError) as err:
            raise ValueError(f"could not read clip {path}: {type(err).__name__}: {err}") from err
        if len(frames) < self.num_frames:
            raise ValueError(f"clip {path} has {count} frames; num_frames={self.num_frames} at "
                             f"frame_skip={self.frame_skip} needs at least {self.frames_needed}")
        video = torch.from_numpy(np.stack(frames)).float().div_(127.5).sub_(1.0)  # (F, H, W, C)
        return video.permute(3, 0, 1, 2).contiguous()  # (C, F, H, W)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} is out of range for a ClipFolder of {len(self.entries)} clips")
        path, caption = self.entries[index]
        return {"video": self.load_clip(path), "caption": caption, "attributes": dict(self._attributes[index])}

    def __repr__(self) -> str:
        return f"ClipFolder({str(self.root)!r}, {len(self)} clips, num_frames={self.num_frames}, size={self.size})"
