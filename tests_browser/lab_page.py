"""Driving one notebook in JupyterLab the way a person does, with Playwright.

The actions go through the UI (the menus a learner clicks: Edit > Clear Outputs of All Cells,
Run > Run All Cells). What happened is read back from the page: the kernel status in the status
bar, and the notebook's cell models through `window.jupyterapp` (the server runs with
`expose_app_in_browser`), which tells an exception apart from a warning printed on stderr - in
the DOM both are an `application/vnd.jupyter.stderr` output with the same classes.

    lab = LabPage(page, server.notebook_url("00_tour.ipynb"))
    lab.open()                       # waits for the kernel to be idle
    lab.run_all(timeout=600)         # returns when every cell ran or one failed
    lab.errors()                     # [] when no cell shows an exception
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from playwright.sync_api import Page

# The notebook's state as the page holds it: kernel status and, per cell, type, execution count,
# execution state and the errors among its outputs (output_type "error").
_STATE_JS = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = [];
  const list = panel.content.model.cells;
  for (let i = 0; i < list.length; i++) {
    const cell = list.get(i);
    const errors = [];
    if (cell.type === 'code') {
      for (let j = 0; j < cell.outputs.length; j++) {
        const out = cell.outputs.get(j).toJSON();
        if (out.output_type === 'error') errors.push({ename: out.ename, evalue: out.evalue});
      }
    }
    cells.push({type: cell.type, count: cell.type === 'code' ? cell.executionCount : null,
                state: cell.executionState || null, errors});
  }
  return {kernel: kernel ? kernel.status : 'no kernel',
          kernelName: panel.sessionContext.kernelDisplayName, cells};
}"""


@dataclass
class CellError:
    """An exception shown in a cell's output (`index` counts all cells, from 0)."""

    index: int
    ename: str
    evalue: str

    def __str__(self) -> str:
        return f"cell {self.index}: {self.ename}: {self.evalue}"


class LabPage:
    """One notebook open in one browser page."""

    def __init__(self, page: Page, url: str, *, kernel_display_name: str = "Python (minifusion)"):
        self.page = page
        self.url = url
        self.kernel_display_name = kernel_display_name

    # -- reading the page -------------------------------------------------------------------
    def state(self) -> dict | None:
        return self.page.evaluate(_STATE_JS)

    def code_cells(self) -> list[int]:
        """Indices (among all cells) of the code cells."""
        return [i for i, c in enumerate(self.state()["cells"]) if c["type"] == "code"]

    def errors(self) -> list[CellError]:
        state = self.state()
        return [CellError(i, e["ename"], e["evalue"]) for i, c in enumerate(state["cells"]) for e in c["errors"]]

    def not_run(self) -> list[int]:
        """Code cells without an execution count (never ran in this session)."""
        return [i for i, c in enumerate(self.state()["cells"]) if c["type"] == "code" and c["count"] is None]

    def cell(self, index: int):
        """The DOM node of cell `index` (all cells are in the DOM; off-screen ones are not painted)."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def kernel_status_text(self) -> str:
        items = self.page.locator(".jp-StatusBar-TextItem").all_text_contents()
        return next((t.strip() for t in items if "|" in t), "")

    # -- actions ----------------------------------------------------------------------------
    def open(self, timeout: float = 120) -> None:
        """Load the notebook page and wait until its kernel (the project's) is idle."""
        self.page.goto(self.url)
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout * 1000)
        wanted = f"{self.kernel_display_name} | Idle"
        deadline = time.monotonic() + timeout
        while self.kernel_status_text() != wanted:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the kernel did not become idle in {timeout:.0f} s: the status bar says "
                    f"{self.kernel_status_text()!r}, expected {wanted!r} (is the '{self.kernel_display_name}' "
                    "kernel installed? `make setup` installs it)"
                )
            time.sleep(0.25)
        self.page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout * 1000)

    def menu(self, menu: str, command: str) -> None:
        """Click menu `menu` in the menu bar, then its item that runs `command`."""
        self.cell(0).click(position={"x": 2, "y": 2})  # the notebook is the active document
        self.page.locator("li.lm-MenuBar-item", has_text=menu).first.click()
        self.page.locator(f"li.lm-Menu-item[data-command='{command}']").click()

    def run_all(self, timeout: float = 600) -> float:
        """Edit > Clear Outputs of All Cells, then Run > Run All Cells; wait until done.

        Done means: the kernel is idle, no cell is running, and either every code cell has an
        execution count or one shows an exception (JupyterLab stops there). Returns the seconds
        it took. Raises AssertionError on timeout, naming the cell that was still running.
        """
        self.menu("Edit", "editmenu:clear-all")
        self.page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.content.model.cells.length > 0 && "
            "[...Array(window.jupyterapp.shell.currentWidget.content.model.cells.length).keys()]"
            ".every(i => { const c = window.jupyterapp.shell.currentWidget.content.model.cells.get(i);"
            " return c.type !== 'code' || c.executionCount === null; })",
            timeout=30_000,
        )
        start = time.monotonic()
        self.menu("Run", "runmenu:run-all")
        settled = 0
        while True:
            state = self.state()
            cells = state["cells"]
            running = [i for i, c in enumerate(cells) if c["state"] == "running"]
            finished = all(c["count"] is not None for c in cells if c["type"] == "code")
            failed = any(c["errors"] for c in cells)
            if state["kernel"] == "idle" and not running and (finished or failed):
                settled += 1
                if settled >= 3:  # idle for three polls in a row: nothing queued behind
                    return time.monotonic() - start
            else:
                settled = 0
            if time.monotonic() - start > timeout:
                where = f"cell {running[0]} was still running" if running else f"kernel {state['kernel']}"
                raise AssertionError(f"Run All Cells did not finish in {timeout:.0f} s: {where}")
            time.sleep(0.5)

    # -- screenshots ------------------------------------------------------------------------
    def screenshot_cell_output(self, index: int, path: str) -> None:
        """A picture of cell `index`'s output area (scrolled into view first)."""
        output = self.cell(index).locator(".jp-OutputArea").first
        output.scroll_into_view_if_needed()
        output.screenshot(path=path)

    def screenshot_whole_notebook(self, path: str, max_height: int = 16000) -> None:
        """The whole notebook in one picture: the viewport is made as tall as the notebook.

        JupyterLab scrolls the notebook inside its own panel, so a plain full-page screenshot
        would show only one screen; with a tall viewport every cell is laid out and painted.
        """
        size = self.page.viewport_size
        height = self.page.evaluate(
            "() => { const n = document.querySelector('.jp-WindowedPanel-outer') || "
            "document.querySelector('.jp-Notebook'); n.scrollTop = 0; return n.scrollHeight; }"
        )
        try:
            self.page.set_viewport_size({"width": size["width"], "height": min(max_height, height + 200)})
            self.page.wait_for_timeout(1500)  # layout, then images decode
            bottom = self.page.evaluate(  # below the last cell only the status bar: leave it out
                "() => Math.max(...[...document.querySelectorAll('.jp-Notebook .jp-Cell')]"
                ".map(c => c.getBoundingClientRect().bottom))"
            )
            width = self.page.viewport_size["width"]
            clip = {"x": 0, "y": 0, "width": width, "height": min(bottom + 16, max_height)}
            self.page.screenshot(path=path, clip=clip)
        finally:
            self.page.set_viewport_size(size)
            self.page.wait_for_timeout(500)
