#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv from requirements.txt.
# Sourced by run_all.sh and scripts/test.sh; safe to run repeatedly (re-installs only when
# requirements.txt changed since the last successful install).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating virtual environment in $VENV" >&2
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  echo "[bootstrap] installing requirements.txt into $VENV (first run: a few minutes)" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$ROOT/requirements.txt" >&2
  "$VENV/bin/python" -m ipykernel install --prefix "$VENV" --name python3 >/dev/null
  echo "$want" > "$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
