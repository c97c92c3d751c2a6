"""Command line: ``python -m minifusion SUBCOMMAND ...`` (``--help`` on each).

One module per subcommand, each a thin wrapper over package functions with ``add_parser(sub)``
(its options) and ``cmd_*(args)`` (what it runs); the option value types they share live in
``minifusion.argtypes``. ``main`` turns bad input (``ValueError``) and a missing optional package
(``ImportError``) into one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from minifusion.cli import ablate, bench, evaluate, evaluate_t2i, generate, probe_text, render, train

# in the order --help lists them: data, generation, training, evaluation, benchmarks
SUBCOMMANDS = (render, generate, train, evaluate, probe_text, evaluate_t2i, ablate, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minifusion",
        description="minifusion: FusionFrames text-to-video diffusion at laptop scale.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, ImportError) as e:  # bad input or a missing optional package: a message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


__all__ = ["SUBCOMMANDS", "build_parser", "main"]
