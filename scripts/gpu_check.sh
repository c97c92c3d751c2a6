#!/usr/bin/env bash
# The GPU check, in one go (a few minutes on one CUDA GPU):
#   1. the CUDA tests (tests/test_cuda.py, and the GPU section of tests/test_bench.py);
#   2. the bench's CUDA section: fp32 vs bf16 / fp16 autocast for a U-Net training step and sampling
#      step, peak GPU memory, torch.compile, and a 29-frame video with and without autocast;
#   3. one JSON with both, the card's name and the versions (default outputs/gpu_check.json).
#
#     bash scripts/gpu_check.sh [OUT.json]        # PY=python3 bash scripts/gpu_check.sh to pick the interpreter
#
# Without CUDA it stops at once with exit code 2 and says why (tests/test_gpu_check.py checks that).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-outputs/gpu_check.json}

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PY" - >&2 <<'PYEOF'
import torch
print(f"error: no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, "
      f"built for CUDA {torch.version.cuda or 'none: a CPU-only build'}). scripts/gpu_check.sh needs a machine "
      "with an NVIDIA GPU and a CUDA build of torch; nothing was run.")
PYEOF
    exit 2
fi
mkdir -p "$(dirname "$OUT")"
JUNIT="${OUT%.json}_tests.xml"
echo "== 1/2 CUDA tests" >&2
set +e
"$PY" -m pytest -q -p no:cacheprovider --junitxml="$JUNIT" tests/test_cuda.py "tests/test_bench.py::test_quick_run_writes_every_section"
TESTS_RC=$?
set -e
echo "== 2/2 bench, CUDA section -> $OUT" >&2
"$PY" scripts/gpu_check.py --json "$OUT" --junit "$JUNIT" --tests-exit-code "$TESTS_RC"
exit "$TESTS_RC"
