"""Fixtures for the browser tests: one JupyterLab server, one headless Chromium, one run per notebook.

`make test-browser` installs Chromium from the OS packages and Playwright from PyPI, then runs
`pytest tests_browser`. The browser is the system's Chromium (`MINIFUSION_CHROMIUM` overrides
the path); Playwright never downloads one. Kernels run with MINIFUSION_FAST=1, so every
notebook trains only a few steps.

The `notebook` fixture opens one notebook (a copy: the committed outputs stay as they are), runs
all its cells through the menus, and keeps the page open for the checks in
`test_notebooks_in_lab.py`. Pictures go to outputs/browser/; a failing check adds one of the
page as it was then. Everything started here is stopped at the end, also on failure, Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab_page import LabPage
from lab_server import LabServer

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs" / "browser"
NOTEBOOKS = ["00_tour.ipynb", "11_full_pipeline.ipynb"]
RUN_TIMEOUT = float(os.environ.get("MINIFUSION_BROWSER_TIMEOUT", "480"))  # seconds per notebook
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen
_CHROMIUM_CANDIDATES = ["/usr/lib/chromium/chromium", "chromium", "chromium-browser"]
_RUN_SECONDS: dict[str, float] = {}  # notebook -> seconds Run All Cells took, for the summary


def chromium_path() -> str:
    """The system Chromium binary (the Debian package's real binary, not its shell wrapper)."""
    wanted = os.environ.get("MINIFUSION_CHROMIUM")
    for candidate in [wanted] if wanted else _CHROMIUM_CANDIDATES:
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    raise pytest.UsageError(
        f"no Chromium found (tried {wanted or _CHROMIUM_CANDIDATES}): `make test-browser` installs the "
        "OS package `chromium`, or set MINIFUSION_CHROMIUM to a Chromium binary"
    )


def _sigterm_as_interrupt(signum, frame):  # so a killed run still runs the finalizers below
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    shutil.rmtree(OUT, ignore_errors=True)  # pictures of an earlier run would mislead
    OUT.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def lab_server():
    workdir = Path(tempfile.mkdtemp(prefix="minifusion-lab-"))
    server = LabServer([REPO / "notebooks" / name for name in NOTEBOOKS], workdir, env={"MINIFUSION_FAST": "1"})
    try:
        yield server.start()
    finally:
        server.stop()
        if server.log_path.exists():
            shutil.copy2(server.log_path, OUT / "jupyterlab.log")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class NotebookRun:
    """One notebook after Run All Cells, with what the page logged on the way."""

    name: str
    lab: LabPage
    seconds: float = 0.0
    console: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, text, where)
    foreign_requests: list[str] = field(default_factory=list)  # URLs off this machine
    players: list | None = None  # (slider label, widget_probe.Player), found by the first check

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def shot(self, what: str) -> Path:
        """Where the picture `what` of this notebook goes."""
        return OUT / f"{self.stem}-{what}.png"


def _record(run: NotebookRun, page) -> None:
    def on_console(message):
        location = message.location or {}
        where = f"{location.get('url', '')}:{location.get('lineNumber', '')}"
        run.console.append((message.type, message.text, where))

    page.on("console", on_console)
    def on_page_error(error):  # an uncaught exception in the page's JavaScript
        run.console.append(("pageerror", f"{error.name}: {error.message}", error.stack or ""))

    page.on("pageerror", on_page_error)

    def on_request(request):
        host = request.url.split("/")[2] if "://" in request.url else ""
        if request.url.startswith(("http", "ws")) and not host.startswith(("127.0.0.1", "localhost", "[::1]")):
            run.foreign_requests.append(request.url)

    page.on("request", on_request)


@pytest.fixture(scope="module", params=NOTEBOOKS)
def notebook(request, lab_server, browser):
    """Open `request.param` in JupyterLab, clear it, run all cells; yield the NotebookRun."""
    name = request.param
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    run = NotebookRun(name, LabPage(page, lab_server.notebook_url(name)))
    _record(run, page)
    try:
        run.lab.open()
        page.wait_for_timeout(1500)  # the committed outputs render
        run.lab.screenshot_whole_notebook(str(run.shot("1-opened")))
        try:
            run.seconds = run.lab.run_all(timeout=RUN_TIMEOUT)
        finally:
            run.lab.screenshot_whole_notebook(str(run.shot("2-after-run-all")))
        _RUN_SECONDS[name] = run.seconds
        yield run
    except Exception as error:
        try:
            page.screenshot(path=run.shot("FAILED-setup"))
        except Exception:  # the browser may be gone; the error itself matters more
            pass
        raise AssertionError(
            f"{name}: {error}\n(picture: {run.shot('FAILED-setup')}; JupyterLab log: {OUT / 'jupyterlab.log'})"
        ) from error
    finally:
        lines = [f"{kind}\t{text}\t{where}" for kind, text, where in run.console]
        run.shot("console").with_suffix(".txt").write_text("\n".join(lines) + "\n")
        context.close()
        try:
            lab_server.shutdown_kernels()
        except OSError:
            pass


def pytest_terminal_summary(terminalreporter):
    """Where the pictures are, and how long each Run All Cells took."""
    pictures = sorted(OUT.glob("*.png"))
    if not pictures:
        return
    terminalreporter.section("browser pictures")
    for name, seconds in _RUN_SECONDS.items():
        terminalreporter.write_line(f"{name}: Run All Cells took {seconds:.0f} s (MINIFUSION_FAST=1)")
    terminalreporter.write_line(f"{len(pictures)} pictures in {OUT}:")
    for path in pictures:
        terminalreporter.write_line(f"  {path.name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing check leaves a picture of the page as it was then, and says where it is."""
    outcome = yield
    report = outcome.get_result()
    run = item.funcargs.get("notebook") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and isinstance(run, NotebookRun):
        path = run.shot(f"FAILED-{item.originalname}")
        try:
            run.lab.page.screenshot(path=str(path))
            report.sections.append(("browser picture", str(path)))
        except Exception as error:  # the page may be gone; the failure itself matters more
            report.sections.append(("browser picture", f"none: {error}"))
