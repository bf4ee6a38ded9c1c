"""Reliability (issue #9): interrupted runs, failed notebooks, bad parameters, kill-and-resume, determinism.

The runner is exercised on tiny throwaway notebooks (scripts/reliability_report.py writes them) in tmp folders;
nothing here touches results/ or cache/runs.  The fault cases of results/reliability.md are run and their
expected outcomes asserted, so the committed table cannot silently go wrong.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from lib.reports import ledger
from lib.experiment import ParameterError, validate_parameters
from tests.scripts_loader import load_script

ROOT = Path(__file__).resolve().parents[1]


rr = load_script("reliability_report")
runner = load_script("run_notebooks")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Two toy notebooks and a results tree holding a finished run of both (the results faults must not damage)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    c = rr.Context(tmp_path_factory.mktemp("reliability"))
    c.prepare()
    return c


# ---------------------------------------------------------------------------------------------------------------
# The runner: interruption, failure, staging swap

@pytest.mark.parametrize("sig,value", [(signal.SIGKILL, 5), (signal.SIGINT, 7)], ids=["SIGKILL", "SIGINT"])
def test_interrupted_runner_leaves_previous_results_and_reruns(ctx, sig, value):
    r = rr.interrupt_runner(ctx, sig, value)
    assert r["rc"] == (-signal.SIGKILL if sig == signal.SIGKILL else 130), r["out"]
    assert r["damaged"] == [] and r["new_in_b"] == [], "previous results of the interrupted notebook changed"
    assert r["half_written"] == []
    assert r["a_value_after_kill"] == value  # the notebook that finished before the interruption was published
    assert r["rerun"].returncode == 0, r["rerun"].stdout + r["rerun"].stderr
    assert r["a_skipped"], r["rerun"].stdout  # finished notebooks are skipped on the re-run
    assert "discarded the staging folder" in r["rerun"].stdout
    assert r["b_value_after_rerun"] == value and r["staging_left"] == []


def test_failed_notebook_keeps_previous_results_and_the_index_shows_it(ctx):
    d = ctx.results / "toy_a" / "smoke"
    before = rr.tree_hashes(d)
    proc = ctx.runner("--only", "toy_a", "-p", "fail=true", "-p", "value=11")
    assert proc.returncode == 1 and "deliberate failure" in proc.stdout and "FAILED.json" in proc.stdout
    after = rr.tree_hashes(d)
    assert rr.changed_files(before, after) == []
    assert sorted(set(after) - set(before)) == ["FAILED.json", "toy_a.failed.ipynb"]
    assert not (ctx.results / ".staging" / "toy_a").exists() or not any((ctx.results / ".staging" / "toy_a").iterdir())
    (res,) = [r for r in ledger.collect(ctx.results) if r.notebook == "toy_a"]
    assert res.status == "failed" and "deliberate failure" in res.error and res.metrics is not None
    ok = ctx.runner("--only", "toy_a", "-p", "value=11")  # the next success replaces the folder: no FAILED.json
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert not (d / "FAILED.json").exists() and not (d / "toy_a.failed.ipynb").exists()
    assert json.loads((d / "metrics.json").read_text())["value"] == 11
    assert json.loads((d / "run.json").read_text())["status"] == "ok"


def _stage(tmp_path, body: str) -> Path:
    stage = tmp_path / "res" / ".staging" / "nb" / "smoke"
    (stage / "nb" / "smoke").mkdir(parents=True)
    (stage / "nb" / "smoke" / "metrics.json").write_text(body)
    (stage / "nb" / "smoke_extra").mkdir()
    (stage / "nb" / "smoke_extra" / "x.csv").write_text(body)
    return stage


def test_swap_is_finished_or_discarded_after_a_crash(tmp_path):
    out = tmp_path / "res"
    (out / "nb" / "smoke").mkdir(parents=True)
    (out / "nb" / "smoke" / "metrics.json").write_text("old")
    (out / "nb" / "smoke" / "stale.png").write_text("old")
    (out / "nb" / "smoke_extra").mkdir()
    (out / "nb" / "smoke_extra" / "keep.csv").write_text("kept")
    # No PUBLISH.json: the run never finished -> its staging is discarded, the results are untouched.
    stage = _stage(tmp_path, "half")
    assert "discarded" in runner.recover(stage, out)
    assert not stage.exists() and (out / "nb" / "smoke" / "metrics.json").read_text() == "old"
    # PUBLISH.json written, crash after the old folder was renamed aside: recovery finishes the swap.
    stage = _stage(tmp_path, "new")
    (stage / runner.PUBLISH).write_text(json.dumps({"main": "nb/smoke", "folders": ["nb/smoke", "nb/smoke_extra"]}))
    (stage / ".old" / "nb").mkdir(parents=True)
    os.rename(out / "nb" / "smoke", stage / ".old" / "nb" / "smoke")
    assert "finished" in runner.recover(stage, out)
    assert not stage.exists()
    assert sorted(p.name for p in (out / "nb" / "smoke").iterdir()) == ["metrics.json"]  # whole folder replaced
    assert (out / "nb" / "smoke" / "metrics.json").read_text() == "new"
    assert {p.name: p.read_text() for p in (out / "nb" / "smoke_extra").iterdir()} == {"keep.csv": "kept",
                                                                                       "x.csv": "new"}
    # A normal publish.
    stage = _stage(tmp_path, "newer")
    runner.publish(stage, out, "nb/smoke")
    assert not stage.exists() and (out / "nb" / "smoke" / "metrics.json").read_text() == "newer"


# ---------------------------------------------------------------------------------------------------------------
# Parameters

def test_parameters_are_checked_against_the_parameters_cell(tmp_path):
    nb = rr.write_toy_notebook(tmp_path / "toy.ipynb")
    assert validate_parameters(nb, {"value": 3, "scale": 2, "seeds": [0, 1], "tag": 2024, "fail": True}) == \
        {"value": 3, "scale": 2, "seeds": [0, 1], "tag": "2024", "fail": True}  # int for float; number -> str
    for bad, must in [({"valeu": 3}, "unknown parameter 'valeu'"), ({"seeds": "a"}, "'seeds' must be list"),
                      ({"value": "big"}, "'value' must be int"), ({"value": 2.5}, "'value' must be int"),
                      ({"value": True}, "'value' must be int"), ({"fail": "yes"}, "'fail' must be bool"),
                      ({"scale": "x"}, "'scale' must be float")]:
        with pytest.raises(ParameterError, match=must) as e:
            validate_parameters(nb, bad)
        assert "valid parameters: profile: str, tag: str, value: int" in str(e.value)
    assert validate_parameters(nb, {"other": 1}, ignore_unknown=["other"]) == {"other": 1}


def test_command_line_values_are_read_as_yaml_with_scientific_floats():
    from lib.experiment import parse_value
    vals = ["0.5", "1e-3", "-2E+4", "3", "true", "[0, 1]", "afhq_cat", "", "1e", "{a: 1}"]
    assert [parse_value(v) for v in vals] == [0.5, 1e-3, -2e4, 3, True, [0, 1], "afhq_cat", "", "1e", {"a": 1}]
    assert isinstance(parse_value("3"), int) and isinstance(parse_value("1e-3"), float)


def test_runner_rejects_bad_parameters_before_running_anything(tmp_path):
    nbs = tmp_path / "nbs"
    rr.write_toy_notebook(nbs / "toy.ipynb")
    out = tmp_path / "res"
    for p, must in [("resolution=big", "unknown parameter 'resolution'"), ("value=big", "'value' must be int"),
                    ("seeds=a", "'seeds' must be list")]:
        proc = rr.run_runner("--notebooks", nbs, "--results", out, "-p", p, timeout=120)
        assert proc.returncode == 2 and must in proc.stderr and "nothing was run" in proc.stderr, proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# Training: SIGKILL mid-run, then resume == uninterrupted (tests/test_train.py covers stop_after resumption)

def test_sigkill_training_then_resume_is_bit_exact(tmp_path):
    r = rr.kill_training_and_resume(tmp_path)
    assert r["rc_killed"] == -signal.SIGKILL and r["killed_at"] is not None, r
    assert 0 < r["ckpt_step"] < 30
    assert r["rc_resumed"] == 0, r["stderr"]
    assert r["equal"], "resumed training differs from the uninterrupted run"


# ---------------------------------------------------------------------------------------------------------------
# Determinism: same seed -> same samples and same metrics (CPU)

def test_same_seed_gives_identical_samples_and_metrics():
    from lib.metrics import fid_from_features, precision_recall, swd
    from lib.processes import make_process
    from lib.sampling import generate
    from tests.test_train import tiny_unet

    proc = make_process("edge_preserving", T=10)
    net = tiny_unet().eval()
    real = rr._data_u8().float() / 127.5 - 1

    def once():
        x = generate(proc, net, 6, (3, 16, 16), seed=4, batch_size=4, progress=False)
        f, r = x.flatten(1).numpy(), real.flatten(1).numpy()
        m = {"fd_pixels": fid_from_features(f, r), **precision_recall(r, f, k=2),
             "swd": swd(real, x, patches_per_image=8, n_projections=16)["mean"]}
        return x, m
    (xa, ma), (xb, mb) = once(), once()
    assert torch.equal(xa, xb) and ma == mb
    xc = generate(proc, net, 6, (3, 16, 16), seed=5, batch_size=4, progress=False)
    assert not torch.equal(xa, xc)


# ---------------------------------------------------------------------------------------------------------------
# The report: every case shows its expected outcome

def test_reliability_report_cases(ctx, tmp_path):
    cheap = [c for c in rr.CASES if c not in (rr.case_sigkill_runner, rr.case_sigkill_training)]
    outcomes = rr.run_cases(ctx.work, cheap)  # the two kill cases are the tests above
    bad = [o for o in outcomes if not o.ok]
    assert not bad, bad
    assert all(o.damaged.startswith("none") for o in outcomes)
    md = rr.markdown(outcomes, 1.0)
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| case")]
    assert len(rows) == len(cheap) and all(ln.endswith("| yes |") for ln in rows)
    assert "torch " + torch.__version__ in md
