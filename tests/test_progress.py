"""Progress bars: live on a terminal, sparse when written to a file (a log gets a few redraws, not thousands)."""

from __future__ import annotations

import io
import subprocess
import sys
from types import SimpleNamespace

from minifusion.viz.progress import LOG_INTERVAL, in_notebook, is_interactive, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        super().isatty()  # a closed stream raises ValueError, as a real one does
        return True


def _redraws(stream: io.StringIO, n: int = 200) -> int:
    for _ in progress_bar(range(n), file=stream, mininterval=0, miniters=1):
        pass
    return stream.getvalue().count("\r")


class ZMQInteractiveShell:  # the name of the kernel's shell class is what in_notebook looks for
    pass


def test_a_terminal_gets_every_redraw_a_file_only_the_first_and_last():
    assert is_interactive(Terminal()) and not is_interactive(io.StringIO())
    assert _redraws(Terminal()) >= 200
    assert _redraws(io.StringIO()) <= 3  # the loop takes far less than LOG_INTERVAL
    assert LOG_INTERVAL >= 10


def test_in_a_notebook_kernel_the_bar_stays_live(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", SimpleNamespace(get_ipython=ZMQInteractiveShell))
    assert in_notebook() and is_interactive(io.StringIO()) and _redraws(io.StringIO()) >= 200


def test_a_closed_stream_is_not_interactive():
    stream = Terminal()
    stream.close()
    assert not is_interactive(stream)


def test_training_redirected_to_a_file_writes_few_redraws(tmp_path):
    # a bar in a process whose stderr is a file, as `python -m minifusion train ... > log 2>&1`
    script = tmp_path / "run.py"
    script.write_text("import time\nfrom minifusion.viz.progress import progress_bar\n"
                      "for _ in progress_bar(range(300), desc='train'):\n    time.sleep(0.001)\n")
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run([sys.executable, str(script)], stderr=f, stdout=f, check=True)
    text = log.read_text()
    assert "300/300" in text and text.count("\r") <= 3, text.count("\r")
