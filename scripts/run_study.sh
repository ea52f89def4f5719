#!/usr/bin/env bash
# Runs every grid of the study, in the order that decides the open verdicts first: the dropout kinds on
# the hidden and the input spikes (the dense per-step alpha dropout on the input first: the longest runs,
# so that nothing long is left for the end), then the seeds of C1 on those sites, the paper grid's seeds
# 5-9, the rates, the 60-epoch budget and the base runs of the uncertainty ensembles. The paper grid, the
# C3 control and the tuning runs come first for a fresh results folder (finished runs are skipped).
#
# JOBS runners go through the same list side by side, one thread each: a runner leaves a configuration
# that another is training to it (``busy``) and takes the next. Resumable: run it again after an
# interruption; a stop loses at most the epoch in flight. glibc's allocator settings and one thread per run
# are set by the runner (snnlib.experiment.system.ALLOCATOR_ENV). The uncertainty evaluations
# (scripts/run_uncertainty.py) follow the runs as they finish.
# Usage: scripts/run_study.sh [RESULTS_DIR] [JOBS]   (defaults: results 2; STAGGER=20 seconds between the
# runners' starts, EVALUATE_EVERY=300 seconds between two rounds of evaluations, STUDY_GRIDS="NAME ..." to run
# only those grid files of grids/)
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results}
JOBS=${2:-2}
PY=${PYTHON:-.venv/bin/python}
# the second round's grids (the addendum of 2026-12-06) last; STUDY_GRIDS="a b" runs only those
read -r -a GRIDS <<< "${STUDY_GRIDS:-paper control tuning sites_dense sites sites_seeds paper_seeds rates budget ensembles hidden_budget learning_rates}"

one_runner() {
  local status=0
  for grid in "${GRIDS[@]}"; do
    "$PY" -m snnlib.experiment.runner "grids/$grid.json" --jobs 1 --threads 1 --results "$RESULTS" || status=$?
    [ "$status" -eq 130 ] && return 130
  done
  return "$status"
}

# A working folder other than results/ starts from what has landed (records, evaluations, ensembles), so
# that the runner skips those runs; nothing it already holds is overwritten.
if [ "$(realpath -m "$RESULTS")" != "$(realpath -m results)" ]; then
  mkdir -p "$RESULTS"
  (cd results && find . \( -name metrics.json -o -name uncertainty.json -o -name 'ensemble*.json' \) -print0) |
    while IFS= read -r -d '' file; do
      [ -e "$RESULTS/$file" ] || { mkdir -p "$RESULTS/$(dirname "$file")" && cp -p "results/$file" "$RESULTS/$file"; }
    done
fi

pids=()
trap 'trap - INT TERM; kill -TERM 0; wait; exit 130' INT TERM
for ((j = 1; j <= JOBS; j++)); do
  one_runner > >(sed -u "s/^/[runner $j] /") 2>&1 &
  pids+=($!)
  sleep "${STAGGER:-20}"  # the first runner takes its first configuration before the next one looks
done
# The uncertainty evaluations of the runs that have finished, every few minutes while the runners go and
# once after them: they need a run's weights, which are not committed and do not outlive this machine
# (scripts/land_records.py lands such a run only with its evaluations).
evaluate_finished() {
  "$PY" scripts/run_uncertainty.py "$RESULTS" 2>&1 | grep -v ' waits for ' \
    | sed -u "s/^/[uncertainty] /"
}
while :; do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  evaluate_finished
  [ "$alive" = 0 ] && break
  sleep "${EVALUATE_EVERY:-300}"
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit "$status"
