"""The index page (results/index.html): a card per report and the claims ledger, from lib/reports/ledger.py's rows,
rendered from the Jinja2 template templates/index.html.j2 (autoescaped); this module only builds plain data for it."""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Sequence
from urllib.parse import quote

import jinja2

from lib.reports.ledger import (CLAIM_RULE, CLAIMS_BY_ID, ID_PATTERN, LEDGER_COLUMNS, NOT_MEASURED, OTHER_SECTION, PAPERS,
                        LedgerRow, NotebookResult, _num, _rel, _report_rel, canonical_id, claim_summaries,
                        format_ours, verdict_counts)

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "index.html.j2"  # the page's markup and CSS; this module only builds the plain data it renders


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _href(rel: str) -> str:
    return quote(rel, safe="/")


def _badge(text: Any) -> Dict[str, str]:
    """{"text", "cls"}: the template's badge; the class is the text in lower case, runs of other characters -> "-"."""
    return {"text": str(text), "cls": re.sub(r"[^a-z]+", "-", str(text).lower()).strip("-")}


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


def _headline_data(rows: List[List[str]]) -> Dict[str, Any]:
    """headline_rows() for the template: {"header": [...], "body": [[{"text", "num"}, ...], ...]} (empty: no table)."""
    if not rows:
        return {"header": [], "body": []}
    return {"header": [str(h) for h in rows[0]],
            "body": [[{"text": str(c), "num": _is_num(c)} for c in row] for row in rows[1:]]}


def _is_num(c: str) -> bool:
    try:
        float(c)
        return True
    except ValueError:
        return False


def _id_sort_key(cid: str) -> tuple:
    m = ID_PATTERN.fullmatch(cid)
    return (0, m.group(1), int(m.group(2))) if m else (1, cid, 0)


def _card(r: NotebookResult, results_dir: Path) -> Dict[str, Any]:
    """One report's card, as plain data for the template."""
    status = r.status
    figures = [{"href": _href(_rel(r, f, results_dir)), "text": str(f)} for f in r.figures]
    commit = str(r.provenance("commit") or "—")
    scale = r.provenance("scale") or next((c.get("scale") for c in r.claims if c.get("scale")), None)
    prov = [("profile", r.profile), ("scale", scale or "—"),
            ("device", r.provenance("device") or "—"),
            ("commit", commit[:12] + ("-dirty" if "dirty" in commit else "")),
            *([("inputs", "changed since this run (notebook, parameters, lib/ or requirements): made by older "
                          "code; ./run_all.sh would re-run it")] if r.stale else []),
            ("date", r.provenance("date") or r.run.get("started") or "—"),
            ("run", f"{status}" + (f", {r.run['seconds']} s" if r.run.get("seconds") is not None else "")
             + (f", started {r.run['started']}" if r.run.get("started") else ""))]
    claims = None
    if r.claims:
        ids = sorted({canonical_id(c.get("id"), c.get("paper")) for c in r.claims}, key=_id_sort_key)
        counts: Dict[str, int] = {}
        for c in r.claims:
            counts[str(c.get("verdict"))] = counts.get(str(c.get("verdict")), 0) + 1
        claims = {"ids": ", ".join(ids), "n": len(r.claims),
                  "verdicts": [(_badge(k), v) for k, v in sorted(counts.items())]}
    return {"id": f"{r.notebook}-{r.profile}", "notebook": str(r.notebook), "profile": str(r.profile),
            "failed": status == "failed", "status": _badge(status), "stale": bool(r.stale),
            "report": _href(_report_rel(r, results_dir)) if r.has_report else None,
            "error": str(r.error or "failed (no error recorded)") if status == "failed" else None,
            "figure": ({"href": figures[0]["href"], "alt": f"{r.notebook}: {r.figures[0]}"} if figures else None),
            "other_figures": figures[1:], "headline": _headline_data(headline_rows(r)),
            "provenance": [(str(k), str(v)) for k, v in prov], "claims": claims, "has_report": bool(r.has_report)}


def _ledger_cell(r: LedgerRow, column: str) -> Dict[str, Any]:
    """{"column", "badge", "links", "text"}: a badge (verdict), links (figures; the notebook's report) or text."""
    v = getattr(r, column)
    cell: Dict[str, Any] = {"column": column, "badge": None, "links": None, "text": str(v)}
    if column == "verdict":
        cell["badge"] = _badge(v)
    elif column == "figure":
        cell["links"] = [{"href": _href(f), "text": f.rsplit("/", 1)[-1]} for f in r.figures]
    elif column == "notebook" and r.report:
        cell["links"] = [{"href": _href(r.report), "text": str(v)}]
    return cell


def _ledger_sections(rows: Sequence[LedgerRow]) -> List[Dict[str, Any]]:
    """The ledger's tables, one per paper (then the ids not in the master list): [{"title", "rows"}]."""
    out = []
    for paper, title in list(PAPERS.items()) + [("?", OTHER_SECTION)]:
        sub = [r for r in rows if (r.paper == paper and r.id in CLAIMS_BY_ID)
               or (paper == "?" and r.id not in CLAIMS_BY_ID)]
        if sub:
            out.append({"title": title,
                        "rows": [{"unmeasured": r.verdict == NOT_MEASURED,
                                  "cells": [_ledger_cell(r, k) for k, _ in LEDGER_COLUMNS]} for r in sub]})
    return out


def index_html(results: Sequence[NotebookResult], rows: Sequence[LedgerRow], results_dir, generated: str = "",
               commit: str = "") -> str:
    """The page: lib/reports/templates/index.html.j2 rendered with the cards, the claims at a glance and the ledger."""
    results_dir = Path(results_dir)
    summaries = claim_summaries(rows)
    claim_counts: Dict[str, int] = {}
    for c in summaries:
        claim_counts[c.verdict] = claim_counts.get(c.verdict, 0) + 1
    glance = [{"id": str(c.id), "verdict": _badge(c.verdict), "why": str(c.why),
               "rows": ", ".join(f"{k} {v}" for k, v in c.rows.items()) or "—",
               "figure": _href(c.figure) if c.figure else None} for c in summaries]
    return _environment().get_template(TEMPLATE).render(
        generated=generated, commit=commit, n_results=len(results),
        n_ok=sum(r.status == "ok" for r in results), n_failed=sum(r.status == "failed" for r in results),
        cards=[_card(r, results_dir) for r in results], claim_rule=CLAIM_RULE, n_claims=len(summaries),
        claim_verdicts=[(_badge(k), v) for k, v in claim_counts.items()],
        row_verdicts=[(_badge(k), v) for k, v in sorted(verdict_counts(rows).items())],
        glance=glance, ledger_header=[h for _, h in LEDGER_COLUMNS], ledger=_ledger_sections(rows))
