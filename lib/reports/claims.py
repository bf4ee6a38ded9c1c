"""Claims ledger entries: the papers' claims, our measurements and a verdict computed by code.

The verdict rule is fixed by ../shared/reference/evaluation.md ("Verdict rule for the claims ledger"):

* **not testable at this scale** — any arm of the comparison failed the quality gate or its samples collapsed
  (``quality={arm: {"passed": bool, "precision", "recall", "fd", "floor", "reasons": [...]}}``, built by
  lib/metrics/quality.py); the entry names the arm and why, and no other verdict is given.
* **proxy** — the measured stand-in cannot fail or does not measure the claim (``proxy="why"``); never counted
  as reproduced.
* direction ("A's metric < B's") over n replicates per arm: a one-sided **paired** t-test on per-seed
  differences when the arms share their seeds (``seeds={arm: [...]}`` with equal seed sets, or ``paired=True``
  for values already aligned), else one-sided Welch.  **reproduced**: claimed direction, p < 0.05 (after Holm
  within the claim's family, ``holm``) and effect ≥ the claim's minimum effect; **not reproduced**: the opposite
  direction by the same standard; **inconclusive**: anything else, and always when n < 3.  The minimum effect is
  ``max(min_effect, min_effect_rel · |mean(B) − floor|)`` in the metric's units (default 5 % of the
  floor-corrected value of the reference arm B) and is stated in the entry.
* replicates are training seeds; ``replicates="sampling seeds"`` or ``"eval subsets"`` (several samples of one
  model) caps the verdict at inconclusive and the entry says so.  ``"independent draws"``: experiments that train
  no network (oracle or analytic checks), where each seed redraws all of the experiment's randomness; not capped.
* a number with a tolerance: n ≥ 3 and the 95 % t confidence interval of our mean inside paper ± tolerance for
  reproduced, entirely outside it for not reproduced, else inconclusive.  Timing claims (``timing=True``)
  also need ≥ 5 repetitions interleaved in one run (``interleaved=True``).
* qualitative claims: a figure and, where one exists, a measured proxy; the verdict says which.

Every entry keeps the raw one-sided p (``p_value``) so a family can be re-corrected (``holm``); after Holm the
entry also holds ``p_holm`` and ``holm_m``.  Every notebook puts a list of these dicts under ``"claims"`` in its
metrics.json; the ledger is generated from them, never typed by hand.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, QUALITATIVE = "reproduced", "not reproduced", "inconclusive", "qualitative"
NOT_TESTABLE, PROXY = "not testable at this scale", "proxy"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE, PROXY, QUALITATIVE)
MIN_SEEDS = 3
MIN_TIMING_REPS = 5
ALPHA = 0.05
MIN_EFFECT_REL = 0.05           # default minimum effect: 5 % of the reference arm's floor-corrected value
TRAINING_SEEDS, SAMPLING_SEEDS, EVAL_SUBSETS = "training seeds", "sampling seeds", "eval subsets"
INDEPENDENT_DRAWS = "independent draws"  # no trained network (oracle / analytic): each seed is a full replicate
TIMING_ROUNDS = "interleaved timing rounds"  # timing claims: step time does not depend on trained weights
REPLICATES = (TRAINING_SEEDS, SAMPLING_SEEDS, EVAL_SUBSETS, INDEPENDENT_DRAWS, TIMING_ROUNDS)
UNCAPPED = (TRAINING_SEEDS, INDEPENDENT_DRAWS, TIMING_ROUNDS)  # replicate kinds that may reach reproduced / not reproduced
Quality = Optional[Dict[str, dict]]


def _summary(values: Sequence[float]) -> Dict[str, Any]:
    v = np.asarray(values, dtype=float)
    return {"values": v.tolist(), "mean": float(v.mean()) if v.size else None,
            "std": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size)}


def _entry(claim_id: str, paper: str, text: str, metric: str, context: dict, **fields) -> Dict[str, Any]:
    """The common fields; ``context`` may also carry ``no_gate`` (why no arm needs the quality gate: timing,
    analytic or oracle checks), ``setting`` ("main" | "sensitivity": only main rows decide the claim in the
    ledger) and ``figure`` (the PNG the row rests on)."""
    keys = ("dataset", "resolution", "profile", "scale", "paper_metric")
    extra = {k: context[k] for k in ("no_gate", "setting", "figure") if context.get(k) is not None}
    return {"id": claim_id, "paper": paper, "claim": text, "metric": metric,
            **{k: context.get(k) for k in keys}, **extra, **fields}


def gate_failures(quality: Quality, arms: Sequence[str]) -> Dict[str, str]:
    """{arm: why} for each of ``arms`` that failed the quality gate or whose samples collapsed."""
    out = {}
    for arm in arms:
        q = (quality or {}).get(arm)
        if q is None or (q.get("passed", True) and not q.get("collapsed")):
            continue
        stats = ", ".join(f"{k} {q[k]:.3g}" for k in ("precision", "recall", "fd", "floor")
                          if isinstance(q.get(k), (int, float)))
        reasons = "; ".join(str(r) for r in q.get("reasons") or []) or "failed the quality gate"
        out[arm] = reasons + (f" ({stats})" if stats else "")
    return out


def _gated(entry: Dict[str, Any], quality: Quality, arms: Sequence[str]) -> Dict[str, Any]:
    """Record the arms' gate results; a failed arm makes the entry "not testable at this scale"."""
    if quality:
        entry["quality"] = {a: quality[a] for a in arms if a in quality}
    failed = gate_failures(quality, arms)
    if failed:
        entry["would_be"] = entry["verdict"]
        entry["verdict"] = NOT_TESTABLE
        entry["not_testable"] = failed
        entry["detail"] = ("not testable at this scale: " + "; ".join(f"arm {a}: {w}" for a, w in failed.items())
                           + f". [measured: {entry['detail']}]")
    return entry


