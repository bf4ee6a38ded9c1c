"""Claims ledger entries: the papers' claims, our measurements and a verdict computed by code.

The verdict rule is fixed by ../shared/reference/evaluation.md:
* direction / ordering over n seeds per arm: one-sided Welch t-test (scipy ``ttest_ind(equal_var=False)``);
  "reproduced" when the claimed direction holds for the means and p < 0.05, "not reproduced" when the opposite
  direction holds with p < 0.05, "inconclusive" otherwise — and always when n < 3 (the entry says what the
  seeds showed);
* a number with a tolerance: "reproduced" when our mean lies within the tolerance of the paper's number;
* qualitative claims: a figure and, where one exists, a measured proxy; the verdict says which.

Every notebook puts a list of these dicts under ``"claims"`` in its metrics.json; the ledger is generated from
them, never typed by hand.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, QUALITATIVE = "reproduced", "not reproduced", "inconclusive", "qualitative"
MIN_SEEDS = 3
ALPHA = 0.05


def _summary(values: Sequence[float]) -> Dict[str, Any]:
    v = np.asarray(values, dtype=float)
    return {"values": v.tolist(), "mean": float(v.mean()) if v.size else None,
            "std": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size)}


def _entry(claim_id: str, paper: str, text: str, metric: str, context: dict, **fields) -> Dict[str, Any]:
    keys = ("dataset", "resolution", "profile", "scale", "paper_metric")
    return {"id": claim_id, "paper": paper, "claim": text, "metric": metric,
            **{k: context.get(k) for k in keys}, **fields}


def compare(claim_id: str, paper: str, text: str, metric: str, lower: Dict[str, Sequence[float]],
            higher: Dict[str, Sequence[float]], paper_values: Optional[Dict[str, float]] = None,
            **context) -> Dict[str, Any]:
    """Claim "arm A's metric < arm B's" (``lower`` = {A: per-seed values}, ``higher`` = {B: per-seed values})."""
    from scipy import stats
    (a_name, a), = lower.items()
    (b_name, b), = higher.items()
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean())
    n = int(min(a.size, b.size))
    p_claim = p_opposite = None
    if a.size >= 2 and b.size >= 2 and (a.std() > 0 or b.std() > 0):
        p_claim = float(stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)
        p_opposite = float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    holds = diff < 0
    if n < MIN_SEEDS:
        verdict = INCONCLUSIVE
        detail = (f"n={n} < {MIN_SEEDS} seeds per arm: the seeds showed {a_name} "
                  f"{'below' if holds else 'not below'} {b_name} (mean difference {diff:+.4g})")
    elif holds and p_claim is not None and p_claim < ALPHA:
        verdict, detail = REPRODUCED, f"{a_name} < {b_name}, mean difference {diff:+.4g}, one-sided Welch p={p_claim:.3g}"
    elif not holds and p_opposite is not None and p_opposite < ALPHA:
        verdict, detail = NOT_REPRODUCED, (f"opposite direction: {a_name} > {b_name}, mean difference {diff:+.4g}, "
                                           f"one-sided Welch p={p_opposite:.3g}")
    else:
        verdict, detail = INCONCLUSIVE, f"mean difference {diff:+.4g}, p(claimed direction)={p_claim}"
    return _entry(claim_id, paper, text, metric, context, kind="direction", paper_value=paper_values,
                  ours={a_name: _summary(a), b_name: _summary(b)}, mean_difference=diff, p_value=p_claim, n=n,
                  verdict=verdict, detail=detail)


def within_tolerance(claim_id: str, paper: str, text: str, metric: str, values: Sequence[float], paper_value: float,
                     tolerance: float, **context) -> Dict[str, Any]:
    """Claim "the value is about ``paper_value``" (absolute ``tolerance``, stated in the ledger row)."""
    s = _summary(values)
    ok = abs(s["mean"] - paper_value) <= tolerance
    return _entry(claim_id, paper, text, metric, context, kind="tolerance", paper_value=paper_value,
                  tolerance=tolerance, ours=s, n=s["n"], verdict=REPRODUCED if ok else NOT_REPRODUCED,
                  detail=f"ours {s['mean']:.4g} vs paper {paper_value:.4g} ± {tolerance:g}")


def qualitative(claim_id: str, paper: str, text: str, figure: str, proxy: Optional[Dict[str, Any]] = None,
                proxy_verdict: Optional[str] = None, **context) -> Dict[str, Any]:
    """A qualitative claim: the figure that shows it, and a measured proxy with its own verdict when there is one."""
    verdict = proxy_verdict or QUALITATIVE
    return _entry(claim_id, paper, text, (proxy or {}).get("metric", "figure"), context, kind="qualitative",
                  figure=figure, ours=proxy, n=(proxy or {}).get("n"), verdict=verdict,
                  detail=("verdict from the measured proxy; see the figure" if proxy_verdict
                          else "qualitative: judge from the figure"))
