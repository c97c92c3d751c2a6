"""What the project's players (`minifusion.viz.widgets`) show in the browser, read from the page.

Every player is an ipywidgets VBox [HBox[Play, IntSlider], Image]; in JupyterLab that is a
`.widget-vbox` holding a `.widget-play` (buttons with the fa-play / fa-pause / fa-stop icons), a
noUiSlider `.widget-slider` (its handle carries the value in `aria-valuenow`) and an
`img.widget-image` whose source is a blob of the PNG the kernel drew.

"Draws a frame" is judged from the pixels the browser decoded: the image is drawn onto a canvas
and read back (`Picture`), so an image that failed to load, has no size or is one flat colour
fails. "The frame changed" compares those pixels before and after an action.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from dataclasses import dataclass

import numpy as np
from playwright.sync_api import Locator

# The pixels the browser shows for an <img>, as a PNG data URL (null while it has not loaded).
_PIXELS_JS = """img => {
  if (!img.complete || img.naturalWidth === 0) return null;
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  canvas.getContext('2d').drawImage(img, 0, 0);
  const box = img.getBoundingClientRect();
  return {url: canvas.toDataURL('image/png'), shownWidth: box.width, shownHeight: box.height};
}"""

_BORDER_EXACT = (0, 160, 60)  # minifusion.viz.drawing: a compare row with a frame at this time
_BORDER_HELD = (200, 200, 200)  # ... and one still showing an earlier frame


@dataclass
class Picture:
    """An image as the browser decoded it: pixels (H, W, 3) uint8 and its size on screen."""

    pixels: np.ndarray
    shown_width: float
    shown_height: float

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.pixels.tobytes()).hexdigest()[:12]

    @property
    def drawn(self) -> bool:
        """Has a size on screen and more than one colour (a blank or broken image has one)."""
        sample = self.pixels.reshape(-1, 3)[:: max(1, self.pixels.shape[0] * self.pixels.shape[1] // 4096)]
        return self.shown_width > 0 and self.shown_height > 0 and len(np.unique(sample, axis=0)) > 1

    def describe(self) -> str:
        h, w = self.pixels.shape[:2]
        return f"{w}x{h} px shown at {self.shown_width:.0f}x{self.shown_height:.0f}, pixels {self.digest}"


def read_picture(img: Locator, timeout: float = 10) -> Picture:
    """The decoded pixels of `img`, waiting up to `timeout` s for it to load."""
    from PIL import Image

    deadline = time.monotonic() + timeout
    while True:
        data = img.evaluate(_PIXELS_JS)
        if data is not None:
            png = base64.b64decode(data["url"].split(",", 1)[1])
            pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            return Picture(pixels, data["shownWidth"], data["shownHeight"])
        if time.monotonic() > deadline:
            raise AssertionError(f"the image did not load within {timeout:.0f} s")
        time.sleep(0.2)


class Player:
    """One player widget on the page (`root` is its `.widget-vbox`)."""

    def __init__(self, root: Locator, cell_index: int):
        self.root = root
        self.cell_index = cell_index
        self.image = root.locator("img.widget-image").first
        self.handle = root.locator(".widget-slider .noUi-handle").first
        self.track = root.locator(".widget-slider .noUi-target").first
        self.buttons = root.locator(".widget-play button")

    def __str__(self) -> str:
        return f"the player in cell {self.cell_index}"

    @property
    def value(self) -> int:
        return int(float(self.handle.get_attribute("aria-valuenow")))

    @property
    def maximum(self) -> int:
        return int(float(self.handle.get_attribute("aria-valuemax")))

    def picture(self) -> Picture:
        self.image.scroll_into_view_if_needed()
        return read_picture(self.image)

    def wait_for_new_picture(self, before: Picture, timeout: float) -> Picture | None:
        """The picture once its pixels differ from `before` (the kernel redrew), or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.picture()
            if now.digest != before.digest:
                return now
            time.sleep(0.2)
        return None

    def press_play(self, seconds: float = 2.0, timeout: float = 15) -> tuple[int, int, Picture | None]:
        """Click Play, let it run `seconds`, then pause it if it has not stopped at the end.

        Returns (slider value before, after, the picture after or None when it never changed).
        """
        self.root.scroll_into_view_if_needed()
        before_value, before = self.value, self.picture()
        play = self.buttons.nth(0)
        play.click()
        changed = self.wait_for_new_picture(before, timeout)
        self.page_wait(seconds)
        if play.locator("i.fa-pause").count():  # still playing (it stops by itself at the end)
            play.click()
            self.page_wait(0.5)
        return before_value, self.value, (self.picture() if changed else None)

    def move_slider(self, fraction: float, timeout: float = 15) -> tuple[int, int, Picture | None]:
        """Click the slider's track at `fraction` (0..1) of its width, as a person would.

        Returns (slider value before, after, the picture after or None when it never changed).
        """
        before_value, before = self.value, self.picture()
        self.track.scroll_into_view_if_needed()
        box = self.track.bounding_box()
        self.track.page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)
        deadline = time.monotonic() + timeout
        while self.value == before_value and time.monotonic() < deadline:
            time.sleep(0.1)
        changed = self.wait_for_new_picture(before, timeout)
        return before_value, self.value, changed

    def page_wait(self, seconds: float) -> None:
        self.root.page.wait_for_timeout(seconds * 1000)


def row_is_drawn(picture: Picture, top: int, bottom: int) -> bool:
    """The frame inside one compare row's border (lines top..bottom) has more than one colour."""
    inside = picture.pixels[top + 3 : bottom - 3, 3:-3].reshape(-1, 3)
    return len(np.unique(inside[:: max(1, len(inside) // 2048)], axis=0)) > 1


def players_in_cell(cell: Locator, cell_index: int) -> list[Player]:
    """The players in one cell's outputs (a VBox holding a slider and an image)."""
    boxes = cell.locator(".jp-OutputArea .widget-vbox:has(.widget-slider):has(img.widget-image)")
    return [Player(boxes.nth(i), cell_index) for i in range(boxes.count())]


def compare_rows(picture: Picture) -> list[tuple[int, int, str]]:
    """The rows of a compare-player picture: (top, bottom, "exact" | "held") per bordered frame.

    `draw_compare_frame` draws every row's frame inside a 3-pixel border, green when the row has
    a frame at this time and grey when it holds an earlier one; a row is a run of picture lines
    whose third column is border-coloured.
    """
    column = picture.pixels[:, 1].astype(int)
    kinds = []
    for rgb in column:
        if np.abs(rgb - _BORDER_EXACT).max() <= 8:
            kinds.append("exact")
        elif np.abs(rgb - _BORDER_HELD).max() <= 8:
            kinds.append("held")
        else:
            kinds.append(None)
    rows, start = [], None
    for y, kind in enumerate(kinds + [None]):
        if start is not None and kind != kinds[start]:
            if y - start >= 8:  # a frame, not a stray line of text
                rows.append((start, y, kinds[start]))
            start = None
        if start is None and kind is not None:
            start = y
    return rows