def replicate_kind(value: Optional[str]) -> str:
    """The replicate kind (one of ``REPLICATES``) of a stored entry's ``replicates`` field; entries written before
    the field held a kind carry a sentence there ("replicates: sampling seeds of ONE trained model", ...), mapped
    to its kind.  Missing: training seeds."""
    if value is None or value in REPLICATES:
        return value or TRAINING_SEEDS
    text = str(value).lower()
    if "subset" in text:
        return EVAL_SUBSETS
    if "sampling seed" in text or "draws) of one" in text:
        return SAMPLING_SEEDS
    if "oracle" in text or "independent" in text:
        return INDEPENDENT_DRAWS
    if "training seed" in text and "not training seed" not in text:
        return TRAINING_SEEDS
    raise ValueError(f"replicates must be one of {REPLICATES}, got {value!r}")


def _capped(entry: Dict[str, Any], replicates: str, proxy: Optional[str]) -> Dict[str, Any]:
    """Proxy rows and rows whose replicates are several samples of one model (not training seeds or independent
    draws of a network-free experiment) never reach reproduced / not reproduced."""
    if replicates not in REPLICATES:
        raise ValueError(f"replicates must be one of {REPLICATES}, got {replicates!r}")
    entry["replicates"] = replicates
    if proxy:
        entry.update(would_be=entry["verdict"], verdict=PROXY, proxy=proxy,
                     detail=f"proxy ({proxy}); the measurement alone would read {entry['verdict']}: {entry['detail']}")
    elif replicates not in UNCAPPED and entry["verdict"] in (REPRODUCED, NOT_REPRODUCED):
        entry.update(would_be=entry["verdict"], verdict=INCONCLUSIVE,
                     detail=(f"{entry['detail']}; capped at inconclusive: the n values are {replicates} of one "
                             f"model, not training-seed replicates"))
    return entry


