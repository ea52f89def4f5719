#!/usr/bin/env bash
# The uncertainty evaluation of the study (chapter "Uncertainty"): every finished run of the paper
# grid's base network and dropout kinds at the paper's site (seeds 0-4; feature dropout is dropout2d
# on this layer), the rates grid, and the ensemble of the five base seeds of each dataset. Each run
# gets RUN_DIR/uncertainty.json; runs that have one are skipped (delete it to evaluate again), runs not
# finished yet are reported and left for the next call, so the script can be run again until done.
# Usage: scripts/run_uncertainty.sh [RESULTS_DIR]   (default results)
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results}
PY=${PYTHON:-.venv/bin/python}
finished() { grep -q '"status": "finished"' "$1/metrics.json" 2>/dev/null; }
evaluate() {
  if [ -f "$1/uncertainty.json" ]; then return; fi
  if finished "$1"; then "$PY" -m snnlib uncertainty "$1" --threads 1; else echo "$1: not finished yet"; fi
}
runs=()
for dataset in mnist cifar10; do
  for seed in 0 1 2 3 4; do
    for cell in none_p0_step_current dropout_p0.5_step_current dropout2d_p0.5_step_current \
                feature_alpha_p0.5_step_current alpha_p0.5_step_current; do
      runs+=("$RESULTS/paper/$dataset/$cell/seed$seed")
    done
  done
  for seed in 0 1 2; do
    for p in 0.1 0.2 0.3; do
      for mask in step consistent; do runs+=("$RESULTS/rates/$dataset/dropout_p${p}_${mask}_current/seed$seed"); done
    done
  done
done
for run in "${runs[@]}"; do evaluate "$run"; done
for dataset in mnist cifar10; do
  base=("$RESULTS"/paper/$dataset/none_p0_step_current/seed{0,1,2,3,4})
  ready=1
  for run in "${base[@]}"; do finished "$run" || ready=0; done
  if [ -f "$RESULTS/paper/$dataset/none_p0_step_current/ensemble.json" ]; then
    continue
  elif [ "$ready" = 1 ]; then
    "$PY" -m snnlib uncertainty "${base[@]}" --threads 1 --ensemble "$RESULTS/paper/$dataset/none_p0_step_current/ensemble.json"
  else
    echo "$dataset: the ensemble waits for the five base runs"
  fi
done
