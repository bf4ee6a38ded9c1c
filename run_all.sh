#!/usr/bin/env bash
# Regenerate every figure, table and report: bootstrap .venv if needed, run every notebook in notebooks/ with
# papermill, render HTML reports into results/<notebook>/<profile>/, then build results/index.html and
# results/claims.md from whatever is there (also when some notebooks failed).
#   ./run_all.sh [--profile smoke|quick|gpu|paper] [--only PATTERN] [--data-root DIR] [--force] [--timeout S]
#                [--jobs N]
# Exit status: non-zero when a notebook failed or the index could not be built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source scripts/bootstrap.sh
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
status=0
python scripts/run_notebooks.py "$@" || status=$?
python scripts/build_index.py "$@" || { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
exit "$status"
