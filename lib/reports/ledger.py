"""The reader-facing outputs: the claims ledger (results/claims.md) and the index page (results/index.html).

Both are *generated* from what the notebooks wrote, never typed by hand:
  results/<nb>/<profile>/run.json       status, error, duration (scripts/run_notebooks.py)
  results/<nb>/<profile>/metrics.json   provenance + optional "headline", "key_figure" and "claims"
  results/<nb>/<profile>/report.html    the rendered report;  *.png figures;  table.md / table.csv

Claim ids
---------
``CLAIMS`` (lib/reports/paper_claims.py) is the master list of every claim of both papers, transcribed from the specs:
``"EPD-<n>"`` is claim n of ../shared/reference/epd_spec.md §7 (EPD-1 .. EPD-22) and ``"COLD-<n>"`` is claim
C<n> of ../shared/reference/cold_spec.md §8 (COLD-1 .. COLD-16).  A notebook tests a claim by putting an entry
built with lib/reports/claims.py (``compare`` / ``within_tolerance`` / ``qualitative``) whose ``"id"`` is that string
into the ``"claims"`` list of its metrics.json.  ``canonical_id`` also maps onto the master list: suffixed ids
(``"EPD-9-recall"``), the Cold spec's own ``"C<n>"`` with any suffix (``"C4-blur-FD"``), and a bare number or
sub-claim (``"15"``, ``"5a"``) when the entry's ``"paper"`` names the paper ("epd" / "edge-..." / "cold ...");
the entry's own id is then shown in the row's detail.  Several entries with one id (one per dataset or
sub-claim) give one ledger row each; a claim no notebook has measured yet gets one row with verdict
"not yet measured" and the notebook expected to measure it (found by the id in a notebook's source or in a lib
function the notebook calls; else the planned name in CLAIMS).

Counting: claims, not rows
--------------------------
Holm's correction runs over all rows of one claim (its family), from each entry's raw p (``lib.reports.claims.holm``).
Each row shows its quality-gate status (``gate_status``) and links the figure it rests on (the entry's
``"figure"``, else its run's key figure).  The headline of claims.md and of the index counts each claim once
with the verdict ``claim_verdict`` combines from its rows by ``CLAIM_RULE`` (printed under the headline); the
row counts come beneath.  ``verdict_counts`` counts rows, ``claim_counts`` claims.

Optional metrics.json keys read by the index:
  "key_figure": "samples.png"            the figure shown on the index (default: the first PNG written that is
                                         not a loss curve)
  "headline": {"FD_mnistclf (EPD)": 12.3, ...}   a few numbers shown on the index (default: table.md's first rows)

Only the largest-scale profile of a notebook that has claims enters the ledger (paper > gpu > quick > smoke),
so a smoke run never sits beside a quick run of the same notebook; the index lists every profile.  Variant
folders ``<profile>_<tag>`` (e.g. ``quick_afhq_cat``, a second dataset written by the same run) count as their
profile, each variant separately, and link to their profile's report.

Browser check: scripts/browser.py (``find_chromium``, ``render_dom``, ``screenshot``, ``local_links``; used by
scripts/build_index.py, scripts/screenshots.py and tests/test_reports.py) opens the pages the way a reader does,
from file://.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence
from urllib.parse import quote

from lib.reports import claims as verdict_rule
from lib.reports.paper_claims import CLAIMS, CLAIMS_BY_ID, Claim  # noqa: F401  (the master list)

PROFILE_RANK = {"smoke": 0, "quick": 1, "gpu": 2, "paper": 3}


def split_profile(folder: str) -> tuple:
    """Results sub-folder -> (profile, variant): "quick" -> ("quick", ""), "quick_afhq_cat" -> ("quick", "afhq_cat")."""
    base, _, tag = folder.partition("_")
    return (base, tag) if base in PROFILE_RANK else (folder, "")


def profile_rank(folder: str) -> int:
    return PROFILE_RANK.get(split_profile(folder)[0], -1)
NOT_MEASURED = "not yet measured"
PAPERS = {"EPD": "Edge-preserving noise for diffusion models (epd_spec.md §7)",
          "COLD": "Cold Diffusion (cold_spec.md §8)"}
OTHER_SECTION = "Other checks (ids not in the master list)"
ID_PATTERN = re.compile(r"\b(EPD|COLD)-(\d+)\b")


def _paper_of(paper: Any) -> Optional[str]:
    p = str(paper or "").lower()
    if "cold" in p:
        return "COLD"
    if "epd" in p or "edge" in p:
        return "EPD"
    return None


def canonical_id(claim_id: Any, paper: Any = None) -> str:
    """The master-list id ("EPD-<n>" / "COLD-<n>") an entry refers to; the id itself when it matches none.

    "EPD-3", "epd_3", "COLD 4" -> as is; "C4-blur-FD", "C1" -> "COLD-4", "COLD-1";
    "15", "5a", "11b" with paper "epd" -> "EPD-15", "EPD-5", "EPD-11" (with a Cold paper -> "COLD-<n>")."""
    text = str(claim_id).strip()
    m = re.match(r"^(EPD|COLD)[-_ ]?(\d+)(?![\d])", text, re.I)
    if m:
        return f"{m.group(1).upper()}-{int(m.group(2))}"
    m = re.match(r"^C(\d+)(?![\d])", text)
    if m and _paper_of(paper) in ("COLD", None):
        return f"COLD-{int(m.group(1))}"
    m = re.match(r"^(\d+)(?![\d])", text)
    if m and _paper_of(paper):
        return f"{_paper_of(paper)}-{int(m.group(1))}"
    return text


# ----------------------------------------------------------------------------------------------------------------
# Collecting the results tree


@dataclass
class NotebookResult:
    """One ``results/<notebook>/<profile>/`` folder."""
    notebook: str
    profile: str
    dir: Path
    run: Dict[str, Any] = field(default_factory=dict)       # run.json ({} when absent)
    metrics: Optional[Dict[str, Any]] = None                 # metrics.json (None when absent or unreadable)
    figures: List[str] = field(default_factory=list)         # PNG names, key figure first
    stale: Optional[bool] = None   # inputs (notebook, parameters, lib/, requirements) changed since the run;
                                   # set by scripts/build_index.py (None: not checked)

    @property
    def status(self) -> str:
        return self.run.get("status") or ("ok" if self.metrics is not None else "unknown")

    @property
    def error(self) -> Optional[str]:
        return self.run.get("error")

    @property
    def report_dir(self) -> Optional[Path]:
        """The folder holding this run's report.html (a variant folder like quick_afhq_cat uses its profile's)."""
        for d in (self.dir, self.dir.parent / split_profile(self.profile)[0]):
            if (d / "report.html").is_file():
                return d
        return None

    @property
    def has_report(self) -> bool:
        return self.report_dir is not None

    def provenance(self, key: str) -> Any:
        return (self.metrics or {}).get(key)

    @property
    def claims(self) -> List[Dict[str, Any]]:
        entries = (self.metrics or {}).get("claims") or []
        return [e for e in entries if isinstance(e, dict)]


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _figures(d: Path, declared: Optional[str]) -> List[str]:
    # the first figure written, loss curves last (a training-loss plot is rarely the figure a reader wants first)
    pngs = sorted(d.glob("*.png"), key=lambda p: ("loss" in p.stem.lower(), p.stat().st_mtime, p.name))
    names = [p.name for p in pngs if not p.name.startswith(".")]
    if declared and declared in names:
        names.remove(declared)
        names.insert(0, declared)
    return names


def collect(results_dir) -> List[NotebookResult]:
    """Every ``<nb>/<profile>/`` folder under ``results_dir`` holding a run.json, metrics.json or report.html."""
    results_dir = Path(results_dir)
    out = []
    for nb_dir in sorted(p for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if results_dir.is_dir() else []:
        for d in sorted((p for p in nb_dir.iterdir() if p.is_dir()), key=lambda p: (-profile_rank(p.name), p.name)):
            files = {n: (d / n).is_file() for n in ("run.json", "metrics.json", "report.html", "FAILED.json")}
            if not any(files.values()):
                continue
            metrics = _read_json(d / "metrics.json") if files["metrics.json"] else None
            run = _read_json(d / "run.json") or _read_json(nb_dir / split_profile(d.name)[0] / "run.json") or {}
            failed = _read_json(d / "FAILED.json") if (d / "FAILED.json").is_file() else None
            if failed:  # a later run failed; the files here are the last good run's (scripts/run_notebooks.py)
                run = {**run, "status": "failed", "error": failed.get("error"), "failed": failed}
            r = NotebookResult(nb_dir.name, d.name, d, run, metrics)
            r.figures = _figures(d, (metrics or {}).get("key_figure"))
            out.append(r)
    return out


def _functions(source: str) -> List[tuple]:
    """(name, source) of each top-level function of a module (an unparsable module gives none)."""
    import ast
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [(n.name, ast.get_source_segment(source, n) or "") for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def planned_notebooks(notebooks_dir=None, lib_dir=None) -> Dict[str, List[str]]:
    """Claim id -> notebooks whose source mentions the id, or calls a top-level lib function that does."""
    root = Path(__file__).resolve().parents[2]
    notebooks_dir = Path(notebooks_dir or root / "notebooks")
    lib_dir = Path(lib_dir or root / "lib")
    sources = {p.stem: p.read_text(errors="replace") for p in sorted(notebooks_dir.glob("*.ipynb"))
               if not p.name.startswith("_")} if notebooks_dir.is_dir() else {}
    found: Dict[str, List[str]] = {}
    for nb, text in sources.items():
        for m in ID_PATTERN.finditer(text):
            found.setdefault(m.group(0), []).append(nb)
    called = {nb: set(re.findall(r"\b([A-Za-z_]\w*)\(", text)) for nb, text in sources.items()}
    if lib_dir.is_dir():  # an id inside a lib function -> the notebooks that call that function
        for mod in sorted(lib_dir.rglob("*.py")):
            if mod.name in ("ledger.py", "ledger_index.py", "paper_claims.py", "claims.py", "__init__.py"):
                continue
            text = mod.read_text(errors="replace")
            if not ID_PATTERN.search(text):
                continue
            for func, body in _functions(text):
                ids = [m.group(0) for m in ID_PATTERN.finditer(body)]
                users = [nb for nb in sources if ids and func in called[nb]]
                for cid in ids:
                    found.setdefault(cid, []).extend(users)
    return {k: sorted(set(v)) for k, v in found.items()}


# ----------------------------------------------------------------------------------------------------------------
# The ledger


def _num(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, (int, float)):
        return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.4g}"
    return str(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _mean_sd(vals: Sequence[float]) -> str:
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return _num(mean) + (f" ± {_num(std)}" if std is not None else "") + f" (n={len(vals)})"


def _format(x: Any) -> str:
    if x is None:
        return "—"
    if _is_number(x) or isinstance(x, str):
        return _num(x)
    if isinstance(x, (list, tuple)):
        if x and all(_is_number(v) for v in x):
            return _mean_sd([float(v) for v in x])
        return "[" + ", ".join(_format(v) for v in x) + "]"
    if isinstance(x, dict):
        if _is_number(x.get("mean")):  # a lib/reports/claims.py summary {values, mean, std, n}
            return (_num(x["mean"]) + (f" ± {_num(x['std'])}" if _is_number(x.get("std")) else "")
                    + (f" (n={x['n']})" if x.get("n") is not None else ""))
        vals = x.get("values")
        if isinstance(vals, (list, tuple)) and vals and all(_is_number(v) for v in vals):
            return _mean_sd([float(v) for v in vals])
        parts = [f"{k}: {_format(v)}" for k, v in x.items() if k not in ("metric", "n")]
        return "; ".join(parts) + (f" (n={x['n']})" if x.get("n") is not None else "")
    return str(x)


def format_ours(ours: Any, limit: int = 400) -> str:
    """Our measurement as "mean ± sd (n=…)": a lib/reports/claims.py summary, arms {name: summary}, a proxy dict, a number
    or a list of numbers; anything else is shown as it is (cut at ``limit`` characters), never an error."""
    try:
        text = _format(ours)
    except Exception:  # noqa: BLE001 - a malformed entry must not stop the index
        text = json.dumps(ours, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _paper_number(entry: Dict[str, Any], claim: Optional[Claim]) -> str:
    pv = entry.get("paper_value")
    if pv is None or pv == {}:
        return claim.paper_number if claim else "—"
    if isinstance(pv, dict):
        text = ", ".join(f"{k} {_num(v)}" for k, v in pv.items())
    else:
        text = _num(pv)
    if entry.get("tolerance") is not None:
        text += f" ± {_num(entry['tolerance'])}"
    return text + (f" ({entry['paper_metric']})" if entry.get("paper_metric") else "")


def _dataset(entry: Dict[str, Any], result: NotebookResult) -> str:
    ds = entry.get("dataset")
    res = entry.get("resolution")
    if ds is None:
        ds = result.provenance("dataset")
    if isinstance(ds, dict):
        res = res or ds.get("resolution")
        ds = ds.get("name")
    if ds is None:
        return "—"
    if not res:
        return str(ds)
    return f"{ds} {res}²" if _is_number(res) or str(res).isdigit() else f"{ds} {res}"


@dataclass
class LedgerRow:
    id: str
    paper: str
    claim: str
    paper_number: str
    ours: str
    metric: str
    dataset: str
    profile: str
    verdict: str
    notebook: str
    detail: str = ""
    report: Optional[str] = None     # relative link to the report (from the results folder)
    figure: Optional[str] = None     # relative link to the figure the row rests on (named, else the run's key one)
    gate: str = ""                   # quality gate of the row's arms: passed | failed: ... | exempt: ... | ungated
    setting: str = "main"            # "main" (decides the claim) or "sensitivity" (shown, never decisive)
    figures: List[str] = field(default_factory=list)   # every figure the entry names (relative links)


def _rel(result: NotebookResult, name: str, results_dir: Path) -> str:
    return (result.dir / name).relative_to(results_dir).as_posix()


def _report_rel(result: NotebookResult, results_dir: Path) -> Optional[str]:
    d = result.report_dir
    return (d / "report.html").relative_to(results_dir).as_posix() if d else None


def ledger_rows(results: Sequence[NotebookResult], results_dir, claims: Sequence[Claim] = CLAIMS,
                planned: Optional[Dict[str, List[str]]] = None) -> List[LedgerRow]:
    """One row per measured claim entry (largest-scale profile per notebook), one per unmeasured claim."""
    results_dir = Path(results_dir)
    planned = planned if planned is not None else planned_notebooks()
    best: Dict[tuple, NotebookResult] = {}  # (notebook, variant) -> its largest-scale run with claims
    for r in results:
        key = (r.notebook, split_profile(r.profile)[1])
        if r.claims and (key not in best or profile_rank(r.profile) > profile_rank(best[key].profile)):
            best[key] = r
    by_id: Dict[str, List[tuple]] = {}
    for key in sorted(best):
        for e in best[key].claims:
            by_id.setdefault(canonical_id(e.get("id"), e.get("paper")), []).append((best[key], e))
    for cid, pairs in by_id.items():  # Holm within each claim's family: all its rows, from their raw p
        corrected = verdict_rule.holm([e for _, e in pairs])
        by_id[cid] = [(r, e) for (r, _), e in zip(pairs, corrected)]
    known = {c.id for c in claims}
    rows = []
    for c in claims:
        for r, e in by_id.get(c.id, []):
            rows.append(_row(c, r, e, results_dir))
        if c.id not in by_id:
            nbs = planned.get(c.id) or [c.notebook]
            rows.append(LedgerRow(c.id, c.paper, c.text, c.paper_number, "—", "—", "—", "—", NOT_MEASURED,
                                  ", ".join(nbs)))
    for cid in sorted(set(by_id) - known):  # entries whose id is not in the master list: shown, flagged
        for r, e in by_id[cid]:
            row = _row(None, r, e, results_dir)
            row.id = cid
            row.detail = f"id {cid!r} is not in the master list (lib/reports/ledger.py). " + row.detail
            rows.append(row)
    return rows


def _claim_text(c: Optional[Claim], e: Dict[str, Any]) -> str:
    own = str(e.get("claim") or "").strip()
    if c is None:
        return own
    if own and str(e.get("id")) != c.id and not _same_text(own, c.text):
        return f"{c.text} — this row: {own}"
    return c.text


def _same_text(a: str, b: str) -> bool:
    import difflib
    norm = [re.sub(r"[^a-z0-9%<>=]+", " ", t.lower().replace("–", "-")).strip() for t in (a, b)]
    return norm[0] in norm[1] or difflib.SequenceMatcher(None, *norm).ratio() > 0.8


def _row(c: Optional[Claim], r: NotebookResult, e: Dict[str, Any], results_dir: Path) -> LedgerRow:
    profile = e.get("profile") or r.profile
    scale = e.get("scale") or r.provenance("scale")
    detail = str(e.get("detail") or "")
    if r.status != "ok":
        detail = f"last run {r.status} ({r.error}); numbers from the run of {r.provenance('date')}. " + detail
    if c is not None and str(e.get("id")) != c.id:
        detail = f"[entry {e.get('id')}] " + detail
    if e.get("kind") == "direction" and "arms" not in e:
        detail = "legacy entry (verdict rule before paired tests, Holm, minimum effect and gate): " + detail
    figures = _entry_figures(r, e, results_dir)
    return LedgerRow(
        id=c.id if c else str(e.get("id")), paper=c.paper if c else str(e.get("paper") or "?"),
        claim=_claim_text(c, e), paper_number=_paper_number(e, c),
        ours=format_ours(e.get("ours")), metric=str(e.get("metric") or "—"), dataset=_dataset(e, r),
        profile=f"{profile} ({scale})" if scale else str(profile), verdict=str(e.get("verdict") or "—"),
        notebook=r.notebook, detail=detail,
        report=_report_rel(r, results_dir), figure=figures[0] if figures else None, figures=figures,
        gate=gate_status(e), setting=str(e.get("setting") or "main"))


def gate_status(e: Dict[str, Any]) -> str:
    """The quality gate of an entry's arms: "failed: <arm: why>", "exempt: <why>" (``no_gate``: timing,
    analytic or oracle checks with no trained arm), "passed" (every arm recorded and passed) or "ungated"."""
    if e.get("verdict") == verdict_rule.NOT_TESTABLE or e.get("not_testable"):
        return "failed: " + "; ".join(f"{a}: {w}" for a, w in (e.get("not_testable") or {}).items())
    if e.get("no_gate"):
        return f"exempt: {e['no_gate']}"
    q, arms = e.get("quality") or {}, e.get("arms") or list((e.get("quality") or {}).keys())
    if q and arms and all(a in q and q[a].get("passed") for a in arms):
        return "passed"
    return "ungated"


def _entry_figures(r: NotebookResult, e: Dict[str, Any], results_dir: Path) -> List[str]:
    """Links to the figures an entry names ("a.png, b" -> a.png, b.png) that exist; else the run's key figure."""
    named = [f.strip() for f in str(e.get("figure") or "").replace(";", ",").split(",") if f.strip()]
    out = []
    for f in named:
        for name in (f, f + ".png"):
            for d in (r.dir, r.report_dir):
                if d is not None and (d / name).is_file() and name.endswith(".png"):
                    link = (d / name).relative_to(results_dir).as_posix()
                    if link not in out:
                        out.append(link)
    return out or ([_rel(r, r.figures[0], results_dir)] if r.figures else [])


