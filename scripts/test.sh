#!/usr/bin/env bash
# The test command: bootstrap .venv if needed, then run the whole test suite (incl. notebook smoke runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
exec python -m pytest -q --durations=15 "$@" tests
