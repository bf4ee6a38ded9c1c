"""The index page (results/index.html): a card per report and the claims ledger, from lib/reports/ledger.py's rows."""
from __future__ import annotations

import csv
import html
import re
from pathlib import Path
from typing import Any, Dict, List, Sequence
from urllib.parse import quote

from lib.reports.ledger import (CLAIM_RULE, CLAIMS_BY_ID, ID_PATTERN, LEDGER_COLUMNS, NOT_MEASURED, OTHER_SECTION, PAPERS,
                        LedgerRow, NotebookResult, _num, _rel, _report_rel, canonical_id, claim_summaries,
                        format_ours, verdict_counts)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
 max-width:1400px;padding:1rem 1.5rem;color:#222;line-height:1.4}
h1{margin:.2rem 0}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#666;font-size:.9rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:1rem}
.card{border:1px solid #ccc;border-radius:6px;padding:.7rem .9rem;background:#fff}
.card.failed{border-color:#c0392b;background:#fdf2f1}
.card h3{margin:0 0 .3rem 0;font-size:1.05rem;word-break:break-all}
.card img{max-width:100%;max-height:300px;display:block;margin:.4rem auto;border:1px solid #eee}
.badge{display:inline-block;padding:0 .45rem;border-radius:3px;font-size:.8rem;font-weight:600;color:#fff;
 background:#777;white-space:nowrap}
.ok,.reproduced{background:#2e7d32}.failed,.not-reproduced{background:#c0392b}.inconclusive{background:#b7791f}
.qualitative{background:#5b6bbf}.not-yet-measured{background:#999}.skipped{background:#777}
.not-testable-at-this-scale{background:#6d4c41}.proxy{background:#8e44ad}
pre.error{white-space:pre-wrap;background:#fff;border:1px solid #e6b0aa;padding:.4rem;font-size:.8rem;
 max-height:10rem;overflow:auto}
table{border-collapse:collapse;font-size:.85rem;margin:.3rem 0}
th,td{border:1px solid #ddd;padding:.2rem .4rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.ledger{width:100%;table-layout:auto}table.ledger td{max-width:26rem;overflow-wrap:break-word}
table.ledger td.ours{min-width:9rem}
table.ledger tr.unmeasured td{color:#777}
table.ledger td.id,table.ledger td.verdict{white-space:nowrap}
table.ledger td.claim{min-width:16rem}table.ledger td.paper_number{min-width:10rem}
table.ledger td.detail{min-width:12rem;font-size:.78rem;color:#555}
table.ledger td.notebook,table.ledger td.dataset{overflow-wrap:anywhere;max-width:10rem}
table.ledger td.metric{min-width:6rem;max-width:10rem}
table.ledger td.profile{font-size:.78rem;max-width:11rem}.ledger-wrap{overflow-x:auto}
.headline table{font-size:.76rem}.headline th,.headline td{padding:.12rem .28rem}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:0 .6rem;font-size:.82rem;margin:.3rem 0}
dl.prov dt{color:#666}dl.prov dd{margin:0;word-break:break-all}
.headline{overflow-x:auto}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _href(rel: str) -> str:
    return quote(rel, safe="/")


def _badge(text: str) -> str:
    return f'<span class="badge {_e(re.sub(r"[^a-z]+", "-", str(text).lower()).strip("-"))}">{_e(text)}</span>'


def headline_rows(r: NotebookResult, max_rows: int = 6) -> List[List[str]]:
    """[[header...], [row...], ...]: metrics.json "headline" if given, else table.csv/table.md's first rows."""
    head = (r.metrics or {}).get("headline")
    if isinstance(head, dict) and head:
        return [["quantity", "value"]] + [[str(k), format_ours(v)] for k, v in head.items()]
    if (r.dir / "table.csv").is_file():
        with open(r.dir / "table.csv", newline="") as f:
            rows = list(csv.reader(f))
        return [[_num(_maybe_float(c)) for c in row] for row in rows[:max_rows + 1]]
    if (r.dir / "table.md").is_file():
        lines = [ln for ln in (r.dir / "table.md").read_text().splitlines() if ln.startswith("|")]
        cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
        cells = [c for c in cells if not all(set(x) <= set(":-") for x in c)]
        return cells[:max_rows + 1]
    return []


def _maybe_float(c: str) -> Any:
    try:
        return float(c) if c.strip() and not c.strip().isdigit() else c
    except ValueError:
        return c


def _table_html(rows: List[List[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f'<td class="{"num" if _is_num(c) else ""}">{_e(c)}</td>' for c in row)
                   + "</tr>" for row in rows[1:])
    return f'<div class="headline"><table><tr>{head}</tr>{body}</table></div>'


def _is_num(c: str) -> bool:
    try:
        float(c)
        return True
    except ValueError:
        return False


def _id_sort_key(cid: str) -> tuple:
    m = ID_PATTERN.fullmatch(cid)
    return (0, m.group(1), int(m.group(2))) if m else (1, cid, 0)


def _card(r: NotebookResult, results_dir: Path) -> str:
    status = r.status
    link = (f'<a href="{_href(_report_rel(r, results_dir))}">{_e(r.notebook)}</a>' if r.has_report
            else _e(r.notebook))
    parts = [f'<div class="card {"failed" if status == "failed" else ""}" id="{_e(r.notebook)}-{_e(r.profile)}">',
             f"<h3>{link} <span class='meta'>/ {_e(r.profile)}</span> {_badge(status)}</h3>"]
    if status == "failed":
        parts.append(f'<pre class="error">{_e(r.error or "failed (no error recorded)")}</pre>')
    if r.figures:
        fig = r.figures[0]
        parts.append(f'<a href="{_href(_rel(r, fig, results_dir))}"><img src="{_href(_rel(r, fig, results_dir))}" '
                     f'alt="{_e(r.notebook)}: {_e(fig)}" loading="lazy"></a>')
        if len(r.figures) > 1:
            others = ", ".join(f'<a href="{_href(_rel(r, f, results_dir))}">{_e(f)}</a>' for f in r.figures[1:])
            parts.append(f"<div class='meta'>other figures: {others}</div>")
    parts.append(_table_html(headline_rows(r)))
    commit = str(r.provenance("commit") or "—")
    scale = r.provenance("scale") or next((c.get("scale") for c in r.claims if c.get("scale")), None)
    prov = [("profile", r.profile), ("scale", scale or "—"),
            ("device", r.provenance("device") or "—"),
            ("commit", commit[:12] + ("-dirty" if "dirty" in commit else "")),
            ("date", r.provenance("date") or r.run.get("started") or "—"),
            ("run", f"{status}" + (f", {r.run['seconds']} s" if r.run.get("seconds") is not None else "")
             + (f", started {r.run['started']}" if r.run.get("started") else ""))]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in prov)
    if r.claims:
        ids = sorted({canonical_id(c.get("id"), c.get("paper")) for c in r.claims}, key=_id_sort_key)
        counts: Dict[str, int] = {}
        for c in r.claims:
            counts[str(c.get("verdict"))] = counts.get(str(c.get("verdict")), 0) + 1
        items += (f"<dt>claims</dt><dd>{_e(', '.join(ids))} ({len(r.claims)} entries): "
                  + " ".join(f"{_badge(k)} {v}" for k, v in sorted(counts.items()))
                  + ' — <a href="#claims">ledger</a></dd>')
    parts.append(f"<dl class='prov'>{items}</dl>")
    if not r.has_report:
        parts.append("<div class='meta'>no report.html</div>")
    parts.append("</div>")
    return "\n".join(p for p in parts if p)


def _ledger_html(rows: Sequence[LedgerRow]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for _, h in LEDGER_COLUMNS)
    out = []
    for paper, title in list(PAPERS.items()) + [("?", OTHER_SECTION)]:
        sub = [r for r in rows if (r.paper == paper and r.id in CLAIMS_BY_ID)
               or (paper == "?" and r.id not in CLAIMS_BY_ID)]
        if not sub:
            continue
        out.append(f"<h3>{_e(title)}</h3><div class='ledger-wrap'><table class='ledger'><tr>{head}</tr>")
        for r in sub:
            cells = []
            for k, _ in LEDGER_COLUMNS:
                v = getattr(r, k)
                if k == "verdict":
                    cell = _badge(v)
                elif k == "figure":
                    cell = " ".join(f'<a href="{_href(f)}">{_e(f.rsplit("/", 1)[-1])}</a>' for f in r.figures) or "—"
                elif k == "notebook" and r.report:
                    cell = f'<a href="{_href(r.report)}">{_e(v)}</a>'
                else:
                    cell = _e(v)
                cells.append(f'<td class="{k}">{cell}</td>')
            cls = " class='unmeasured'" if r.verdict == NOT_MEASURED else ""
            out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
        out.append("</table></div>")
    return "\n".join(out)


def index_html(results: Sequence[NotebookResult], rows: Sequence[LedgerRow], results_dir, generated: str = "",
               commit: str = "") -> str:
    results_dir = Path(results_dir)
    n_ok = sum(r.status == "ok" for r in results)
    n_failed = sum(r.status == "failed" for r in results)
    counts = verdict_counts(rows)
    claim_counts: Dict[str, int] = {}
    summaries = claim_summaries(rows)
    for c in summaries:
        claim_counts[c.verdict] = claim_counts.get(c.verdict, 0) + 1
    summary = (f"<b>Claims</b> ({len(summaries)}, each counted once): "
               + " ".join(f"{_badge(k)} {v}" for k, v in claim_counts.items())
               + "<br><span class='meta'>rows (one per measurement): "
               + " ".join(f"{_badge(k)} {v}" for k, v in sorted(counts.items())) + "</span>")
    glance = "".join(f"<tr><td class='id'>{_e(c.id)}</td><td class='verdict'>{_badge(c.verdict)}</td>"
                     f"<td class='detail'>{_e(c.why)}</td><td class='detail'>"
                     f"{_e(', '.join(f'{k} {v}' for k, v in c.rows.items()) or '—')}</td><td>"
                     + (f'<a href="{_href(c.figure)}">figure</a>' if c.figure else "—") + "</td></tr>"
                     for c in summaries)
    glance = ("<div class='ledger-wrap'><table class='ledger glance'><tr><th>claim</th><th>verdict</th><th>why</th>"
              f"<th>rows</th><th>figure</th></tr>{glance}</table></div>")
    cards = "\n".join(_card(r, results_dir) for r in results) or "<p>No results yet: run ./run_all.sh.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Results index</title>
<style>{CSS}</style></head>
<body>
<h1>Results</h1>
<p class="meta">Generated by <code>scripts/build_index.py</code>{(" on " + _e(generated)) if generated else ""}
{(" at commit " + _e(commit)) if commit else ""}. {len(results)} report(s): {n_ok} ok, {n_failed} failed.
Numbers at the smoke profile only check the plumbing; see each card's scale.</p>
<p><a href="#reports">Reports</a> · <a href="#claims">Claims ledger</a> (also <a href="claims.md">claims.md</a>)</p>
<h2 id="reports">Reports</h2>
<div class="cards">
{cards}
</div>
<h2 id="claims">Claims ledger</h2>
<p class="meta">Each claim once, with its verdict combined from its rows ({_e(CLAIM_RULE)}); then one row per
measurement; verdict rule of evaluation.md. Only the largest-scale profile of each notebook is used.</p>
<p>{summary}</p>
{glance}
{_ledger_html(rows)}
</body></html>
"""
