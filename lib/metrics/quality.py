"""The quality gate and the convergence record (evaluation.md, "Quality gate (before any verdict)").

A comparison means something only when its arms have learned the data.  For every trained arm we record

* a learning curve: the extractor FD and KID at >= 4 checkpoints over training (EMA snapshots kept by
  ``lib.train.train(snapshot_steps=...)`` at 1/4, 1/2, 3/4 and 1 of the budget, ``snapshot_steps``);
* the real-vs-real floor: held-out real images against the same reference, same n, same extractor
  (``real_floor``);
* precision and recall (k = 3) of the final samples;

and ``gate`` turns them into the dict every study notebook writes per arm under ``"quality"`` and that
``lib.reports.claims.compare(..., quality={arm: gate_dict})`` reads (a claim with a failed arm is "not testable at
this scale").  The thresholds live only in ``GATE``.

    curve = [[step, fd], ...]                                       # per seed, >= 4 points
    q = gate(precision=[...], recall=[...], fd=[...], floor=fl["fd"], curves=[curve_seed0, ...])
    q["passed"], q["reasons"]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class Gate:
    """The thresholds of the quality gate (evaluation.md, "Quality gate"), in one place.

    * ``min_precision`` = 0.5, ``min_recall`` = 0.3 (k = 3 nearest neighbours, the dataset's extractor): the
      floor evaluation.md sets ("at least precision >= 0.5 and recall >= 0.3").  Precision 0.5 says at least
      half of the samples lie inside the real-feature manifold (noise and colour blobs score ~0); recall 0.3
      says the samples cover a third of the real manifold, i.e. they did not collapse onto a few modes.  Real
      held-out images score about 0.7-0.8 on both with k = 3 at n ~ 1000 (``real_floor``), so the gate asks
      for "clearly data-like", not "as good as real".  Not tightened per dataset yet: no dataset here has a
      stated reason to (evaluation.md allows tightening with one).
    * Flattened curve: the FD change over the last quarter of training (FD at the last checkpoint minus FD at
      the checkpoint nearest 3/4 of the steps, mean over seeds) is within the seeds' spread (the std over seeds
      of the final FD) — the arm has stopped improving at this budget.  With one seed there is no spread; then
      the change must be within ``flat_rel_tol`` = 10 % of the final FD (an FD improving by more than a tenth
      over the last quarter is still learning; the sampling noise of a classifier FD at n ~ 1000 is a few %).
    * ``min_checkpoints`` = 4 points on the curve (evaluation.md: "at >= 4 checkpoints").
    """
    min_precision: float = 0.5
    min_recall: float = 0.3
    k: int = 3
    last_fraction: float = 0.25
    flat_rel_tol: float = 0.10
    min_checkpoints: int = 4

    def describe(self) -> str:
        return (f"gate: precision >= {self.min_precision:g}, recall >= {self.min_recall:g} (k={self.k}); FD change "
                f"over the last {self.last_fraction:.0%} of training within the seeds' spread (one seed: within "
                f"{self.flat_rel_tol:.0%} of the final FD); >= {self.min_checkpoints} checkpoints")


GATE = Gate()


def snapshot_steps(total: int, n: int = GATE.min_checkpoints) -> List[int]:
    """Steps at which EMA snapshots are kept: k/n of ``total`` for k = 1..n (distinct, ending at ``total``)."""
    if total < 1 or n < 1:
        raise ValueError(f"need total >= 1 and n >= 1, got {total}, {n}")
    return sorted({max(1, int(round(total * (k + 1) / n))) for k in range(n)})


# ----------------------------------------------------------------------------------------------------------
# KID

def kid(feats_a: np.ndarray, feats_b: np.ndarray, subset_size: int = 1000, subsets: int = 10, seed: int = 0) -> float:
    """Kernel Inception Distance on given features: the unbiased MMD² with the cubic polynomial kernel
    k(x, y) = (xᵀy / d + 1)³, averaged over random subsets of size m = min(n_a, n_b, subset_size)
    (Bińkowski et al. 2018, "Demystifying MMD GANs", Eq. 4 and §4; the same estimator as torchmetrics'
    KernelInceptionDistance and clean-fid).  Unbiased: its expectation is 0 for two samples of one
    distribution, so it can be negative at small n.  One subset suffices (and is used) when m covers both sets."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    d = a.shape[1]
    m = min(len(a), len(b), subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    n_sub = 1 if m == len(a) == len(b) else subsets
    vals = []
    for _ in range(n_sub):
        x = a if m == len(a) else a[rng.choice(len(a), m, replace=False)]
        y = b if m == len(b) else b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        off = m * (m - 1)
        vals.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return float(np.mean(vals))


# ----------------------------------------------------------------------------------------------------------
# Measurements on features

def feature_metrics(fake_feats: np.ndarray, real_feats: np.ndarray, k: int = GATE.k) -> Dict[str, float]:
    """FD, KID, precision and recall of one feature set against the reference features."""
    from lib.metrics import fid_from_features, precision_recall
    pr = precision_recall(real_feats, fake_feats, k=k)
    return {"fd": fid_from_features(fake_feats, real_feats), "kid": kid(fake_feats, real_feats),
            "precision": pr["precision"], "recall": pr["recall"], "n": int(len(fake_feats))}


def reference(extractor, real: torch.Tensor, key: Optional[str] = None) -> np.ndarray:
    """Reference features (cached under ``key`` like ``lib.metrics.evaluate_samples``)."""
    from lib.metrics import reference_features
    return reference_features(extractor, real, key) if key else extractor.features(real)


def real_floor(held_out: torch.Tensor, real: torch.Tensor, extractor, key: Optional[str] = None) -> Dict[str, float]:
    """The real-vs-real floor: held-out real images (same n as the samples) against the same reference,
    with the same extractor — the FD / KID a perfect generator would get at this n, and its P/R."""
    return feature_metrics(extractor.features(held_out), reference(extractor, real, key))


def held_out_images(x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n real images disjoint from the reference ``x[randperm(seed)[:n]]`` that ``epd_experiments.setup``
    uses (the next n of the same permutation; fewer when the set is smaller than 2n)."""
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    rest = perm[n:2 * n]
    if len(rest) < 2:
        raise ValueError(f"need more than {n + 1} images for a held-out floor, the set has {len(x)}")
    return x[rest]


def learning_curve(samples_by_step: Dict[int, torch.Tensor], real_feats: np.ndarray, extractor) -> List[dict]:
    """[{step, fd, kid, precision, recall, n}] for samples drawn from the EMA snapshot at each step."""
    return [{"step": int(st), **feature_metrics(extractor.features(x), real_feats)}
            for st, x in sorted(samples_by_step.items())]


# ----------------------------------------------------------------------------------------------------------
# The gate

def _point_near(curve: Sequence[Sequence[float]], step: float) -> float:
    c = sorted(curve)
    return float(min(c, key=lambda p: abs(p[0] - step))[1])


def last_quarter_change(curve: Sequence[Sequence[float]], fraction: float = GATE.last_fraction) -> float:
    """FD(last checkpoint) - FD(checkpoint nearest (1 - fraction)·last step); negative = still improving."""
    c = sorted(curve)
    last_step, last_fd = c[-1]
    return float(last_fd - _point_near(c[:-1], (1 - fraction) * last_step))


def flattened(curves: Sequence[Sequence[Sequence[float]]], g: Gate = GATE) -> dict:
    """The flattened-curve rule of ``Gate`` on per-seed curves [[step, fd], ...]."""
    curves = [sorted(c) for c in curves if c]
    if not curves or min(len(c) for c in curves) < g.min_checkpoints:
        n = min((len(c) for c in curves), default=0)
        return {"flat": False, "change": None, "spread": None,
                "reason": f"learning curve has {n} checkpoints < {g.min_checkpoints}"}
    change = float(np.mean([last_quarter_change(c, g.last_fraction) for c in curves]))
    finals = [c[-1][1] for c in curves]
    if len(curves) >= 2:
        spread, rule = float(np.std(finals, ddof=1)), "the seeds' spread (std of the final FD)"
    else:
        spread, rule = g.flat_rel_tol * abs(finals[0]), f"{g.flat_rel_tol:.0%} of the final FD (one seed)"
    flat = abs(change) <= spread
    return {"flat": bool(flat), "change": change, "spread": spread,
            "reason": None if flat else (f"FD still changing over the last quarter: {change:+.4g} "
                                         f"(|change| > {spread:.4g}, {rule})")}


def _mean(v) -> Optional[float]:
    if v is None:
        return None
    a = np.atleast_1d(np.asarray(v, dtype=float))
    return float(a.mean()) if a.size else None


def gate(precision, recall, fd, floor: Optional[float], curves: Sequence[Sequence[Sequence[float]]],
         g: Gate = GATE, kid=None, kid_floor: Optional[float] = None, note: str = "") -> dict:
    """The gate dict of one arm: {"passed", "precision", "recall", "fd", "floor", "reasons", ...}.

    ``precision`` / ``recall`` / ``fd``: final values per seed (or one number); the gate uses their mean over
    seeds.  ``curves``: per-seed learning curves [[step, fd], ...].  ``reasons`` says why it failed (empty when
    it passed).  ``floor`` is reported beside the FD (not a threshold: FD scales differ per extractor)."""
    p, r, f = _mean(precision), _mean(recall), _mean(fd)
    reasons = []
    if p is None or r is None:
        reasons.append("no precision/recall: the dataset has no feature extractor here")
    else:
        if p < g.min_precision:
            reasons.append(f"precision {p:.3f} < {g.min_precision:g} (samples do not resemble the data)")
        if r < g.min_recall:
            reasons.append(f"recall {r:.3f} < {g.min_recall:g} (samples cover too little of the data)")
    fl = flattened(curves, g)
    if not fl["flat"]:
        reasons.append(fl["reason"])
    if note:
        reasons.append(note)
    return {"passed": not reasons, "precision": p, "recall": r, "fd": f, "floor": floor,
            "kid": _mean(kid), "kid_floor": kid_floor, "flat": fl["flat"], "last_quarter_change": fl["change"],
            "seed_spread": fl["spread"], "n_seeds": int(np.atleast_1d(np.asarray(fd, float)).size) if fd is not None else 0,
            "reasons": reasons, "thresholds": asdict(g)}


def not_measured(reason: str, g: Gate = GATE) -> dict:
    """A failed gate dict when nothing could be measured (e.g. no extractor, no snapshots)."""
    return {"passed": False, "precision": None, "recall": None, "fd": None, "floor": None, "kid": None,
            "kid_floor": None, "flat": False, "last_quarter_change": None, "seed_spread": None, "n_seeds": 0,
            "reasons": [reason], "thresholds": asdict(g)}


def mean_curve(curves: Sequence[Sequence[Sequence[float]]]) -> List[List[float]]:
    """[[step, mean fd over seeds], ...] on the steps every seed has."""
    steps = sorted(set.intersection(*[{int(s) for s, _ in c} for c in curves])) if curves else []
    return [[s, float(np.mean([dict((int(a), b) for a, b in c)[s] for c in curves]))] for s in steps]


def measure(trained: Dict[str, list], sample: Callable, seeds: Sequence[int], real: torch.Tensor,
            held_out: torch.Tensor, extractor, ref_key: Optional[str] = None, g: Gate = GATE):
    """({arm: gate dict}, {arm: curve rows}, floor) for trained models ``{arm: [TrainResult per seed]}``.

    ``sample(arm, result, seed, snapshot_path)`` returns len(real) samples of one EMA snapshot; the gate takes
    P / R / FD / KID of each seed's last snapshot (= the final EMA weights)."""
    real_feats = reference(extractor, real, ref_key)
    floor = real_floor(held_out, real, extractor, ref_key)
    gates, curves = {}, {}
    for arm, results in trained.items():
        rows = []
        for r, seed in zip(results, seeds):
            samples = {st: sample(arm, r, seed, p) for st, p in (getattr(r, "snapshots", None) or {}).items()}
            rows += [{**row, "seed": seed} for row in learning_curve(samples, real_feats, extractor)]
        curves[arm] = rows
        last = [max((x for x in rows if x["seed"] == sd), key=lambda x: x["step"])
                for sd in seeds if any(x["seed"] == sd for x in rows)]
        if not last:
            gates[arm] = not_measured("no EMA snapshots kept (trained before snapshots existed: retrain)", g)
            continue
        per_seed = [[[x["step"], x["fd"]] for x in rows if x["seed"] == sd] for sd in seeds]
        gates[arm] = gate([x["precision"] for x in last], [x["recall"] for x in last], [x["fd"] for x in last],
                          floor["fd"], per_seed, g, kid=[x["kid"] for x in last], kid_floor=floor["kid"])
    return gates, curves, floor


def record(gates: Dict[str, dict], curves: Dict[str, List[dict]], seeds: Sequence[int]) -> Dict[str, dict]:
    """{arm: {"quality": gate dict, "learning_curve": [[step, mean FD over seeds], ...], "learning_curve_per_seed":
    {seed: [[step, fd, kid], ...]}}} — what metrics.json carries per arm."""
    out = {}
    for arm, q in gates.items():
        rows = sorted(curves.get(arm, []), key=lambda r: r["step"])
        per_seed = {sd: [[r["step"], r["fd"], r["kid"]] for r in rows if r.get("seed", 0) == sd] for sd in seeds}
        fd_curves = [[p[:2] for p in c] for c in per_seed.values()]
        out[arm] = {"quality": q, "learning_curve": mean_curve(fd_curves) if all(fd_curves) else [],
                    "learning_curve_per_seed": {str(k): v for k, v in per_seed.items()}}
    return out


# ----------------------------------------------------------------------------------------------------------
# Figure

def curves_figure(curves: Dict[str, List[dict]], floor: Optional[dict], g: Gate = GATE,
                  quality: Optional[Dict[str, dict]] = None, title: str = ""):
    """FD and KID vs training step per arm (one line per seed), the real-vs-real floor as a dashed line and
    the gate thresholds and verdicts printed.  ``curves`` = {arm: [{"step","fd","kid","seed"}, ...]}."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (arm, rows) in enumerate(curves.items()):
        color = f"C{i % 10}"
        ok = (quality or {}).get(arm, {}).get("passed")
        for j, seed in enumerate(sorted({r.get("seed", 0) for r in rows})):
            pts = sorted((r["step"], r["fd"], r["kid"]) for r in rows if r.get("seed", 0) == seed)
            label = f"{arm} ({'passed' if ok else 'failed'})" if (j == 0 and quality) else (arm if j == 0 else None)
            for ax, k in zip(axes, (1, 2)):
                ax.plot([p[0] for p in pts], [p[k] for p in pts], "o-", color=color, alpha=0.8, label=label)
    for ax, key, name in zip(axes, ("fd", "kid"), ("FD", "KID")):
        if floor and floor.get(key) is not None:
            ax.axhline(floor[key], color="k", ls="--", lw=1, label=f"real-vs-real floor ({floor[key]:.3g})")
        ax.set_xlabel("training step"), ax.set_ylabel(name), ax.set_title(f"{name} over training", fontsize=10)
    axes[0].set_yscale("log") if all(r["fd"] > 0 for rows in curves.values() for r in rows) else None
    axes[0].legend(fontsize=7)
    fig.suptitle((title + "\n" if title else "") + g.describe(), fontsize=8)
    fig.tight_layout()
    return fig
