"""The reader-facing outputs: the claims ledger (results/claims.md) and the index page (results/index.html).

Both are *generated* from what the notebooks wrote, never typed by hand:
  results/<nb>/<profile>/run.json       status, error, duration (scripts/run_notebooks.py)
  results/<nb>/<profile>/metrics.json   provenance + optional "headline", "key_figure" and "claims"
  results/<nb>/<profile>/report.html    the rendered report;  *.png figures;  table.md / table.csv

Claim ids
---------
``CLAIMS`` below is the master list of every claim of both papers, transcribed from the specs:
``"EPD-<n>"`` is claim n of ../shared/reference/epd_spec.md §7 (EPD-1 .. EPD-22) and ``"COLD-<n>"`` is claim
C<n> of ../shared/reference/cold_spec.md §8 (COLD-1 .. COLD-16).  A notebook tests a claim by putting an entry
built with lib/claims.py (``compare`` / ``within_tolerance`` / ``qualitative``) whose ``"id"`` is that string
into the ``"claims"`` list of its metrics.json.  ``canonical_id`` also maps onto the master list: suffixed ids
(``"EPD-9-recall"``), the Cold spec's own ``"C<n>"`` with any suffix (``"C4-blur-FD"``), and a bare number or
sub-claim (``"15"``, ``"5a"``) when the entry's ``"paper"`` names the paper ("epd" / "edge-..." / "cold ...");
the entry's own id is then shown in the row's detail.  Several entries with one id (one per dataset or
sub-claim) give one ledger row each; a claim no notebook has measured yet gets one row with verdict
"not yet measured" and the notebook expected to measure it (found by the id in a notebook's source or in a lib
function the notebook calls; else the planned name in CLAIMS).

Optional metrics.json keys read by the index:
  "key_figure": "samples.png"            the figure shown on the index (default: the first PNG written that is
                                         not a loss curve)
  "headline": {"FD_mnistclf (EPD)": 12.3, ...}   a few numbers shown on the index (default: table.md's first rows)

Only the largest-scale profile of a notebook that has claims enters the ledger (paper > gpu > quick > smoke),
so a smoke run never sits beside a quick run of the same notebook; the index lists every profile.  Variant
folders ``<profile>_<tag>`` (e.g. ``quick_afhq_cat``, a second dataset written by the same run) count as their
profile, each variant separately, and link to their profile's report.

Browser check: ``find_chromium``, ``render_dom``, ``screenshot`` and ``local_links`` (used by
scripts/build_index.py and tests/test_reports.py) open the pages the way a reader does, from file://.
"""
from __future__ import annotations

import csv
import html
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence
from urllib.parse import quote, unquote, urlsplit

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


@dataclass(frozen=True)
class Claim:
    id: str            # "EPD-<n>" / "COLD-<n>"
    text: str          # the claim as the spec states it
    paper_number: str  # the paper's number(s) with their metric and source ("" when the paper gives none)
    notebook: str      # the notebook planned to measure it

    @property
    def paper(self) -> str:
        return self.id.split("-")[0]


def _c(cid, text, number, notebook):
    return Claim(cid, text, number, notebook)


