"""Run notebooks top to bottom in FULL mode and save their outputs in place.

The committed notebooks carry the outputs of a full (non-FAST) run so a reader sees real
results without running anything; `make test` re-runs them in FAST mode under nbval.

    .venv/bin/python scripts/execute_notebooks.py notebooks/01_moving_shapes.ipynb [...]
    .venv/bin/python scripts/execute_notebooks.py --fast notebooks/*.ipynb   # quick check

Widget state is never stored (it bloats the file and goes stale); outputs over
--max-kb are reported so GIFs can be downscaled.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

KERNELSPEC = {"name": "minifusion", "display_name": "Python (minifusion)", "language": "python"}


def execute(path: Path, fast: bool, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    env_fast = os.environ.pop("MINIFUSION_FAST", None)
    if fast:
        os.environ["MINIFUSION_FAST"] = "1"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    start = time.perf_counter()
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",  # the kernel of the interpreter running this script
            resources={"metadata": {"path": str(path.parent)}},
            store_widget_state=False,
        )
        client.execute()
    finally:
        os.environ.pop("MINIFUSION_FAST", None)
        if env_fast is not None:
            os.environ["MINIFUSION_FAST"] = env_fast
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    if not fast:
        nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--fast", action="store_true", help="run with MINIFUSION_FAST=1 and do not save")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--max-kb", type=int, default=1500, help="warn when a saved notebook is larger")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        seconds = execute(path, args.fast, args.timeout)
        size_kb = path.stat().st_size / 1024
        flag = "  <-- large, downscale its images" if size_kb > args.max_kb else ""
        print(f"{path}: {'FAST' if args.fast else 'FULL'} run in {seconds:.1f} s, {size_kb:.0f} KiB{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
