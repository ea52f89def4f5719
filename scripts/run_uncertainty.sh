#!/usr/bin/env bash
# The uncertainty evaluation of the study (chapter "Uncertainty"): every finished run of the paper
# grid's base network and dropout kinds at the paper's site (seeds 0-9; feature dropout is dropout2d
# on this layer), the rates grid, and the five disjoint ensembles of each dataset (base seeds 0-4 and 5-9
# of the paper grid, 10-14, 15-19 and 20-24 of the ensembles grid; snnlib.study.preregistration.ENSEMBLES). Each run
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
  for seed in 0 1 2 3 4 5 6 7 8 9; do
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
  for members in "0 1 2 3 4" "5 6 7 8 9" "10 11 12 13 14" "15 16 17 18 19" "20 21 22 23 24"; do
    grid=paper
    [ "${members%% *}" -ge 10 ] && grid=ensembles
    cell="$RESULTS/$grid/$dataset/none_p0_step_current"
    base=()
    for seed in $members; do base+=("$cell/seed$seed"); done
    out="$cell/ensemble_seeds${members// /}.json"
    [ -f "$out" ] && continue
    ready=1
    for run in "${base[@]}"; do finished "$run" || ready=0; done
    if [ "$ready" = 1 ]; then
      "$PY" -m snnlib uncertainty "${base[@]}" --threads 1 --ensemble "$out"
    else
      echo "$dataset: the ensemble of seeds $members waits for its base runs"
    fi
  done
done
