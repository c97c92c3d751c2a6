"""The notebooks as a learner uses them: JupyterLab in a real (headless) Chromium.

nbval proves the kernel side; these checks look at the page after Edit > Clear Outputs of All
Cells and Run > Run All Cells (FAST mode), for 00_tour and 11_full_pipeline:
- no cell shows an exception, and every code cell ran;
- every player widget (`minifusion.viz.widgets`) draws a frame, pressing Play and clicking the
  slider's track change the drawn frame;
- the keyframes-vs-interpolated player (`compare_player`) shows every row, aligned in time;
- figures and GIFs load and fit the notebook's width;
- no JavaScript error comes from the widgets, and the page fetches nothing off this machine.
Run with `make test-browser`; pictures are written to outputs/browser/.
"""

from __future__ import annotations

import warnings

import pytest

from widget_probe import Player, compare_rows, players_in_cell, read_picture, row_is_drawn

# What each notebook shows: the players by their slider's label (minifusion.viz.widgets names
# the slider "frame" for frame_player, "time" for compare_player, "step" for denoising_scrubber),
# and the rows of its compare player.
EXPECTED = {
    "00_tour.ipynb": {"players": ["frame"], "compare_rows": None},
    "11_full_pipeline.ipynb": {"players": ["time", "step", "frame"], "compare_rows": 3},
}
# Console errors that name one of these come from the widgets (ours or the ipywidgets manager).
WIDGET_WORDS = ("widget", "ipywidgets", "jupyter-widgets", "minifusion", "nouislider", "blob:")


# `notebook` in every check is the conftest fixture's NotebookRun: the notebook after Run All.


def _players(run) -> list[tuple[str, Player]]:
    """(slider label, player) for every player on the page, top to bottom (found once per run)."""
    if run.players is None:
        run.players = []
        for index in run.lab.code_cells():
            for player in players_in_cell(run.lab.cell(index), index):
                label = player.root.locator(".widget-slider .widget-label").first.text_content().strip()
                run.players.append((label, player))
    return run.players


def _shot(run, player: Player, label: str, what: str) -> str:
    """A picture of the player's controls and frame (not the empty width beside them)."""
    path = run.shot(f"cell{player.cell_index:02d}-{label}-{what}")
    player.root.scroll_into_view_if_needed()
    boxes = [player.root.locator(".widget-hbox").first.bounding_box(), player.image.bounding_box()]
    left, top = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    bottom = max(b["y"] + b["height"] for b in boxes)
    clip = {"x": left, "y": top, "width": right - left + 4, "height": bottom - top + 4}
    player.root.page.screenshot(path=str(path), clip=clip)
    return str(path)


def test_every_cell_ran_without_an_error(notebook):
    errors, not_run = notebook.lab.errors(), notebook.lab.not_run()
    for error in errors:
        notebook.lab.screenshot_cell_output(error.index, str(notebook.shot(f"FAILED-error-cell{error.index:02d}")))
    assert not errors, (
        f"{notebook.name}: cells show exceptions: " + "; ".join(map(str, errors))
        + f" (pictures: {notebook.shot('FAILED-error-cell*')})"
    )
    assert not not_run, f"{notebook.name}: code cells {not_run} never ran (Run All stopped early?)"


def test_players_draw_a_frame(notebook):
    players = _players(notebook)
    labels = [label for label, _ in players]
    expected = EXPECTED[notebook.name]["players"]
    assert labels == expected, f"{notebook.name}: expected players {expected} (by slider label), found {labels}"
    for label, player in players:
        picture = player.picture()
        path = _shot(notebook, player, label, "a-as-run")
        assert picture.drawn, f"{notebook.name}: {player} ({label}) draws no frame: {picture.describe()} ({path})"
        # The frame is drawn at its own pixel size (scaled in Python), not stretched to the page.
        assert abs(picture.shown_width - picture.pixels.shape[1]) <= 2, (
            f"{notebook.name}: {player} ({label}) shows its frame resized: {picture.describe()} ({path})"
        )


def test_play_changes_the_frame(notebook):
    for label, player in _players(notebook):
        before, after, picture = player.press_play()
        path = _shot(notebook, player, label, "b-after-play")
        assert picture is not None, (
            f"{notebook.name}: pressing Play on {player} ({label}) did not change the drawn frame "
            f"(slider {before} -> {after}; {path})"
        )
        assert after > before, f"{notebook.name}: Play on {player} ({label}) left the slider at {after} ({path})"
        assert picture.drawn, f"{notebook.name}: after Play {player} shows no frame: {picture.describe()} ({path})"


