#!/usr/bin/env bash
# Runs every grid of the study, in the order that answers the main questions first:
# the paper grid, the C3 control and the seeds that the multiple-testing correction needs
# at the paper's site, the tuning check, the two other dropout sites, the rates and the
# CIFAR-10 budget, the seeds of the other sites, and last the dense (slowest) cells. Resumable: run it again after an interruption; finished
# runs are skipped. Usage: scripts/run_study.sh [RESULTS_DIR] [JOBS]   (defaults: results 2)
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results}
JOBS=${2:-2}
PY=${PYTHON:-.venv/bin/python}
GRIDS=(paper control paper_seeds tuning sites rates budget sites_seeds sites_dense)
status=0
for grid in "${GRIDS[@]}"; do
  "$PY" -m snnlib.runner "grids/$grid.json" --jobs "$JOBS" --results "$RESULTS" || status=$?
  [ "$status" -eq 130 ] && exit 130
done
exit "$status"