LEDGER_COLUMNS = [("id", "id"), ("claim", "claim"), ("paper_number", "paper's number"),
                  ("ours", "ours (mean ± sd, n)"),
                  ("metric", "metric"), ("dataset", "dataset / resolution"), ("profile", "profile (scale)"),
                  ("verdict", "verdict"), ("gate", "quality gate"), ("figure", "figure"), ("notebook", "notebook"),
                  ("detail", "detail")]

# How a claim's rows combine into its one verdict (printed in claims.md and on the index).
CLAIM_RULE = (
    "A claim is counted once. Its *decisive* rows are its measured rows at the main setting (not sensitivity "
    "rows) whose verdict is reproduced, not reproduced or inconclusive and whose arms passed the quality gate "
    "(or need none: timing, analytic and oracle checks). Holm's correction runs over all rows of a claim. "
    "**reproduced**: at least one decisive row and all decisive rows reproduced; **not reproduced**: all "
    "decisive rows not reproduced; **inconclusive**: decisive rows that disagree or any inconclusive one, or no "
    "decisive row but measured rows on ungated arms (an ungated row never decides a claim); **not testable at "
    "this scale**: no decisive or ungated row and at least one row whose arm failed the gate or collapsed; "
    "**proxy**: only proxy rows (and figures); **qualitative**: only figures; **not yet measured**: no row.")
