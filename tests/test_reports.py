"""The reader-facing outputs: results/index.html, results/claims.md and the pages as a browser shows them.

Everything runs on a tiny fake results tree in tmp_path; the browser test skips when no chromium is installed.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from lib.reports import claims as lc
from lib.reports import ledger
from tests.scripts_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
build_index = load_script("build_index")
browser = load_script("browser")  # the headless-Chromium helpers and the link check

ERROR = "cell [3]: ValueError: deliberate <failure> & more"


def _png(path: Path, value: int):
    Image.fromarray(np.full((24, 32, 3), value, np.uint8)).save(path)


def _report(d: Path, marker: str):
    (d / "report.html").write_text(f"<!DOCTYPE html><html><head><title>{marker}</title></head>"
                                   f"<body><h1>{marker}</h1><p>report body</p></body></html>")


def _measured_claims(profile: str):
    ctx = dict(dataset="mnist", resolution=32, profile=profile, scale="quick: 2k steps", paper_metric="FID_inception")
    a = lc.compare("EPD-1", "EPD", "EPD FD below DDPM", "FD_mnistclf", lower={"EPD": [10.0, 10.5, 10.2]},
                   higher={"DDPM": [20.0, 21.0, 20.5]}, paper_values={"EPD": 13.06, "DDPM": 17.60}, **ctx)
    b = lc.compare("EPD-1", "EPD", "EPD FD below DDPM", "FD_cifarclf", lower={"EPD": [30.0, 31.0]},
                   higher={"DDPM": [29.0, 30.0]}, **{**ctx, "dataset": "afhq_cat", "resolution": 64})
    c = lc.within_tolerance("EPD-13", "EPD", "overhead about 1 %", "relative step time", [1.02, 1.01, 1.015],
                            paper_value=1.01, tolerance=0.02, **ctx)
    d = lc.compare("5a", "epd", "SDEdit FD: EPD < DDPM", "FD_mnistclf", lower={"EPD": [1.0, 1.1, 1.2]},
                   higher={"DDPM": [2.0, 2.1, 2.2]}, **ctx)
    return [a, b, c, d]


def _meta(nb, profile, **extra):
    return {"notebook": nb, "profile": profile, "seeds": [0, 1, 2], "device": "cpu (fake, 1 threads)",
            "commit": "0123456789abcdef0123", "date": "2026-11-23T12:00:00+00:00", "code_hash": "abc",
            "versions": {}, **extra}


@pytest.fixture()
def tree(tmp_path):
    res = tmp_path / "results"
    # nb_alpha/quick: ok, declared key figure, headline, claims; nb_alpha/smoke: ok with a different (ignored) claim
    d = res / "nb_alpha" / "quick"
    d.mkdir(parents=True)
    _png(d / "a_first.png", 10)
    _png(d / "key.png", 200)
    _report(d, "ALPHA-QUICK-REPORT")
    (d / "run.json").write_text(json.dumps({"notebook": "nb_alpha", "profile": "quick", "status": "ok",
                                            "seconds": 12.5, "started": "2026-11-23T11:59:00+00:00"}))
    (d / "metrics.json").write_text(json.dumps(_meta("nb_alpha", "quick", key_figure="key.png", scale="quick: 2k steps",
                                                     headline={"FD_mnistclf (EPD)": 10.23, "n_eval": 512},
                                                     claims=_measured_claims("quick"))))
    s = res / "nb_alpha" / "smoke"
    s.mkdir(parents=True)
    _png(s / "x.png", 50)
    _report(s, "ALPHA-SMOKE-REPORT")
    (s / "run.json").write_text(json.dumps({"notebook": "nb_alpha", "profile": "smoke", "status": "ok"}))
    smoke_claim = lc.within_tolerance("EPD-2", "EPD", "x", "FD", [1.0], paper_value=5.0, tolerance=0.1)
    (s / "metrics.json").write_text(json.dumps(_meta("nb_alpha", "smoke", claims=[smoke_claim])))
    # nb_beta/smoke: failed, partial report, no metrics
    f = res / "nb_beta" / "smoke"
    f.mkdir(parents=True)
    _report(f, "BETA-FAILED-REPORT")
    (f / "run.json").write_text(json.dumps({"notebook": "nb_beta", "profile": "smoke", "status": "failed",
                                            "error": ERROR, "seconds": 3.0}))
    # nb_gamma/quick: ok, no headline: the table's first rows are shown; file name with a space
    g = res / "nb gamma" / "quick"
    g.mkdir(parents=True)
    _png(g / "samples grid.png", 120)
    _report(g, "GAMMA-REPORT")
    (g / "run.json").write_text(json.dumps({"notebook": "nb gamma", "profile": "quick", "status": "ok"}))
    (g / "metrics.json").write_text(json.dumps(_meta("nb gamma", "quick")))
    (g / "table.csv").write_text("method,FD_mnistclf\nddpm,1068.25\nedge_preserving,1045.5\n")
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    (nbs / "abl_tau.ipynb").write_text('{"cells": [{"source": "compare(\\"EPD-17\\", ...)"}]}')
    out = build_index.build(res, notebooks_dir=nbs)
    return res, out


def _claim_rows(md: str):
    return [ln for ln in md.splitlines() if re.match(r"^\| (EPD|COLD)-\d+ \|", ln)]


def test_master_list_matches_the_specs():
    ids = [c.id for c in ledger.CLAIMS]
    assert ids == [f"EPD-{i}" for i in range(1, 23)] + [f"COLD-{i}" for i in range(1, 17)]
    assert all(c.text and c.paper_number and c.notebook for c in ledger.CLAIMS)
    spec_dir = ROOT.parent / "shared" / "reference"
    if (spec_dir / "epd_spec.md").exists():
        epd = (spec_dir / "epd_spec.md").read_text().split("## 7.")[1].split("\n## ")[0]
        assert len(re.findall(r"^\d+\. ", epd, re.M)) == 22
        cold = (spec_dir / "cold_spec.md").read_text().split("## 8.")[1].split("\n## ")[0]
        assert len(re.findall(r"^- C\d+:", cold, re.M)) == 16


def test_index_lists_every_report_with_working_relative_links(tree):
    res, out = tree
    index = out["index"]
    text = index.read_text()
    links = browser.local_links(index)
    assert not links["missing"], links["missing"]
    assert not links["external"], links["external"]
    hrefs = [u for _, a, u in browser.page_links(text)]
    for rel in ("nb_alpha/quick/report.html", "nb_alpha/smoke/report.html", "nb_beta/smoke/report.html",
                "nb%20gamma/quick/report.html"):
        assert rel in hrefs, rel
    srcs = [u for tag, a, u in browser.page_links(text) if tag == "img"]
    assert "nb_alpha/quick/key.png" in srcs and "nb%20gamma/quick/samples%20grid.png" in srcs
    assert "nb_alpha/quick/a_first.png" not in srcs  # the declared key figure is shown, the other one linked
    assert "FD_mnistclf (EPD)" in text and "10.23" in text  # headline
    assert "edge_preserving" in text and "1046" in text  # table.csv's first rows when no headline (4 digits)
    assert "cpu (fake, 1 threads)" in text and "0123456789ab" in text and "2026-11-23T12:00:00+00:00" in text
    assert all(not u.startswith("/") for u in hrefs + srcs)


def test_failed_notebook_shows_its_error(tree):
    res, out = tree
    text = out["index"].read_text()
    card = text[text.index('id="nb_beta-smoke"'):]
    card = card[:card.index("</div>")]
    assert "failed" in card and "deliberate &lt;failure&gt; &amp; more" in card
    assert [r.status for r in out["results"] if r.notebook == "nb_beta"] == ["failed"]


def test_claims_md_one_row_per_claim_and_measurement(tree):
    res, out = tree
    md = (res / "claims.md").read_text()
    rows = _claim_rows(md)
    by_id = {}
    for ln in rows:
        by_id.setdefault(ln.split("|")[1].strip(), []).append(ln)
    assert set(by_id) == {c.id for c in ledger.CLAIMS}
    assert len(by_id["EPD-1"]) == 2  # digits and AFHQ-Cat: one row each
    assert len(rows) == len(ledger.CLAIMS) + 1
    (epd5,) = by_id["EPD-5"]  # an entry with the id "5a" and paper "epd" is claim EPD-5
    assert "| reproduced |" in epd5 and "[entry 5a]" in epd5 and "this row: SDEdit FD: EPD < DDPM" in epd5
    mnist, cat = by_id["EPD-1"]
    assert "| reproduced |" in mnist and "EPD 13.06, DDPM 17.6 (FID_inception)" in mnist
    assert "EPD: 10.23 ± 0.2517 (n=3); DDPM: 20.5 ± 0.5 (n=3)" in mnist
    assert "FD_mnistclf" in mnist and "mnist 32²" in mnist and "quick (quick: 2k steps)" in mnist
    assert "| inconclusive |" in cat and "afhq_cat 64²" in cat and "n=2 < 3" in cat
    (tol,) = by_id["EPD-13"]
    assert "| reproduced |" in tol and "1.01 ± 0.02" in tol and "1.015 ± 0.005 (n=3)" in tol
    # EPD-2 was measured only by the smoke run of a notebook that also has a quick run: the quick run wins
    (epd2,) = by_id["EPD-2"]
    assert f"| {ledger.NOT_MEASURED} |" in epd2
    (epd17,) = by_id["EPD-17"]
    assert f"| {ledger.NOT_MEASURED} |" in epd17 and "abl_tau" in epd17  # the notebook that names the id
    (cold5,) = by_id["COLD-5"]
    assert f"| {ledger.NOT_MEASURED} |" in cold5 and "4.69 vs 5.10" in cold5
    counts = ledger.verdict_counts(out["rows"])
    assert counts == {"reproduced": 3, "inconclusive": 1, ledger.NOT_MEASURED: len(ledger.CLAIMS) - 3}
    html = out["index"].read_text()
    assert html.count("<tr class='unmeasured'>") == len(ledger.CLAIMS) - 3  # the ledger section of the index


def test_unknown_ids_are_flagged_and_the_cli_ignores_runner_options(tree, capsys):
    res, _ = tree
    m = json.loads((res / "nb gamma" / "quick" / "metrics.json").read_text())
    m["claims"] = [lc.qualitative("EPD-99", "EPD", "made up", figure="samples grid.png")]
    (res / "nb gamma" / "quick" / "metrics.json").write_text(json.dumps(m))
    argv = ["--results", str(res), "--notebooks", str(res.parent / "notebooks"), "--profile", "smoke", "--only", "nb",
            "--force", "--jobs", "2"]  # what run_all.sh passes on: the runner's options are ignored
    assert build_index.main(argv) == 0
    md = (res / "claims.md").read_text()
    assert ledger.OTHER_SECTION in md and "'EPD-99' is not in the master list" in md
    assert "claims:" in capsys.readouterr().out


def test_empty_results_tree(tmp_path):
    (tmp_path / "nbs").mkdir()
    out = build_index.build(tmp_path / "nothing", notebooks_dir=tmp_path / "nbs")
    assert "No results yet" in out["index"].read_text()
    assert len(_claim_rows(out["claims"].read_text())) == len(ledger.CLAIMS)


@pytest.mark.skipif(browser.find_chromium() is None, reason="no chromium binary (apt-get install chromium)")
def test_pages_render_in_headless_chromium(tree, tmp_path):
    res, out = tree
    index = out["index"]
    problems, doms = build_index.check_pages(index)  # the index and every report it links, in the browser
    assert problems == []
    assert "Claims ledger" in doms[index.resolve()] and "deliberate" in doms[index.resolve()]
    reports = [p for p in doms if p != index.resolve()]
    assert len(reports) == 4 and all("report body" in doms[p] for p in reports)
    for u in browser.local_links(index)["ok"]:  # every linked figure is a readable image
        if u.endswith(".png"):
            Image.open(index.parent / unquote(u)).verify()
    png = browser.screenshot(index, tmp_path / "index.png")
    img = np.asarray(Image.open(png).convert("L"))
    assert img.shape == (900, 1200) and img.std() > 5  # a page with content, not a blank image


def test_ids_in_other_forms_map_onto_the_master_list():
    assert ledger.canonical_id("EPD-3") == "EPD-3" and ledger.canonical_id("cold_4") == "COLD-4"
    assert ledger.canonical_id("C4-blur-FD", "Cold Diffusion (Bansal et al. 2022)") == "COLD-4"
    assert ledger.canonical_id("C1") == "COLD-1"
    assert ledger.canonical_id("5a", "epd") == "EPD-5" and ledger.canonical_id("11b", "EPD") == "EPD-11"
    assert ledger.canonical_id("12", "cold") == "COLD-12"
    assert ledger.canonical_id("15") == "15" and ledger.canonical_id("EPD-123x") == "EPD-123"


def test_variant_folder_counts_as_its_profile_and_links_its_report(tree):
    res, _ = tree
    v = res / "nb_alpha" / "quick_afhq_cat"
    v.mkdir()
    _png(v / "cats.png", 90)
    entry = lc.compare("EPD-12", "EPD", "latent AFHQ", "FD_x", lower={"EPD": [1, 2, 3]}, higher={"DDPM": [4, 5, 6]},
                       dataset="afhq_cat", resolution=64, profile="quick")
    (v / "metrics.json").write_text(json.dumps(_meta("nb_alpha", "quick", claims=[entry])))
    out = build_index.build(res, notebooks_dir=res.parent / "notebooks")
    rows = [r for r in out["rows"] if r.id == "EPD-12"]
    assert [(r.verdict, r.report, r.notebook) for r in rows] == [("reproduced", "nb_alpha/quick/report.html",
                                                                  "nb_alpha")]
    assert len([r for r in out["rows"] if r.id == "EPD-1"]) == 2  # the quick folder still counts too
    (card,) = [r for r in out["results"] if r.profile == "quick_afhq_cat"]
    assert card.status == "ok" and card.has_report
    assert not browser.local_links(out["index"])["missing"]


def test_format_ours_never_fails_on_odd_shapes():
    assert ledger.format_ours({"values": [1.0, 2.0, 3.0], "mean": 2.0, "std": 1.0, "n": 3}) == "2 ± 1 (n=3)"
    assert ledger.format_ours([1.0, 3.0]) == "2 ± 1.414 (n=2)"
    odd = {"metric": "SWD", "values": {"ddpm": [0.3], "epd": [0.2]}, "n": 1, "frac": {"real": 1.0}}
    assert ledger.format_ours(odd) == "values: ddpm: 0.3 (n=1); epd: 0.2 (n=1); frac: real: 1 (n=1)"
    assert ledger.format_ours({"value": "ddpm", "x": [None, "a"]}) == "value: ddpm; x: [—, a]"
    assert ledger.format_ours(None) == "—" and len(ledger.format_ours(list(range(3)) + ["x"] * 500)) <= 400


# ----------------------------------------------------------------------------------------------------------------
# The notebook reports themselves (results/<nb>/<profile>/report.html): figures inline, no stderr, no machine paths

run_notebooks = load_script("run_notebooks")

MACHINE_PATH = re.compile(r"(?<![\w.:/-])/(?:work|home|tmp|root|Users|mnt|opt|var|srv|private)/[\w.-]+")
STDERR_BLOCK = 'data-mime-type="application/vnd.jupyter.stderr"'


def report_problems(html_text: str) -> list:
    """What a reader should never meet in a report: stderr blocks, absolute machine paths, no figure at all."""
    problems = []
    if STDERR_BLOCK in html_text:
        problems.append("a stderr output block")
    text = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+", "", html_text)  # embedded images are not text
    found = sorted(set(MACHINE_PATH.findall(text)) | ({str(ROOT)} if str(ROOT) in text else set()))
    if found:
        problems.append(f"absolute machine paths: {found[:5]}")
    if "<img" not in html_text:
        problems.append("no <img>: the report shows no figure")
    return problems


def test_clean_outputs_moves_logs_out_and_writes_paths_relative():
    import nbformat
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("x")
    c.outputs = [nbformat.v4.new_output("stream", name="stderr", text="/x/site-packages/tqdm/auto.py: TqdmWarning\n"),
                 nbformat.v4.new_output("stream", name="stdout",
                                        text=f"[mnistclf] loaded a.pt: accuracy 0.99\nkept {ROOT}/cache/x.pt\n"),
                 nbformat.v4.new_output("stream", name="stdout", text="[mnistclf] loaded a.pt\n"),
                 nbformat.v4.new_output("execute_result", data={"text/plain": f"PosixPath('{ROOT}/results/a.png')"},
                                        execution_count=1)]
    nb.cells = [c]
    log = run_notebooks.clean_outputs(nb, {ROOT: "", ROOT / "results": "results"})
    outs = nb.cells[0].outputs
    assert [o.output_type for o in outs] == ["stream", "execute_result"]  # stderr and the log-only block are gone
    assert outs[0].name == "stdout" and outs[0].text == "kept cache/x.pt\n"
    assert outs[1].data["text/plain"] == "PosixPath('results/a.png')"
    assert "TqdmWarning" in log and log.count("[mnistclf] loaded") == 2


def test_report_problems_detects_what_a_reader_should_not_see():
    ok = "<html><img src='data:image/png;base64,AAAA/tmp/xyz'><p>results/a.png</p></html>"
    assert report_problems(ok) == []
    assert report_problems(ok.replace("<p>", f"<p>{ROOT}/")) != []
    assert report_problems(ok.replace("<p>", "<p>/home/user/x ")) != []
    assert report_problems(ok + f"<div {STDERR_BLOCK}>warn</div>") != []
    assert report_problems("<html><p>no figure</p></html>") == ["no <img>: the report shows no figure"]


def test_runner_report_shows_figures_inline_without_stderr_or_paths(tmp_path):
    """A real papermill run of a tiny notebook that does what the study notebooks do wrong when left alone."""
    import nbformat
    import os
    import subprocess
    import sys
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('profile: str = "quick"  # profile')
    p.metadata["tags"] = ["parameters"]
    code = ("import sys, warnings\nimport matplotlib.pyplot as plt\nfrom lib import experiment\n"
            "warnings.warn('a library warning')\nprint('progress 10%', file=sys.stderr)\n"
            "print('[mnistclf] loaded weights: accuracy 0.99')\nprint('the run went fine')\n"
            "run = experiment.Run('tiny', profile, [0])\nfig, ax = plt.subplots()\nax.plot([0, 1])\n"
            "run.save_figure(fig, 'curve')")
    nb.cells = [p, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, str(nbs / "tiny.ipynb"))
    out, logs = tmp_path / "res", tmp_path / "logs"
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke",
                           "--notebooks", str(nbs), "--results", str(out), "--log-dir", str(logs)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    d = out / "tiny" / "smoke"
    html_text = (d / "report.html").read_text()
    assert report_problems(html_text) == []
    assert html_text.count("<img") == 1 and (d / "curve.png").is_file()  # shown once, and still saved
    assert "the run went fine" in html_text and "[mnistclf]" not in html_text and "a library warning" not in html_text
    log = (logs / "tiny__smoke.log").read_text()
    assert "a library warning" in log and "progress 10%" in log and "[mnistclf] loaded" in log


def test_report_helpers_put_the_paper_beside_ours():
    import pandas as pd
    from lib.reports import report
    df = pd.DataFrame({"arm": ["ddpm"] * 3 + ["edge_preserving"] * 3, "seed": [0, 1, 2] * 2,
                       "FD_x": [10.0, 12.0, 14.0, 5.0, 5.0, 5.0], "precision": [0.5] * 6})
    t = report.summary_table(df, ["FD_x", "precision"], paper={"FD_x": {"ddpm": 17.6, "edge_preserving": 13.06}})
    assert list(t.columns) == ["arm", "n", "FD_x (ours)", "FID_inception (paper)", "precision (ours)"]
    assert t["FD_x (ours)"].tolist() == ["12 ± 5", "5 ± 0"]  # mean ± 95 % t-interval half-width (4.30·2/√3)
    assert t["FID_inception (paper)"].tolist() == ["17.6", "13.06"]  # the paper's number as printed
    assert report.sig(0.123456) == "0.123" and report.sig(1234.5) == "1230" and report.format_mean_ci([3.0]) == "3"
    entry = lc.compare("EPD-1", "EPD", "EPD below DDPM", "FD_x", lower={"EPD": [1, 2, 3]}, higher={"DDPM": [4, 5, 6]},
                       paper_values={"EPD": 13.06, "DDPM": 17.6}, paper_metric="FID_inception")
    row = report.claims_frame([entry]).iloc[0]
    assert row["verdict"] == "reproduced" and row["paper"] == "EPD 13.06, DDPM 17.6 (FID_inception)"
    assert row["ours"] == "EPD: 2 ± 2.5; DDPM: 5 ± 2.5"
    assert "vbadge" in report.badge("reproduced") and report.LEDGER in report.badge("reproduced")
    sd = pd.DataFrame({"arm": ["a", "b"], "FD mean": [164.2, 165.0], "FD std": [4.48, 1.0], "n seeds": [3, 1]})
    merged = report.merge_mean_sd(sd)
    assert list(merged.columns) == ["arm", "FD (mean ± CI)", "n seeds"]
    assert merged["FD (mean ± CI)"].tolist() == ["164 ± 11", "165"]  # 4.30·4.48/√3 = 11; one seed: no interval
    html_text = report.table_html(t)
    assert html_text.count("class='paper'") == 1 and html_text.count("num paper") == 2  # the paper column marked


def test_index_cards_follow_the_papers_sections(tree):
    res, out = tree
    for nb in ("cold_restoration", "epd_ablation_lambda", "epd_table1_unconditional"):
        d = res / nb / "quick"
        d.mkdir(parents=True)
        _report(d, nb)
        (d / "run.json").write_text(json.dumps({"notebook": nb, "profile": "quick", "status": "ok"}))
    text = build_index.build(res, notebooks_dir=res.parent / "notebooks")["index"].read_text()
    pos = [text.index(f'id="{nb}-quick"') for nb in ("epd_table1_unconditional", "epd_ablation_lambda",
                                                     "cold_restoration", "nb_alpha")]
    assert pos == sorted(pos)


def test_results_made_by_older_inputs_are_marked_in_the_index_and_the_ledger(tmp_path):
    """A result whose run.json input hash is not what the runner computes now (notebook, parameters, lib/,
    requirements) is marked "older inputs" on its card and named on top of claims.md; a current one is not."""
    res, nbs = tmp_path / "results", tmp_path / "notebooks"
    nbs.mkdir()
    params = {"profile": "quick", "seeds": [0, 1, 2]}
    for nb, fresh in (("nb_fresh", True), ("nb_old", False)):
        (nbs / f"{nb}.ipynb").write_text('{"cells": []}')
        d = res / nb / "quick"
        d.mkdir(parents=True)
        _png(d / "key.png", 100)
        _report(d, nb.upper())
        key = run_notebooks.input_hash(nbs / f"{nb}.ipynb", params) if fresh else "0123456789abcdef"
        (d / "run.json").write_text(json.dumps({"notebook": nb, "profile": "quick", "status": "ok",
                                                "parameters": params, "input_hash": key}))
        (d / "metrics.json").write_text(json.dumps(_meta(nb, "quick", claims=_measured_claims("quick"))))
    out = build_index.build(res, notebooks_dir=nbs)
    assert out["stale"] == ["nb_old/quick"]
    assert {r.notebook: r.stale for r in out["results"]} == {"nb_fresh": False, "nb_old": True}
    page = out["index"].read_text()
    cards = {nb: page[page.index(f'id="{nb}-quick"'):].split('<div class="card')[0] for nb in ("nb_fresh", "nb_old")}
    assert "older inputs" in cards["nb_old"] and "older inputs" not in cards["nb_fresh"]
    md = out["claims"].read_text()
    top = next(line for line in md.splitlines() if line.startswith("**Made by older inputs**"))
    assert "(1 result folders" in top and "`nb_old/quick`" in top and "nb_fresh" not in top