# Transcribed from epd_spec.md §7 (numbers: FID_inception, 128², Tables 1-6 / figures as cited in the claim).
_EPD = [
    ("EPD FID < DDPM FID on CelebA, LSUN-Church and AFHQ-Cat at 128², unconditional (Table 1).",
     "FID 26.15 vs 28.17 (CelebA), 23.17 vs 31.00 (Church), 13.06 vs 17.60 (AFHQ-Cat)", "epd_table1_unconditional"),
    ("EPD FID < BNDM FID on all three datasets of Table 1.",
     "FID 26.15 vs 26.35, 23.17 vs 29.86, 13.06 vs 14.54", "epd_table1_unconditional"),
    ("EPD FID is far below IHDM on all three datasets (Table 1).", "Table 1 (IHDM FIDs)", "epd_table1_unconditional"),
    ("The largest unconditional gain over DDPM is about 25 % (Church and Cat), and about 7 % on CelebA (Table 1).",
     "≈25 % (Church, Cat), ≈7 % (CelebA) relative FID gain", "epd_table1_unconditional"),
    ("SDEdit stroke-to-image FID ordering is EPD < DDPM < BNDM on all three datasets at hijack 0.55T (Fig. 4 table).",
     "FID ordering EPD < DDPM < BNDM (Fig. 4 table)", "epd_sdedit_strokes"),
    ("EPD's SDEdit FID gain over DDPM is about 15–23 %.",
     "FID 39.08 vs 45.80, 56.14 vs 72.54, 23.50 vs 27.61", "epd_sdedit_strokes"),
    ("On SDEdit precision, EPD ≥ DDPM on all three datasets (Table 4).", "precision, Table 4", "epd_sdedit_strokes"),
    ("On SDEdit recall, EPD > DDPM on AFHQ-Cat and < DDPM on CelebA and Church (Table 4).",
     "recall 0.80 vs 0.66 (Cat), 0.46 vs 0.53 (CelebA), 0.46 vs 0.50 (Church)", "epd_sdedit_strokes"),
    ("Unconditional precision/recall of EPD is within 0.02 of DDPM on AFHQ-Cat and CelebA; on Church, precision is "
     "higher and recall lower (Table 5).", "Church precision 0.65 vs 0.47, recall 0.33 vs 0.38; others ±0.02",
     "epd_table1_unconditional"),
    ("SDEdit CLIP score: EPD > DDPM on all three datasets (Table 6).", "CLIP margins 0.19, 0.13, 1.75",
     "epd_sdedit_strokes"),
    ("Latent space: EPD FID > DDPM and > BNDM on CelebA 256² (Table 2).", "FID 13.89 vs 7.87 (DDPM), 10.93 (BNDM)",
     "epd_table2_latent"),
    ("Latent space: EPD FID < DDPM but > BNDM on AFHQ-Cat 512² (Table 2).",
     "FID 18.91 vs 22.86 (DDPM), 13.62 (BNDM)", "epd_table2_latent"),
    ("EPD training overhead vs DDPM is about 1 % per iteration (Table 3).", "1.12 vs 1.11 s/it", "epd_table3_cost"),
    ("EPD inference is about 9 % slower than DDPM with equal memory (Table 3).",
     "301.5 vs 277.5 per batch of 64; 9.16 GB both", "epd_table3_cost"),
    ("In the first 10k iterations, EPD reaches lower FID than DDPM on low-to-mid-frequency (blurred) AFHQ-Cat "
     "variants (App. B).", "App. B curves (FID)", "epd_frequency_bands"),
    ("EPD's x̂0 predictions show fine structure earlier in the reverse process than DDPM's (Fig. 2; qualitative).",
     "qualitative (Fig. 2)", "epd_forward_process"),
    ("Linear τ beats cosine and sigmoid τ in FID; cosine ≈ sigmoid (Sec. 5.1).", "Sec. 5.1 (FID)",
     "epd_ablation_transition_fn"),
    ("t_Φ = 0.5 beats 0.25 and 0.75 in FID (Fig. 7).", "LSUN-Church FID 35.71 vs 39.31 and 86.41",
     "epd_ablation_transition_point"),
    ("Time-varying linear λ(t) beats every constant λ; low constant λ gives flat samples and high λ ≈ DDPM "
     "(Sec. 5.1).", "Sec. 5.1 (FID; qualitative)", "epd_ablation_lambda"),
    ("Linear λ(t) beats sigmoid λ(t) (Sec. 4.2).", "no numbers in the paper", "epd_ablation_lambda"),
    ("On Human-Sketch, EPD samples look better than the baselines while FID is unreliable there (App. F; "
     "qualitative).", "qualitative (App. F)", "epd_sketches"),
    ("With τ ≡ 1, EPD reduces exactly to an isotropic DDPM process (Sec. 4.1; analytic, see U1).",
     "analytic (exact)", "tests/test_edge_preserving.py (U1)"),
]

