#!/usr/bin/env bash
# The prepared GPU check (one call, under 8 minutes on one GPU): every method for one epoch on both
# subsets on CUDA, then the paper preset's first experience for the CRATE pair and the conv variant.
# Prints seconds and peak GPU memory per run; a FAILURE line (and exit 1) for a run that fails or
# leaves the device. Extra arguments go to benchmarks/gpu_check.py (e.g. --device cpu --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import ctrl_bench" 2>/dev/null || pip install -q -e .
exec timeout 470 python benchmarks/gpu_check.py "$@"
