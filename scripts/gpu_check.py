"""The JSON of ``scripts/gpu_check.sh``: the CUDA tests' outcome and the bench's CUDA section, in one file.

    .venv/bin/python scripts/gpu_check.py --json outputs/gpu_check.json [--junit TESTS.xml] [--quick] [--device cuda]

``--device cpu --quick`` runs the same code on the CPU with a tiny U-Net (tests/test_gpu_check.py does),
so the parts that need no GPU are tested where there is none.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_summary(junit: Path | None, exit_code: int | None) -> dict | None:
    """Counts from pytest's JUnit XML (tests, failures, errors, skipped) and the failing test names."""
    if junit is None or not junit.is_file():
        return None if exit_code is None else {"exit_code": exit_code}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return {"exit_code": exit_code, **{k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")},
            "failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--junit", type=Path, default=None, help="pytest --junitxml output of the CUDA tests")
    parser.add_argument("--tests-exit-code", type=int, default=None)
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only to test this script")
    parser.add_argument("--quick", action="store_true", help="tiny U-Net, one step: checks the code, measures nothing")
    args = parser.parse_args(argv)

    import bench_report as report
    import torch
    from bench_cuda import TINY_BATCH, TINY_PRESET, bench_pipeline_autocast, bench_precision

    from minifusion.pipelines import pretrained

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.exit(2, "error: no CUDA device: torch.cuda.is_available() is False\n")
    start = time.perf_counter()
    cuda = {"precision": bench_precision(device=args.device, **(dict(preset=TINY_PRESET, batch=TINY_BATCH, steps=1,
                                                                      warmup=0, compile=False) if args.quick else {})),
            "pipeline": bench_pipeline_autocast(pretrained(), device=args.device, steps=2 if args.quick else 25)}
    result = {
        "meta": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else args.device,
                 "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                 "quick": args.quick, "seconds": None},
        "tests": test_summary(args.junit, args.tests_exit_code),
        "cuda": cuda,
        "targets": report.judge({"cuda": cuda}),
    }
    result["meta"]["seconds"] = time.perf_counter() - start
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(report.cuda_table(cuda))
    for row in result["targets"]:
        print(f"{row['name']}: {report.verdict(row, quick=args.quick)}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