# Transcribed from cold_spec.md §8; numbers from cold_spec.md §6.2 (arXiv v1 via a third-party card, unverified).
_COLD = [
    ("Algorithm 2 restores better than Algorithm 1 for blur: Algorithm 1 gives blurry or smooth outputs with a worse "
     "FID.", "qualitative; no FID found", "cold_algorithm1_vs_2"),
    ("With an exact restoration operator, both algorithms recover x0 exactly.", "analytic (exact)",
     "cold_algorithm1_vs_2"),
    ("For any D of the form x + s·e, Algorithm 2 returns D(x0, s−1) at each step whatever R is.", "analytic (exact)",
     "cold_algorithm1_vs_2"),
    ("For every degradation and dataset in Tables 1–4, FID(Sampled) < FID(Degraded), and SSIM and RMSE improve over "
     "Degraded.", "Degraded columns not found", "cold_restoration"),
    ("Deblurring: iterative sampling gives a lower FID than direct one-shot reconstruction on MNIST, CIFAR-10 and "
     "CelebA.", "FID sampled vs direct 4.69 vs 5.10 (MNIST), 80.08 vs 83.69 (CIFAR-10), 26.14 vs 36.37 (CelebA)",
     "cold_restoration"),
    ("Direct reconstruction has equal or better RMSE and SSIM than sampling (perception–distortion trade-off).",
     "SSIM/RMSE not found", "cold_restoration"),
    ("The sampling process restores high frequencies removed by the degradation; direct predictions are smoother.",
     "qualitative", "cold_restoration"),
    ("Inpainting restores plausibly with random mask locations on MNIST/CIFAR-10 and centred masks on CelebA "
     "(Table 2).", "FID sampled 1.61 / 8.92 / 5.73 (direct 2.24 / 9.97 / 7.74)", "cold_restoration"),
    ("Super-resolution from 4×4 (MNIST, CIFAR-10) and from the final CelebA resolution gives plausible images, even "
     "though direct and sampled FIDs stay high on CIFAR-10 (Table 3).", "Table 3 not found", "cold_restoration"),
    ("Snow removal works although snow has no scale-space or compositional structure; light snow on CIFAR-10 is "
     "reconstructed almost perfectly.", "Table 4 not found", "cold_restoration"),
    ("Desaturation can be inverted (colourisation) with T = 20.", "SSIM 0.942 (CIFAR-10, unverified leaderboard)",
     "cold_restoration"),
    ("Blur generation: a GMM on channel means, followed by Algorithm 2, generates recognisable CelebA faces and AFHQ "
     "animals with no noise during training.", "FID 49.45 (CelebA 128), 54.68 (AFHQ 128)", "cold_generation_blur"),
    ("Perfect symmetry (no added noise) gives low-quality samples with low diversity; adding N(0, 0.002²) per pixel "
     "improves FID (Table 5).", "broken symmetry FID 49.45 / 54.68; perfect-symmetry row not found",
     "cold_generation_blur"),
    ("The deterministic-noise generator works with both fixed and estimated noise; estimated noise (≡ DDIM) gives "
     "the better FID.", "estimated noise FID 23.11 (CelebA), 20.59 (AFHQ); fixed-noise row not found",
     "cold_generation_noise"),
    ("Animorphosis, inpainting-to-constant and super-resolution-to-2×2 degradations also yield unconditional "
     "generators on CelebA.", "qualitative", "cold_generation_other"),
    ("Generated samples are not copies of training images (the paper shows nearest neighbours).",
     "qualitative (nearest neighbours)", "cold_generation_blur"),
]

CLAIMS: tuple = tuple([_c(f"EPD-{i}", *row) for i, row in enumerate(_EPD, 1)]
                      + [_c(f"COLD-{i}", *row) for i, row in enumerate(_COLD, 1)])
CLAIMS_BY_ID: Dict[str, Claim] = {c.id: c for c in CLAIMS}


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
    root = Path(__file__).resolve().parents[1]
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
            if mod.name in ("ledger.py", "claims.py", "__init__.py"):
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
        if _is_number(x.get("mean")):  # a lib/claims.py summary {values, mean, std, n}
            return (_num(x["mean"]) + (f" ± {_num(x['std'])}" if _is_number(x.get("std")) else "")
                    + (f" (n={x['n']})" if x.get("n") is not None else ""))
        vals = x.get("values")
        if isinstance(vals, (list, tuple)) and vals and all(_is_number(v) for v in vals):
            return _mean_sd([float(v) for v in vals])
        parts = [f"{k}: {_format(v)}" for k, v in x.items() if k not in ("metric", "n")]
        return "; ".join(parts) + (f" (n={x['n']})" if x.get("n") is not None else "")
    return str(x)