def test_slider_changes_the_frame(notebook):
    for label, player in _players(notebook):
        before, after, picture = player.move_slider(0.85 if player.value < 0.6 * player.maximum else 0.15)
        path = _shot(notebook, player, label, "c-after-slider")
        assert after != before, (
            f"{notebook.name}: clicking the slider of {player} ({label}) left it at {after} ({path})"
        )
        assert picture is not None, (
            f"{notebook.name}: moving the slider of {player} ({label}) from {before} to {after} did not change "
            f"the drawn frame ({path})"
        )


def test_keyframes_vs_interpolated_shows_every_row(notebook):
    rows_expected = EXPECTED[notebook.name]["compare_rows"]
    if rows_expected is None:
        pytest.skip(f"{notebook.name} has no keyframes-vs-interpolated player")
    [player] = [p for label, p in _players(notebook) if label == "time"]
    player.handle.focus()
    seen = {}
    for value, key in ((0, "Home"), (1, "ArrowRight")):  # the slider's keys, as a person uses them
        before, old_value = player.picture(), player.value
        player.handle.press(key)
        # the kernel redraws when the value changes (Home at time 0 already changes nothing)
        picture = player.wait_for_new_picture(before, timeout=10) if old_value != value else before
        path = _shot(notebook, player, "time", f"d-rows-at-time-{value}")
        assert player.value == value, (
            f"{notebook.name}: key {key} moved the compare slider to {player.value}, not {value}"
        )
        assert picture is not None, f"{notebook.name}: the compare player did not redraw at time {value} ({path})"
        rows = compare_rows(picture)
        assert len(rows) == rows_expected, (
            f"{notebook.name}: the keyframes-vs-interpolated player shows {len(rows)} framed rows at time "
            f"{value}, expected {rows_expected} ({path})"
        )
        blank = [i for i, (top, bottom, _) in enumerate(rows) if not row_is_drawn(picture, top, bottom)]
        assert not blank, f"{notebook.name}: compare rows {blank} are blank at time {value} ({path})"
        seen[value] = [kind for _, _, kind in rows]
    # At time 0 every row has a frame (green borders); one step later only the longest (last) row
    # has one and the keyframe row holds its frame (grey): rows are aligned by time, not by index.
    assert seen[0] == ["exact"] * rows_expected, f"{notebook.name}: row borders at time 0: {seen[0]}"
    assert seen[1][0] == "held" and seen[1][-1] == "exact", f"{notebook.name}: row borders at time 1: {seen[1]}"


def test_figures_load_and_fit_the_page(notebook):
    images = notebook.lab.page.locator(".jp-OutputArea-output img:not(.widget-image)")
    report, problems = [], []
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        size = image.evaluate(
            "img => { const o = img.closest('.jp-OutputArea-output'); const b = img.getBoundingClientRect();"
            " return {w: img.naturalWidth, h: img.naturalHeight, shownW: b.width, shownH: b.height,"
            " room: o.clientWidth, overflow: o.scrollWidth > o.clientWidth + 1}; }"
        )
        what = f"image {i} ({size['w']}x{size['h']} px shown at {size['shownW']:.0f}x{size['shownH']:.0f})"
        report.append(f"{what}, output area {size['room']} px wide")
        if not read_picture(image).drawn:
            problems.append(f"{what} draws nothing")
        if size["overflow"] or size["shownW"] > size["room"] + 1:
            problems.append(f"{what} is wider than its output area ({size['room']} px)")
        if size["shownH"] > 2 * notebook.lab.page.viewport_size["height"]:
            problems.append(f"{what} is taller than two screens")
        if size["shownW"] < 0.5 * size["w"]:
            warnings.warn(f"{notebook.name}: {what} is shrunk below half its size to fit the page")
    notebook.shot("figures").with_suffix(".txt").write_text("\n".join(report) + "\n")
    assert images.count() > 0, f"{notebook.name}: no figure or GIF in the outputs"
    assert not problems, f"{notebook.name}: " + "; ".join(problems)


def test_no_javascript_errors_from_the_widgets(notebook):
    errors = [(kind, text, where) for kind, text, where in notebook.console if kind in ("error", "pageerror")]
    ours = [e for e in errors if e[0] == "pageerror" or any(w in (e[1] + e[2]).lower() for w in WIDGET_WORDS)]
    for kind, text, where in errors:
        if (kind, text, where) not in ours:
            warnings.warn(f"{notebook.name}: console {kind} (not from the widgets): {text} [{where}]")
    assert not ours, f"{notebook.name}: JavaScript errors: " + "; ".join(f"{k}: {t} [{w}]" for k, t, w in ours)


def test_the_page_stays_on_this_machine(notebook):
    assert not notebook.foreign_requests, (
        f"{notebook.name}: the page fetched from outside this machine: {notebook.foreign_requests[:5]}"
    )