def _pairing(a: np.ndarray, b: np.ndarray, names: Sequence[str], paired: Optional[bool],
             seeds: Optional[Dict[str, Sequence[int]]]):
    """(a, b, paired?) with a and b aligned by seed when the arms share their seeds."""
    if seeds is not None:
        sa, sb = [list(seeds.get(n, [])) for n in names]
        if len(sa) == a.size and len(sb) == b.size and sorted(sa) == sorted(sb) and len(set(sa)) == len(sa):
            order = [sb.index(s) for s in sa]
            return a, b[order], paired is not False
        if paired:
            raise ValueError(f"paired=True but the arms' seeds differ: {sa} vs {sb}")
        return a, b, False
    if paired and a.size != b.size:
        raise ValueError(f"paired=True needs equal n per arm, got {a.size} and {b.size}")
    return a, b, bool(paired)


def _p_values(a: np.ndarray, b: np.ndarray, paired: bool):
    """One-sided p of "a < b" and of "a > b" (None when untestable: n < 2 or no variance)."""
    from scipy import stats
    if a.size < 2 or b.size < 2:
        return None, None
    if paired:
        d = a - b
        if d.std() == 0:
            return None, None
        return (float(stats.ttest_rel(a, b, alternative="less").pvalue),
                float(stats.ttest_rel(a, b, alternative="greater").pvalue))
    if a.std() == 0 and b.std() == 0:
        return None, None
    return (float(stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue),
            float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue))


def _decide(e: Dict[str, Any], p_claim: Optional[float], p_opposite: Optional[float], label: str) -> None:
    """Set verdict and detail of a direction entry from its stored statistics and (corrected) p-values."""
    a_name, b_name = e["arms"]
    diff, n, effect, need = e["mean_difference"], e["n"], e["effect"], e["min_effect"]
    holds = diff < 0
    test = e["test"]
    if n < MIN_SEEDS:
        e["verdict"] = INCONCLUSIVE
        e["detail"] = (f"n={n} < {MIN_SEEDS} seeds per arm: the seeds showed {a_name} "
                       f"{'below' if holds else 'not below'} {b_name} (mean difference {diff:+.4g})")
    elif holds and p_claim is not None and p_claim < ALPHA and effect >= need:
        e["verdict"] = REPRODUCED
        e["detail"] = (f"{a_name} < {b_name}, mean difference {diff:+.4g} (minimum effect {need:.3g}), "
                       f"one-sided {test} {label}={p_claim:.3g}")
    elif not holds and p_opposite is not None and p_opposite < ALPHA and diff >= need:
        e["verdict"] = NOT_REPRODUCED
        e["detail"] = (f"opposite direction: {a_name} > {b_name}, mean difference {diff:+.4g} (minimum effect "
                       f"{need:.3g}), one-sided {test} {label}={p_opposite:.3g}")
    else:
        p = p_claim if holds else p_opposite
        e["verdict"] = INCONCLUSIVE
        e["detail"] = (f"mean difference {diff:+.4g} (minimum effect {need:.3g}), one-sided {test} "
                       f"{label}(observed direction)=" + (f"{p:.3g}" if p is not None else "n/a"))


