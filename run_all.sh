#!/usr/bin/env bash
# Regenerate every figure, table and report: bootstrap .venv if needed, run every notebook in notebooks/ with
# papermill, render HTML reports into results/<notebook>/<profile>/.
#   ./run_all.sh [--profile smoke|quick|gpu|paper] [--only PATTERN] [--data-root DIR] [--force] [--timeout S]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source scripts/bootstrap.sh
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
exec python scripts/run_notebooks.py "$@"
