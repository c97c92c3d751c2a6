"""``python -m minifusion probe-text``: which caption words a text encoder keeps (``minifusion.eval.text_probe``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minifusion import argtypes

PROBE_HELP = """\
What it prints: for held-out captions of the Moving Shapes grammar, the accuracy of a linear probe
(multinomial logistic regression) that reads each attribute from the encoder's outputs averaged
over the caption's tokens, next to two levels: "majority" (always the commonest answer: what an
encoder that erased the word allows) and "bag of words" (the same probe on word counts: every word,
no order). Single-object captions and two-shape captions ("a red circle and a blue square move
left") apart: the first object's colour needs word order, which a bag of words cannot see."""


def load_text_encoder(path: Path):
    """A ``TextEncoder`` from a pipeline folder (``DIR/text_encoder``) or from its own folder."""
    from minifusion.models import TextEncoder

    for folder in (path / "text_encoder", path):
        if (folder / "config.json").is_file():
            return TextEncoder.from_pretrained(folder)
    raise ValueError(f"no text encoder in {str(path)!r}: give a pipeline folder holding text_encoder/ or a "
                     "text_encoder folder (python -m minifusion train text_encoder --out DIR writes DIR/text_encoder)")


def cmd_probe_text(args: argparse.Namespace) -> int:
    """Linear probes on a text encoder's pooled outputs: can each caption attribute (colour, shape, motion,
    direction, speed, size) be read from them? The shipped pipeline's encoder is probed beside it."""
    from minifusion.eval.text_probe import format_probe_report, probe_text_encoders
    from minifusion.pipelines import pretrained

    shipped = pretrained()
    checkpoint = args.checkpoint or shipped
    encoders = {"this encoder": load_text_encoder(checkpoint)}
    if not args.no_compare:
        other = args.compare or shipped
        if Path(other).resolve() != Path(checkpoint).resolve():
            encoders["shipped" if args.compare is None else Path(other).name] = load_text_encoder(other)
    report = probe_text_encoders(encoders, num_train=args.num_train, num_test=args.num_test, seed=args.seed)
    report["checkpoints"] = {"this encoder": str(checkpoint), **({"compare": str(args.compare or shipped)}
                                                          if len(encoders) > 1 else {})}
    if args.json == "-":
        print(json.dumps(report, indent=2))
        return 0
    print(f"text encoder: {checkpoint}" + (f"; beside it: {report['checkpoints']['compare']}"
                                           if len(encoders) > 1 else ""))
    print(format_probe_report(report))
    if args.json is not None:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("probe-text", help="linear probes: which caption words a text encoder keeps",
                       description=cmd_probe_text.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=PROBE_HELP + "\n\nExamples:\n  python -m minifusion probe-text --checkpoint runs/shapes\n"
                                           "  python -m minifusion probe-text --checkpoint runs/shapes --json "
                                           "outputs/probe.json")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                   help="pipeline folder (or text_encoder folder) to probe (default: the shipped pipeline's)")
    p.add_argument("--compare", type=Path, default=None, metavar="DIR",
                   help="a second encoder probed beside it (default: the shipped pipeline's, when --checkpoint "
                        "is another one)")
    p.add_argument("--no-compare", action="store_true", help="probe --checkpoint alone")
    p.add_argument("--num-train", type=argtypes.int_at_least(10), default=3000, metavar="N",
                   help="captions the probes are fitted on, per group (default 3000)")
    p.add_argument("--num-test", type=argtypes.int_at_least(10), default=1000, metavar="N",
                   help="held-out captions scored, per group (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="caption seed (default 0)")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="also write the report as JSON to FILE; '-' prints only the JSON")
    p.set_defaults(func=cmd_probe_text)