def compare(claim_id: str, paper: str, text: str, metric: str, lower: Dict[str, Sequence[float]],
            higher: Dict[str, Sequence[float]], paper_values: Optional[Dict[str, float]] = None,
            paired: Optional[bool] = None, seeds: Optional[Dict[str, Sequence[int]]] = None,
            min_effect: float = 0.0, min_effect_rel: float = MIN_EFFECT_REL, floor: Optional[float] = None,
            quality: Quality = None, replicates: str = TRAINING_SEEDS, proxy: Optional[str] = None,
            family: Optional[str] = None, **context) -> Dict[str, Any]:
    """Claim "arm A's metric < arm B's" (``lower`` = {A: per-seed values}, ``higher`` = {B: per-seed values}).

    ``seeds`` = {A: [...], B: [...]}: the arms are paired by seed when they share their seeds; ``paired=True``
    pairs values by position, ``False`` forces Welch.  ``floor``: the metric's real-vs-real floor (e.g. FD of
    held-out real images), from which the minimum effect is measured; ``family``: the Holm family (default: the
    claim id's master claim, see ``holm``)."""
    (a_name, a), = lower.items()
    (b_name, b), = higher.items()
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b, is_paired = _pairing(a, b, (a_name, b_name), paired, seeds)
    diff = float(a.mean() - b.mean())
    n = int(min(a.size, b.size))
    p_claim, p_opposite = _p_values(a, b, is_paired)
    scale = abs(float(b.mean()) - (floor or 0.0))
    need = float(max(min_effect, min_effect_rel * scale))
    e = _entry(claim_id, paper, text, metric, context, kind="direction", paper_value=paper_values,
               ours={a_name: _summary(a), b_name: _summary(b)}, arms=[a_name, b_name], mean_difference=diff,
               effect=-diff, min_effect=need,
               min_effect_rule=(f"max({min_effect:g}, {min_effect_rel:g} x |mean({b_name}) - floor {floor or 0:g}|)"),
               test="paired t" if is_paired else "Welch t", p_value=p_claim, p_opposite=p_opposite, n=n,
               family=family, verdict=INCONCLUSIVE, detail="")
    if seeds is not None:
        e["seeds"] = {k: list(v) for k, v in seeds.items() if k in (a_name, b_name)}
    _decide(e, p_claim, p_opposite, "p")
    return _gated(_capped(e, replicates, proxy), quality, [a_name, b_name])


def holm(entries: Sequence[Dict[str, Any]], alpha: float = ALPHA) -> List[Dict[str, Any]]:
    """Holm-correct one family of direction entries: new entries whose verdicts use the adjusted p.

    Each tested entry's p is its raw one-sided p in the observed direction; m = the number of tested entries
    (those with a p).  The raw p stays in ``p_value`` / ``p_opposite``; ``p_holm`` and ``holm_m`` are added.
    Gate, proxy and replicate caps are applied again on top.  Entries of other kinds pass through unchanged."""
    out = [dict(e) for e in entries]
    tested = [i for i, e in enumerate(out) if e.get("kind") == "direction" and "arms" in e
              and (e["p_value"] if e["mean_difference"] < 0 else e.get("p_opposite")) is not None]
    m = len(tested)
    raw = [out[i]["p_value"] if out[i]["mean_difference"] < 0 else out[i]["p_opposite"] for i in tested]
    adjusted, running = {}, 0.0
    for rank, j in enumerate(np.argsort(raw, kind="stable")):
        running = max(running, min(1.0, (m - rank) * raw[j]))
        adjusted[tested[j]] = running
    for i, e in enumerate(out):
        if i not in adjusted:
            continue
        p = adjusted[i]
        e.update(p_holm=p, holm_m=m)
        holds = e["mean_difference"] < 0
        _decide(e, p if holds else None, None if holds else p, f"Holm p (m={m})")
        gate = e.pop("quality", None)
        for k in ("would_be", "not_testable"):
            e.pop(k, None)
        proxy = e.pop("proxy", None)
        rep = e.get("replicates")
        if rep is not None and rep not in REPLICATES:  # an older entry: the sentence becomes the note
            e.setdefault("replicates_note", rep)
        _capped(e, replicate_kind(rep), proxy)
        _gated(e, gate, e["arms"])
    return out


def correct_families(entries: Sequence[Dict[str, Any]], key=None) -> List[Dict[str, Any]]:
    """``holm`` within each family (``entry["family"]``, else ``key(entry)``, else the entry id up to its
    second dash, e.g. "EPD-18-2" -> "EPD-18"); order kept."""
    def fam(e):
        if e.get("family"):
            return e["family"]
        if key is not None:
            return key(e)
        return "-".join(str(e.get("id")).split("-")[:2])
    out = [dict(e) for e in entries]
    groups: Dict[Any, List[int]] = {}
    for i, e in enumerate(out):
        groups.setdefault(fam(e), []).append(i)
    for idx in groups.values():
        for i, e in zip(idx, holm([out[i] for i in idx])):
            out[i] = e
    return out


