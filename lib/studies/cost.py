"""EPD Table 3 (cost): training and sampling time of every process with the same U-Net, measured interleaved.

Every process gets its own network, optimiser and batch, built once; then ``rounds`` rounds each time one
training iteration and ``sample_steps`` reverse steps of every process, in an order rotated from round to round,
so that a slow drift of the machine (another job, thermal state) hits all processes alike.  A round's ratio
EPD/DDPM compares two timings taken seconds apart, and the claims use the per-round ratios as repetitions (the
verdict rule's timing claims need ≥ 5 interleaved repetitions and a CI; ``lib.reports.claims.within_tolerance``).
``benchmarks/step_time.py`` is the standalone benchmark of the same kind (more options: precisions, FLOP/s).

Spec: epd_spec.md Table 3 (2× Quadro RTX 8000, 128², batch 64); our machine, resolution and U-Net differ, so
only the ratios are compared.
"""
from __future__ import annotations

import resource
import time
from typing import Callable, List, Sequence

import numpy as np
import pandas as pd
import torch

from lib.reports import claims, paper_data

EPD = "edge_preserving"
# Table 3 (2× Quadro RTX 8000, 128², batch 64): {row: {arm: value}}, from lib/reports/paper_data.yaml.
TABLE3 = paper_data.table("epd_table3_cost")
TIMED = ("train_s_per_it", "inference_s_per_batch")


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _bench(name: str, s, batch: int, sample_steps: int) -> dict:
    """One process's timed closures: a training iteration (forward + loss + backward + Adam, profile U-Net) and
    ``sample_steps`` reverse steps spread over its chain at the profile's sampling batch."""
    from lib.studies.epd_experiments import make
    from lib.unet import UNet
    dev = torch.device(s.dev)
    proc = make(s, name)
    proc.fit_prior(s.x)
    torch.manual_seed(0)
    net = UNet(s.prof.unet(s.x.shape[1], proc.out_channels(s.x.shape[1]))).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x0 = s.x[torch.randint(0, len(s.x), (batch,), generator=g)].to(dev)
    nb = s.prof.sample_batch
    prior = s.x[torch.randint(0, len(s.x), (nb,), generator=g)].to(dev)
    steps = proc.sampling_timesteps()
    picks = [steps[i] for i in np.linspace(0, len(steps) - 1, sample_steps).round().astype(int)]
    gen = torch.Generator(dev).manual_seed(2)
    xt = proc.prior((nb, *s.x.shape[1:]), gen, x0=prior, device=dev)

    def train_step():
        net.train()
        loss = proc.loss(net, x0, generator=torch.Generator(dev).manual_seed(1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def sample():
        net.eval()
        for t, tp in picks:
            proc.step(net, xt, t, tp, gen)

    return dict(train=train_step, sample=sample, n_picks=len(picks), n_steps=len(steps), batch=batch, nb=nb)


def measure(names: Sequence[str], s, batch: int, rounds: int, sample_steps: int, per_round: int = 3) -> pd.DataFrame:
    """Tidy timings, one row per (round, process): ``train_s_per_it`` (median of ``per_round`` consecutive
    iterations) and ``inference_s_per_batch`` (reverse-step time, median of ``per_round`` passes over the picked
    steps, times the chain length), the rounds interleaved (process order rotated per round)."""
    dev = torch.device(s.dev)
    benches = {n: _bench(n, s, batch, sample_steps) for n in names}
    for b in benches.values():   # warm-up: allocator, kernels' first call
        b["train"](), b["sample"]()
    rows = []
    for r in range(int(rounds)):
        order = list(names)[r % len(names):] + list(names)[:r % len(names)]
        for n in order:
            b = benches[n]
            train_s = float(np.median([_timed(b["train"], dev) for _ in range(per_round)]))
            step_s = float(np.median([_timed(b["sample"], dev) for _ in range(per_round)])) / b["n_picks"]
            rows.append({"round": r, "process": n, "train_s_per_it": train_s, "sample_s_per_step": step_s,
                         "sampling_steps": b["n_steps"], "inference_s_per_batch": step_s * b["n_steps"]})
    if dev.type == "cuda":   # peak memory of one sampling pass per process, measured after the timing
        for n, b in benches.items():
            torch.cuda.reset_peak_memory_stats(dev)
            b["sample"]()
            for row in rows:
                if row["process"] == n:
                    row["inference_peak_mem_gb"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    return pd.DataFrame(rows)


def add_round_ratios(timings: pd.DataFrame, ref: str = "ddpm") -> pd.DataFrame:
    """Add ``<col>_ratio_to_ddpm`` for each timed column: every row divided by ``ref``'s timing of the same round
    (the one place the per-round ratios are computed; ``round_ratios`` reads them)."""
    for c in TIMED:
        per_round = timings[timings["process"] == ref].set_index("round")[c]
        timings[f"{c}_ratio_to_ddpm"] = timings[c].to_numpy() / timings["round"].map(per_round).to_numpy()
    return timings


def round_ratios(timings: pd.DataFrame, col: str, arm: str = EPD) -> List[float]:
    """Per-round ratio ``arm`` / DDPM of ``col`` (both timed in the same round), in round order."""
    t = timings[timings["process"] == arm].sort_values("round")
    return t[f"{col}_ratio_to_ddpm"].astype(float).tolist()


def cost_table(names: Sequence[str], s, batch: int, repeats: int, sample_steps: int):
    """(table, timings): per process the median over the interleaved rounds (``repeats`` rounds) and the median
    of the per-round ratios to DDPM; ``timings`` holds every round (the claims' repetitions)."""
    timings = add_round_ratios(measure(names, s, batch, repeats, sample_steps))
    has_mem = "inference_peak_mem_gb" in timings
    mem_ref = float(timings.loc[timings["process"] == "ddpm", "inference_peak_mem_gb"].iloc[0]) if has_mem else None
    rows = []
    for n in names:
        t = timings[timings["process"] == n]
        mem = float(t["inference_peak_mem_gb"].iloc[0]) if has_mem else None
        row = {"process": n, "rounds": len(t), "train_s_per_it": float(t["train_s_per_it"].median()),
               "train_batch": batch, "sample_s_per_step": float(t["sample_s_per_step"].median()),
               "sampling_steps": int(t["sampling_steps"].iloc[0]),
               "inference_s_per_batch": float(t["inference_s_per_batch"].median()),
               "sample_batch": s.prof.sample_batch, "inference_peak_mem_gb": mem,
               **{f"{c}_ratio_to_ddpm": float(np.median(round_ratios(timings, c, n))) for c in TIMED},
               "inference_peak_mem_gb_ratio_to_ddpm": mem / mem_ref if mem and mem_ref else None}
        rows.append(row)
    df = pd.DataFrame(rows)
    df["memory_note"] = "CUDA peak allocated" if torch.device(s.dev).type == "cuda" else "n/a on CPU"
    df["max_rss_gb_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return df, timings


def paper_columns() -> dict:
    """The paper's Table 3 as {our column: {process: value}}, ratios to DDPM included, for ``report.show_table``."""
    p = TABLE3
    out = {"train_s_per_it": p["train_s_per_it"], "inference_s_per_batch": p["inference_s_per_batch"],
           "inference_peak_mem_gb": p["inference_memory_gb"]}
    for c in TIMED:
        out[f"{c}_ratio_to_ddpm"] = {n: v / out[c]["ddpm"] for n, v in out[c].items()}
    return out


def cost_claims(df: pd.DataFrame, timings: pd.DataFrame, s, tol_train: float = 0.05, tol_infer: float = 0.05,
                tol_mem: float = 0.05) -> List[dict]:
    """Claims EPD-13/14 as ratios EPD/DDPM with absolute tolerances; the repetitions are the interleaved
    rounds (timing claims: ≥ 5 rounds and a CI inside the tolerance)."""
    r = df.set_index("process").loc[EPD]
    ctx = {**s.ctx, "paper_metric": "wall time ratio EPD/DDPM (2x Quadro RTX 8000, 128², batch 64)",
           "no_gate": "timing of the networks' steps: no samples are judged"}
    p = TABLE3
    n = {row: {arm: paper_data.num(v) for arm, v in vals.items()} for row, vals in p.items()}
    timing = dict(timing=True, interleaved=True, replicates=claims.TIMING_ROUNDS, **ctx)
    out = [claims.within_tolerance("EPD-13", "EPD", "EPD training overhead vs DDPM about 1 % per iteration "
                                   f"({n['train_s_per_it'][EPD]} vs {n['train_s_per_it']['ddpm']} s/it)",
                                   "train s/it ratio EPD/DDPM", round_ratios(timings, "train_s_per_it"),
                                   p["train_s_per_it"][EPD] / p["train_s_per_it"]["ddpm"], tol_train, **timing),
           claims.within_tolerance("EPD-14", "EPD", "EPD inference about 9 % slower than DDPM "
                                   f"({n['inference_s_per_batch'][EPD]} vs {n['inference_s_per_batch']['ddpm']} "
                                   "per batch of 64)", "inference s/batch ratio EPD/DDPM",
                                   round_ratios(timings, "inference_s_per_batch"),
                                   p["inference_s_per_batch"][EPD] / p["inference_s_per_batch"]["ddpm"], tol_infer,
                                   **timing)]
    if r["inference_peak_mem_gb"] is not None and not pd.isna(r["inference_peak_mem_gb"]):
        out.append(claims.within_tolerance("EPD-14-mem", "EPD", "EPD inference memory equal to DDPM "
                                           f"({n['inference_memory_gb']['ddpm']} GB)",
                                           "inference peak memory ratio EPD/DDPM",
                                           [float(r["inference_peak_mem_gb_ratio_to_ddpm"])], 1.0, tol_mem, **ctx))
    for c in out:
        c["tolerance_note"] = f"absolute tolerance on the ratio: {c['tolerance']:g}"
    return out


def ratio_figure(timings: pd.DataFrame, names: Sequence[str]):
    """Per-round ratios to DDPM (one point per interleaved round) with the median, for both timings."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    rows = [{"process": n, "timing": c.replace("_", " "), "ratio to DDPM": v}
            for c in TIMED for n in names if n != "ddpm" for v in round_ratios(timings, c, n)]
    d = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    sns.stripplot(data=d, x="process", y="ratio to DDPM", hue="timing", dodge=True, ax=ax, alpha=0.7)
    sns.pointplot(data=d, x="process", y="ratio to DDPM", hue="timing", dodge=0.4, estimator=np.median,
                  errorbar=None, linestyle="none", markers="_", ax=ax, legend=False, palette="dark")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_title("cost relative to DDPM, one point per interleaved round")
    fig.tight_layout()
    return fig

