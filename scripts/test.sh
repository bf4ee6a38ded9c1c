#!/usr/bin/env bash
# The test command: bootstrap .venv if needed, then run the whole test suite (incl. notebook smoke runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
# In CI (CI=true, root), install Debian's Chromium once so the reports' browser test runs; best effort: without
# it that test skips. Users' machines are never touched.
if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "[test] chromium could not be installed: the browser test will be skipped" >&2
fi
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
exec python -m pytest -q --durations=15 "$@" tests
