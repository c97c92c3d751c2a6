"""Progress bars that suit where they are shown: live in a terminal or a notebook, sparse in a log file.

tqdm redraws a bar up to ten times a second. In a terminal or a notebook that is what a learner wants;
redirected to a file (``make demo > log``, a training run in the background) every redraw is one more
carriage return in the file, thousands over a training run. ``progress_bar`` is ``tqdm`` with one
change: when its stream is not interactive it redraws at most every ``LOG_INTERVAL`` seconds (its
last state is still written when it closes).
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm  # a widget bar in a notebook, text elsewhere (as before)

LOG_INTERVAL = 30.0  # seconds between redraws when the bar goes to a file or a pipe


def in_notebook() -> bool:
    """True inside a Jupyter kernel, whose output streams show in the notebook as they come."""
    ipython = sys.modules.get("IPython")  # imported by the kernel; never imported here
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def is_interactive(stream) -> bool:
    """True for a terminal, and inside a Jupyter kernel."""
    if in_notebook():
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)``, redrawing at most every ``LOG_INTERVAL`` s unless its stream is interactive."""
    if not is_interactive(kwargs.get("file") or sys.stderr):
        kwargs["mininterval"] = max(float(kwargs.get("mininterval", 0.1)), LOG_INTERVAL)
    return tqdm(iterable, **kwargs)


__all__ = ["LOG_INTERVAL", "in_notebook", "is_interactive", "progress_bar"]