def t_half_width(sd: float, n: int, level: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of a mean of ``n`` values with sample sd ``sd``."""
    from scipy import stats
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n))


def _ci95(v: np.ndarray):
    half = t_half_width(float(v.std(ddof=1)), v.size)
    return float(v.mean()) - half, float(v.mean()) + half


def within_tolerance(claim_id: str, paper: str, text: str, metric: str, values: Sequence[float], paper_value: float,
                     tolerance: float, quality: Quality = None, arms: Sequence[str] = (),
                     replicates: str = TRAINING_SEEDS, timing: bool = False, interleaved: bool = False,
                     proxy: Optional[str] = None, **context) -> Dict[str, Any]:
    """Claim "the value is about ``paper_value``" (absolute ``tolerance``, stated in the ledger row).

    Reproduced when n ≥ 3 and the 95 % CI of our mean lies inside paper ± tolerance; not reproduced when the CI
    lies entirely outside it; else inconclusive.  ``timing=True``: also ≥ 5 repetitions interleaved in one run
    (``interleaved=True``).  ``arms``: the arms the value is computed from, checked against ``quality``."""
    v = np.asarray(values, float)
    s = _summary(v)
    lo_t, hi_t = paper_value - tolerance, paper_value + tolerance
    need = MIN_TIMING_REPS if timing else MIN_SEEDS
    ci = _ci95(v) if v.size >= 2 else None
    e = _entry(claim_id, paper, text, metric, context, kind="timing" if timing else "tolerance",
               paper_value=paper_value, tolerance=tolerance, ours=s, n=s["n"], ci95=list(ci) if ci else None,
               verdict=INCONCLUSIVE, detail="")
    where = f"ours {s['mean']:.4g}" + (f" (95 % CI {ci[0]:.4g}..{ci[1]:.4g})" if ci else "") + \
        f" vs paper {paper_value:.4g} ± {tolerance:g}"
    if s["n"] < need or (timing and not interleaved):
        why = (f"n={s['n']} < {need}" if s["n"] < need else "repetitions not interleaved in one run")
        e["detail"] = f"{why} ({'timing claims need ≥ 5 interleaved repetitions' if timing else 'need n ≥ 3'}): {where}"
    elif lo_t <= ci[0] and ci[1] <= hi_t:
        e["verdict"], e["detail"] = REPRODUCED, f"CI inside the tolerance: {where}"
    elif ci[1] < lo_t or ci[0] > hi_t:
        e["verdict"], e["detail"] = NOT_REPRODUCED, f"CI outside the tolerance: {where}"
    else:
        e["detail"] = f"CI overlaps the tolerance's edge: {where}"
    return _gated(_capped(e, replicates, proxy), quality, list(arms))


def qualitative(claim_id: str, paper: str, text: str, figure: str, proxy: Optional[Dict[str, Any]] = None,
                proxy_verdict: Optional[str] = None, quality: Quality = None, arms: Sequence[str] = (),
                **context) -> Dict[str, Any]:
    """A qualitative claim: the figure that shows it, and a measured proxy with its own verdict when there is one."""
    verdict = proxy_verdict or QUALITATIVE
    e = _entry(claim_id, paper, text, (proxy or {}).get("metric", "figure"), context, kind="qualitative",
               figure=figure, ours=proxy, n=(proxy or {}).get("n"), verdict=verdict,
               detail=("verdict from the measured proxy; see the figure" if proxy_verdict
                       else "qualitative: judge from the figure"))
    return _gated(e, quality, list(arms or (quality or {}).keys()))
