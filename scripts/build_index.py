"""Build results/index.html (every report, its key figure, headline numbers, provenance, status) and
results/claims.md (every claim of both papers with our measurement and verdict) from the results tree.

    python scripts/build_index.py                                  # results/ -> results/index.html, claims.md
    python scripts/build_index.py --results DIR                    # another results tree
    python scripts/build_index.py --screenshot results/index.png   # also a headless-Chromium screenshot
    python scripts/build_index.py --check                          # open every page in Chromium, check links

./run_all.sh calls it after the notebooks (also when some failed), passing its own arguments: options this
script does not know (--profile, --only, ...) are ignored.  Everything is generated; see lib/reports/ledger.py.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if str(ROOT / "scripts") not in sys.path:  # scripts/browser.py also when this file is loaded by path (the tests)
    sys.path.append(str(ROOT / "scripts"))

import browser  # noqa: E402
from lib import io  # noqa: E402
from lib.reports import ledger  # noqa: E402


# The cards' order: the papers' sections (EPD: Figs. 1-2, Tables 1-6, Fig. 5, App. B, ablations, code quirks; then
# Cold Diffusion: degradations, restoration tables, Alg. 1 vs 2, generation), then the toolkit's end-to-end check.
# A notebook not listed here follows, alphabetically.
SECTION_ORDER = ("epd_forward_process", "epd_table1_unconditional", "epd_table2_latent", "epd_table3_cost",
                 "epd_sdedit_strokes", "epd_sketches", "epd_frequency_bands", "epd_ablation_transition_fn",
                 "epd_ablation_transition_point", "epd_ablation_lambda", "epd_quirks_code_vs_paper",
                 "cold_degradations", "cold_restoration", "cold_algorithm1_vs_2", "cold_generation_blur",
                 "cold_generation_noise", "cold_generation_other", "e2e_forward_and_samples")


def by_section(results) -> list:
    """The index's cards in paper-section order (SECTION_ORDER); a notebook's profiles keep their order."""
    rank = {nb: i for i, nb in enumerate(SECTION_ORDER)}
    return sorted(results, key=lambda r: (rank.get(r.notebook, len(rank)), r.notebook if r.notebook not in rank
                                          else ""))


def mark_stale(results, notebooks_dir=None) -> list:
    """Set ``r.stale`` for every result whose run.json input hash differs from what the runner would compute now
    (the notebook file, the parameters it ran with, lib/ and requirements.txt: scripts/run_notebooks.input_hash);
    returns the stale ones' "notebook/folder" names.  A result without run.json or notebook stays unchecked."""
    import run_notebooks
    nb_dir = Path(notebooks_dir) if notebooks_dir else ROOT / "notebooks"
    out = []
    for r in results:
        nb, params, stored = nb_dir / f"{r.notebook}.ipynb", r.run.get("parameters"), r.run.get("input_hash")
        if nb.is_file() and isinstance(params, dict) and stored:
            r.stale = run_notebooks.input_hash(nb, params) != stored
            if r.stale:
                out.append(f"{r.notebook}/{r.profile}")
    return out


def build(results_dir, notebooks_dir=None) -> dict:
    """Write ``index.html`` and ``claims.md`` into ``results_dir``; return their paths and the ledger rows."""
    results_dir = Path(results_dir).resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    results = ledger.collect(results_dir)
    stale = mark_stale(results, notebooks_dir)
    planned = ledger.planned_notebooks(notebooks_dir) if notebooks_dir else ledger.planned_notebooks()
    rows = ledger.ledger_rows(results, results_dir, planned=planned)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    from lib.experiment import git_commit
    commit = git_commit()
    io.write_text(results_dir / "claims.md", ledger.claims_markdown(rows, generated=now, stale=stale))
    io.write_text(results_dir / "index.html", ledger.index_html(by_section(results), rows, results_dir, generated=now,
                                                                 commit=commit[:12] + ("-dirty" if "dirty" in commit
                                                                                       else "")))
    return {"index": results_dir / "index.html", "claims": results_dir / "claims.md", "results": results,
            "rows": rows, "stale": stale}


def check_pages(index: Path) -> tuple:
    """Open the index and every local page it links in headless Chromium: (problems, {page: rendered DOM})."""
    problems, doms = [], {}
    pages = [index]
    links = browser.local_links(index)
    problems += [f"{index.name}: missing {u}" for u in links["missing"]]
    problems += [f"{index.name}: external link {u}" for u in links["external"]]
    pages += sorted({(index.parent / unquote(u.split("#")[0])).resolve() for u in links["ok"]
                     if u.split("#")[0].endswith(".html")})
    for page in pages:
        try:
            dom = browser.render_dom(page)
        except Exception as exc:  # noqa: BLE001 - reported, the other pages are still checked
            problems.append(f"{page}: {exc}")
            continue
        doms[page] = dom
        if "<body" not in dom.lower():
            problems.append(f"{page}: rendered without a body")
        if page != index:
            problems += [f"{page}: missing {u}" for u in browser.local_links(page)["missing"]]
    return problems, doms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results"), help="results folder (default: results/)")
    ap.add_argument("--notebooks", default=None, help="notebook folder searched for claim ids (default: notebooks/)")
    ap.add_argument("--screenshot", default=None, metavar="PNG", help="save a headless-Chromium screenshot here")
    ap.add_argument("--check", action="store_true", help="open every page in headless Chromium and check links")
    args, ignored = ap.parse_known_args(argv)
    out = build(args.results, args.notebooks)
    counts = ledger.claim_counts(out["rows"])
    print(f"index: {out['index']} ({len(out['results'])} reports); claims: {out['claims']} "
          f"(claims, each once: {', '.join(f'{k}: {v}' for k, v in counts.items() if v)}; "
          f"{len(out['rows'])} rows)", flush=True)
    status = 0
    if args.screenshot or args.check:
        if browser.find_chromium() is None:
            print("no chromium binary found: browser check and screenshot skipped", file=sys.stderr)
            return 1
    if args.screenshot:
        png = browser.screenshot(out["index"], args.screenshot)
        print(f"screenshot: {png}", flush=True)
    if args.check:
        problems, doms = check_pages(out["index"])
        for p in problems:
            print(f"  problem: {p}", file=sys.stderr)
        print(f"browser check of {len(doms)} page(s): {'ok' if not problems else f'{len(problems)} problem(s)'}",
              flush=True)
        status = 1 if problems else 0
    return status


if __name__ == "__main__":
    sys.exit(main())