def format_ours(ours: Any, limit: int = 400) -> str:
    """Our measurement as "mean ± sd (n=…)": a lib/claims.py summary, arms {name: summary}, a proxy dict, a number
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
    figure: Optional[str] = None     # relative link to the claim's figure, when one is named


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
            row.detail = f"id {cid!r} is not in the master list (lib/ledger.py). " + row.detail
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
    fig = e.get("figure")
    if c is not None and str(e.get("id")) != c.id:
        detail = f"[entry {e.get('id')}] " + detail
    return LedgerRow(
        id=c.id if c else str(e.get("id")), paper=c.paper if c else str(e.get("paper") or "?"),
        claim=_claim_text(c, e), paper_number=_paper_number(e, c),
        ours=format_ours(e.get("ours")), metric=str(e.get("metric") or "—"), dataset=_dataset(e, r),
        profile=f"{profile} ({scale})" if scale else str(profile), verdict=str(e.get("verdict") or "—"),
        notebook=r.notebook, detail=detail,
        report=_report_rel(r, results_dir),
        figure=_rel(r, fig, results_dir) if fig and (r.dir / fig).is_file() else None)


LEDGER_COLUMNS = [("id", "id"), ("claim", "claim"), ("paper_number", "paper's number"),
                  ("ours", "ours (mean ± sd, n)"),
                  ("metric", "metric"), ("dataset", "dataset / resolution"), ("profile", "profile (scale)"),
                  ("verdict", "verdict"), ("notebook", "notebook"), ("detail", "detail")]


def verdict_counts(rows: Iterable[LedgerRow]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return counts


def _md_cell(x: str) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def claims_markdown(rows: Sequence[LedgerRow], generated: str = "") -> str:
    lines = ["# Claims ledger", "",
             "Generated by `scripts/build_index.py` from the notebooks' `metrics.json` \"claims\" entries "
             "(master list: `lib/ledger.py`; verdict rule: evaluation.md). Do not edit by hand." +
             (f" Built {generated}." if generated else ""), "",
             "Verdicts: " + ", ".join(f"{k}: {v}" for k, v in sorted(verdict_counts(rows).items())), ""]
    for paper, title in PAPERS.items():
        sub = [r for r in rows if r.paper == paper and r.id in CLAIMS_BY_ID]
        lines += [f"## {title}", "", "| " + " | ".join(h for _, h in LEDGER_COLUMNS) + " |",
                  "|" + "---|" * len(LEDGER_COLUMNS)]
        lines += ["| " + " | ".join(_md_cell(getattr(r, k)) for k, _ in LEDGER_COLUMNS) + " |" for r in sub]
        lines.append("")
    other = [r for r in rows if r.id not in CLAIMS_BY_ID]
    if other:
        lines += [f"## {OTHER_SECTION}", "", "| " + " | ".join(h for _, h in LEDGER_COLUMNS) + " |",
                  "|" + "---|" * len(LEDGER_COLUMNS)]
        lines += ["| " + " | ".join(_md_cell(getattr(r, k)) for k, _ in LEDGER_COLUMNS) + " |" for r in other]
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# The index page

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
                    cell = _badge(v) + (f' <a href="{_href(r.figure)}">figure</a>' if r.figure else "")
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
    summary = " ".join(f"{_badge(k)} {v}" for k, v in sorted(counts.items()))
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
<p class="meta">One row per claim of each paper and per measurement; verdict rule of evaluation.md.
Only the largest-scale profile of each notebook is used.</p>
<p>{summary}</p>
{_ledger_html(rows)}
</body></html>
"""


# ----------------------------------------------------------------------------------------------------------------
# Browser check: open the pages the way a reader does


CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> Optional[str]:
    """The headless browser binary: $CHROMIUM if set, else the first of CHROMIUM_CANDIDATES on PATH."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    return None


def _chromium(args: List[str], page: Path, timeout: int = 60) -> subprocess.CompletedProcess:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary found (install the chromium package or set $CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
               Path(page).resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def render_dom(page, timeout: int = 60) -> str:
    """The page's DOM after the browser loaded and ran it (``--dump-dom``)."""
    proc = _chromium(["--dump-dom", "--virtual-time-budget=5000"], Path(page), timeout)
    if proc.returncode != 0 or "<html" not in proc.stdout.lower():
        raise RuntimeError(f"chromium could not render {page}: rc={proc.returncode}\n{proc.stderr[-2000:]}")
    return proc.stdout


def screenshot(page, png, width: int = 1200, height: int = 900, timeout: int = 60) -> Path:
    """A PNG of the page as the browser shows it (window ``width`` × ``height``)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    proc = _chromium([f"--screenshot={png}", f"--window-size={width},{height}", "--virtual-time-budget=5000"],
                     Path(page), timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot of {page}: rc={proc.returncode}\n{proc.stderr[-2000:]}")
    return png


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: List[tuple] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append((tag, name, value))


def page_links(html_text: str) -> List[tuple]:
    """(tag, attribute, url) of every href/src in the page."""
    p = _Links()
    p.feed(html_text)
    return p.links


def local_links(page) -> Dict[str, List[str]]:
    """Classify a page's links: {"ok": [...], "missing": [...], "external": [...]}; local ones resolved as files."""
    page = Path(page)
    out: Dict[str, List[str]] = {"ok": [], "missing": [], "external": []}
    for _, _, url in page_links(page.read_text(errors="replace")):
        parts = urlsplit(url)
        if parts.scheme in ("data", "javascript", "mailto") or url.startswith("#"):
            continue
        if parts.scheme or parts.netloc or url.startswith("//"):
            out["external"].append(url)
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        out["ok" if target.exists() else "missing"].append(url)
    return out