DECIDING = (verdict_rule.REPRODUCED, verdict_rule.NOT_REPRODUCED, verdict_rule.INCONCLUSIVE)
CLAIM_VERDICT_ORDER = (verdict_rule.REPRODUCED, verdict_rule.NOT_REPRODUCED, verdict_rule.INCONCLUSIVE,
                       verdict_rule.NOT_TESTABLE, verdict_rule.PROXY, verdict_rule.QUALITATIVE, NOT_MEASURED)


@dataclass
class ClaimSummary:
    """One paper claim with its overall verdict (``CLAIM_RULE``) and the verdict counts of its rows."""
    id: str
    paper: str
    claim: str
    verdict: str
    why: str
    rows: Dict[str, int]
    figure: Optional[str] = None


def claim_verdict(rows: Sequence[LedgerRow]) -> tuple:
    """(verdict, why) of one claim from its rows, by ``CLAIM_RULE``."""
    measured = [r for r in rows if r.verdict != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED, "no notebook has measured it yet"
    deciding = [r for r in measured if r.verdict in DECIDING and r.setting == "main"]
    decisive = [r for r in deciding if r.gate == "passed" or r.gate.startswith("exempt")]
    if decisive:
        kinds = {r.verdict for r in decisive}
        verdict = kinds.pop() if len(kinds) == 1 else verdict_rule.INCONCLUSIVE
        return verdict, f"{len(decisive)} decisive row(s): " + _count_text(verdict_counts(decisive))
    ungated = [r for r in deciding if r.gate == "ungated"]
    if ungated:
        return verdict_rule.INCONCLUSIVE, (f"no row on gated arms; {len(ungated)} ungated row(s) would read: "
                                           + _count_text(verdict_counts(ungated)))
    for v, why in ((verdict_rule.NOT_TESTABLE, "every testable row has an arm that failed the quality gate"),
                   (verdict_rule.PROXY, "only proxy rows, which cannot decide the claim"),
                   (verdict_rule.QUALITATIVE, "judge from the figure")):
        if any(r.verdict == v for r in measured):
            return v, why
    return verdict_rule.INCONCLUSIVE, "no row with a verdict the rule uses"


def claim_summaries(rows: Sequence[LedgerRow], claims: Sequence[Claim] = CLAIMS) -> List[ClaimSummary]:
    """One summary per claim of the master list, in its order."""
    out = []
    for c in claims:
        sub = [r for r in rows if r.id == c.id]
        verdict, why = claim_verdict(sub)
        fig = next((r.figure for r in sub if r.figure), None)
        out.append(ClaimSummary(c.id, c.paper, c.text, verdict, why,
                                verdict_counts(r for r in sub if r.verdict != NOT_MEASURED), fig))
    return out


def claim_counts(rows: Sequence[LedgerRow]) -> Dict[str, int]:
    """{verdict: number of claims}, each claim counted once (``claim_summaries``), every verdict listed."""
    counts = {v: 0 for v in CLAIM_VERDICT_ORDER}
    for s in claim_summaries(rows):
        counts[s.verdict] = counts.get(s.verdict, 0) + 1
    return counts


def _count_text(counts: Dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "—"


def verdict_counts(rows: Iterable[LedgerRow]) -> Dict[str, int]:
    """{verdict: number of rows} (rows, not claims: see ``claim_counts``)."""
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return counts


def _md_cell(x: Any) -> str:
    return str(x if x is not None else "—").replace("|", "\\|").replace("\n", " ")


def _md_link(rel: Optional[str]) -> str:
    return f"[{rel.rsplit('/', 1)[-1]}]({quote(rel, safe='/')})" if rel else "—"


def _md_row(r: LedgerRow) -> str:
    cells = [_md_link(r.figure) if k == "figure" else _md_cell(getattr(r, k)) for k, _ in LEDGER_COLUMNS]
    return "| " + " | ".join(cells) + " |"


def claims_markdown(rows: Sequence[LedgerRow], generated: str = "", stale: Sequence[str] = ()) -> str:
    """The ledger as Markdown; ``stale``: result folders (notebook/profile) made by older inputs, named on top."""
    summaries = claim_summaries(rows)
    counts = claim_counts(rows)
    header = ["| " + " | ".join(h for _, h in LEDGER_COLUMNS) + " |", "|" + "---|" * len(LEDGER_COLUMNS)]
    lines = ["# Claims ledger", "",
             "Generated by `scripts/build_index.py` from the notebooks' `metrics.json` \"claims\" entries "
             "(master list: `lib/reports/ledger.py`; verdict rule: evaluation.md, `lib/reports/claims.py`). Do not edit by hand." +
             (f" Built {generated}." if generated else ""), "",
             f"**Claims** ({len(summaries)}, each counted once): "
             + " · ".join(f"{k}: {v}" for k, v in counts.items()), "",
             f"Rows beneath (one per measurement): " + ", ".join(f"{k}: {v}" for k, v in
                                                                 sorted(verdict_counts(rows).items())), "",
             f"How a claim's rows combine: {CLAIM_RULE}", "",
             *([f"**Made by older inputs** ({len(stale)} result folders: the notebook, its parameters, `lib/` or "
                "`requirements.txt` changed since they ran, so `./run_all.sh` would re-run them and their numbers "
                "may differ): " + ", ".join(f"`{x}`" for x in stale), ""] if stale else []),
             "## Claims at a glance", "", "| claim | verdict | why | rows | figure |", "|---|---|---|---|---|"]
    lines += [f"| **{s.id}** | {s.verdict} | {_md_cell(s.why)} | {_md_cell(_count_text(s.rows))} | "
              f"{_md_link(s.figure)} |" for s in summaries]
    lines.append("")
    for paper, title in PAPERS.items():
        sub = [r for r in rows if r.paper == paper and r.id in CLAIMS_BY_ID]
        lines += [f"## {title}", "", *header] + [_md_row(r) for r in sub] + [""]
    other = [r for r in rows if r.id not in CLAIMS_BY_ID]
    if other:
        lines += [f"## {OTHER_SECTION}", "", *header] + [_md_row(r) for r in other] + [""]
    return "\n".join(lines)


def index_html(*args, **kwargs) -> str:
    """results/index.html (lib/reports/ledger_index.py)."""
    from lib.reports.ledger_index import index_html as build
    return build(*args, **kwargs)


def headline_rows(*args, **kwargs):
    from lib.reports.ledger_index import headline_rows as rows
    return rows(*args, **kwargs)
