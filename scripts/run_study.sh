#!/usr/bin/env bash
# Runs every grid of the study, in the order that answers the main questions first:
# the paper grid and the C3 control, the tuning check, the two other dropout sites, the
# seeds that the multiple-testing correction needs, the rates and the CIFAR-10 budget, and
# last the dense (slowest) cells. Resumable: run it again after an interruption; finished
# runs are skipped. Usage: scripts/run_study.sh [RESULTS_DIR] [JOBS]   (defaults: results 2)
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results}
JOBS=${2:-2}
PY=${PYTHON:-.venv/bin/python}
GRIDS=(paper control tuning sites paper_seeds rates budget sites_seeds sites_dense)
status=0
for grid in "${GRIDS[@]}"; do
  "$PY" -m snnlib.runner "grids/$grid.json" --jobs "$JOBS" --results "$RESULTS" || status=$?
  [ "$status" -eq 130 ] && exit 130
done
exit "$status"
