"""scripts/gpu_check.sh on a machine without CUDA: it stops at once, says why, and exits 2; its JSON writer
(scripts/gpu_check.py) runs the same code on the CPU with a tiny U-Net."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: run bash scripts/gpu_check.sh")
def test_gpu_check_fails_clearly_without_cuda(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out)], capture_output=True, text=True,
                          env={**os.environ, "PY": sys.executable}, timeout=120)
    assert proc.returncode == 2
    assert "error: no CUDA device: torch.cuda.is_available() is False" in proc.stderr
    assert "nothing was run" in proc.stderr and not out.exists()


def test_the_json_writer_runs_its_code_on_the_cpu(tmp_path):
    junit = tmp_path / "t.xml"
    junit.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
                     '<testcase classname="tests.test_cuda" name="test_a"><failure/></testcase>'
                     '<testcase classname="tests.test_cuda" name="test_b"/></testsuite></testsuites>')
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--json", str(out), "--device",
                           "cpu", "--quick", "--junit", str(junit), "--tests-exit-code", "1"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["tests"] == {"exit_code": 1, "tests": 3, "failures": 1, "errors": 0, "skipped": 1,
                          "failed": ["tests.test_cuda::test_a"]}
    assert set(r["cuda"]["precision"]["training"]) == {"float32", "bfloat16"}
    assert r["cuda"]["pipeline"]["float32"]["seconds"] > 0
    assert [t["name"] for t in r["targets"]] == ["GPU: bf16 autocast training speed / fp32"]
    assert "GPU: bf16 autocast training speed / fp32" in proc.stdout
