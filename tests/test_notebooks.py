"""Papermill smoke runs of every notebook, and the runner's failure handling and incremental re-runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if not p.name.startswith("_"))
PROVENANCE_KEYS = {"notebook", "profile", "seeds", "device", "commit", "date", "versions", "code_hash"}


def run_runner(*args, env_extra=None):
    env = {**os.environ, "MPLBACKEND": "Agg", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    runs = tmp_path_factory.mktemp("runs")
    # Two notebooks at a time, one torch thread each: faster than one at a time with two threads on 2 cores.
    proc = run_runner("--profile", "smoke", "--results", str(out), "--jobs", "2",
                      env_extra={"DIFFUSION_RUNS_DIR": str(runs), "OMP_NUM_THREADS": "1"})
    return out, proc


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_smoke(nb, smoke_results):
    out, proc = smoke_results
    d = out / nb.stem / "smoke"
    status = json.loads((d / "run.json").read_text())
    assert status["status"] == "ok", f"{nb.stem}: {status.get('error')}\n{proc.stdout[-3000:]}"
    metrics = json.loads((d / "metrics.json").read_text())
    assert PROVENANCE_KEYS <= set(metrics), sorted(PROVENANCE_KEYS - set(metrics))
    assert metrics["profile"] == "smoke"
    assert (d / "report.html").stat().st_size > 10_000
    assert list(d.glob("*.png")), "no figure written"
    assert not list(d.glob(".*")), "temporary files left behind"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_report_is_readable(nb, smoke_results):
    """Every report shows its figures inline and no stderr block or machine path (tests/test_reports.py)."""
    from tests.test_reports import report_problems
    out, _ = smoke_results
    d = out / nb.stem / "smoke"
    assert report_problems((d / "report.html").read_text()) == []
    book = nbformat.read(str(d / f"{nb.stem}.ipynb"), as_version=4)
    streams = [o for c in book.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"]
    assert not [o for o in streams if o.get("name") == "stderr"], "stderr in the executed notebook"
    shown = sum("image/png" in o.get("data", {}) for c in book.cells for o in c.get("outputs", []))
    assert shown >= len(list(d.glob("*.png"))), "a saved figure is not displayed in the report"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebooks_are_clean_and_parameterised(nb):
    book = nbformat.read(str(nb), as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), "strip outputs before committing"
    params = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    lines = [ln for ln in params[0].source.splitlines() if ln.strip()]
    assert any(ln.startswith('profile: str = "quick"') for ln in lines)
    assert all(": " in ln and " = " in ln and "  # " in ln for ln in lines), "use `name: type = value  # help`"


def _write_nb(path: Path, code: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('profile: str = "quick"  # profile')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, str(path))


def test_runner_reports_a_failing_notebook_and_runs_the_others(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _write_nb(nbs / "a_fails.ipynb", "raise RuntimeError('deliberate failure')")
    _write_nb(nbs / "b_works.ipynb", "print('fine', profile)")
    out = tmp_path / "res"
    proc = run_runner("--profile", "smoke", "--notebooks", str(nbs), "--results", str(out))
    assert proc.returncode != 0
    assert "a_fails" in proc.stdout and "FAILED" in proc.stdout and "deliberate failure" in proc.stdout
    assert "1/2 notebooks succeeded" in proc.stdout
    assert json.loads((out / "b_works" / "smoke" / "run.json").read_text())["status"] == "ok"
    failed = json.loads((out / "a_fails" / "smoke" / "run.json").read_text())
    assert failed["status"] == "failed" and "cell" in failed["error"]
    assert (out / "a_fails" / "smoke" / "a_fails.failed.ipynb").exists()
    # Second run: the unchanged successful notebook is skipped; the failed one runs again.
    again = run_runner("--profile", "smoke", "--notebooks", str(nbs), "--results", str(out))
    assert "unchanged since its last successful run" in again.stdout
    assert again.stdout.count("FAILED") == 1


def test_runner_rejects_unknown_profile():
    proc = run_runner("--profile", "huge")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
