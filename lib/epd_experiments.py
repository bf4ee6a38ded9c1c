"""Logic of the EPD study notebooks (issue #5, part A): Table 1, the τ / t_Φ / λ ablations, the cost table, the
official-code quirks and the forward / x̂0 figures.

The notebooks stay thin: they call ``setup`` for the run folder and data, describe their arms as
``{arm name: Arm(...)}`` and hand them to ``train_arms`` / ``sample_arms`` / ``metric_table``.  Trained models are
shared between notebooks through ``study.train_model``'s content key (the default EPD arm of Table 1 is the same
model in every ablation), and generated samples are cached by (model checkpoint, sampling config, weights, n, seed)
so the default arm is also sampled once.  Spec: ../shared/reference/epd_spec.md.
"""
from __future__ import annotations

import hashlib
import json
import resource
import statistics
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from lib import claims, data, experiment, metrics, study
from lib import rng as rng_lib
from lib.profiles import Profile
from lib.sampling import sample as run_sampler

EPD = "edge_preserving"
BASELINES = ("ddpm", "ihdm", "bndm")
# Table 1 of the paper (Inception FID, 128², 30k samples; dgm-eval implementation).
TABLE1_FID = {"celeba": {"ihdm": 89.67, "ddpm": 28.17, "bndm": 26.35, EPD: 26.15},
              "lsun_church": {"ihdm": 119.34, "ddpm": 31.00, "bndm": 29.86, EPD: 23.17},
              "afhq_cat": {"ihdm": 53.86, "ddpm": 17.60, "bndm": 14.54, EPD: 13.06}}
# Table 5 (unconditional precision / recall).
TABLE5_PR = {"afhq_cat": {EPD: (0.76, 0.20), "ddpm": (0.77, 0.21)},
             "celeba": {EPD: (0.90, 0.16), "ddpm": (0.92, 0.17)},
             "lsun_church": {EPD: (0.65, 0.33), "ddpm": (0.47, 0.38)}}
# Table 3 (2× Quadro RTX 8000, 128², batch 64).
TABLE3 = {"train_s_per_it": {EPD: 1.12, "ddpm": 1.11, "bndm": 0.74},
          "inference_s_per_batch": {EPD: 301.5, "ddpm": 277.5, "bndm": 77.2},
          "inference_memory_gb": {EPD: 9.16, "ddpm": 9.16, "bndm": 10.3}}
# Fig. 7, LSUN-Church FIDs per transition point (mapping inferred from the figure layout, spec §6.9).
TPHI_FID_CHURCH = {0.25: 39.31, 0.5: 35.71, 0.75: 86.41}
LAMBDA_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)   # spec §6.9 suggested constant-λ grid [inferred]
PAPER_METRIC = "FID (Inception-v3, dgm-eval, 30k samples, 128²)"


# ----------------------------------------------------------------------------------------------------------
# Setup

def setup(notebook: str, profile: str, dataset: str = "mnist", data_root: str = "", resolution: int = 32,
          seeds: Sequence[int] = (0,), device: str = "auto", tag: str = "", n_eval: int = 0,
          train_steps: int = 0, weights: str = "ema", threads: int = 0, T: int = 0,
          lite_unet: bool = False) -> SimpleNamespace:
    """Profile (with optional n_eval / train_steps overrides), device, Run folder, dataset and eval reference.

    ``weights`` ("ema" | "raw") are the default sampling weights of every arm; ``threads`` > 0 sets torch's CPU
    threads (one thread is much faster than two on a contended 2-core machine).  ``T`` > 0 shortens the chains
    (DDPM/EPD T, IHDM K, BNDM S) and scales the β range by 500/T so ᾱ_{T-1} stays near the paper's T=500 value
    (``lib.frequency.matched_betas``); ``lite_unet`` is part B's 16-channel two-level U-Net."""
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    if threads:
        torch.set_num_threads(int(threads))
    from lib.frequency import budget_profile, matched_betas
    over = {k: v for k, v in (("n_eval", n_eval), ("train_steps", train_steps), ("T", T)) if v}
    prof = budget_profile(profile, train_steps=train_steps, T=T, n_eval=n_eval, lite_unet=lite_unet)
    if lite_unet:
        over["lite_unet"] = True
    budget = ({"ddpm": matched_betas(T), EPD: matched_betas(T), "ihdm": {"K": T}, "bndm": {"S": min(T, 1000)}}
              if T and profile != "smoke" else {})
    dev = experiment.default_device() if device == "auto" else device
    run = experiment.Run(notebook, experiment.result_folder(profile, tag), list(seeds), dev)
    ds = data.load_dataset(dataset, data_root=data_root or None, resolution=resolution)
    x = ds.float()
    real = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:prof.n_eval]]
    ctx = dict(dataset=dataset, resolution=f"{resolution}x{resolution}", profile=profile, scale=prof.note,
               paper_metric=PAPER_METRIC)
    return SimpleNamespace(prof=prof, dev=dev, run=run, ds=ds, x=x, real=real, dataset=dataset, weights=weights,
                           data_root=data_root or None, seeds=list(seeds), ctx=ctx, budget=budget,
                           overrides={**over, "weights": weights, "threads": torch.get_num_threads()})


@dataclass
class Arm:
    """One trained model (``process`` + training overrides) sampled with ``sample_overrides`` applied."""
    process: str = EPD
    config: Dict = field(default_factory=dict)          # process config used for training
    sample_config: Dict = field(default_factory=dict)   # config changes applied for sampling only
    weights: Optional[str] = None                       # "ema" | "raw" | None: the notebook's `weights`

    def train_process(self, prof: Profile, budget: Optional[dict] = None):
        return study.process_for_profile(self.process, prof, **{**(budget or {}).get(self.process, {}),
                                                                 **self.config})

    def sample_process(self, prof: Profile, budget: Optional[dict] = None):
        return study.process_for_profile(self.process, prof, **{**(budget or {}).get(self.process, {}),
                                                                 **self.config, **self.sample_config})


def make(s: SimpleNamespace, name: str, **config):
    """A registered process under the notebook's profile and chain budget."""
    return Arm(name, config).train_process(s.prof, s.budget)


def epd_arm(**config) -> Arm:
    return Arm(EPD, dict(config))


def table1_arms() -> Dict[str, Arm]:
    return {"ddpm": Arm("ddpm"), "ihdm": Arm("ihdm"), "bndm": Arm("bndm"), EPD: epd_arm()}


def tau_arms() -> Dict[str, Arm]:
    """Same τ in training and sampling (Q1); linear is the default arm shared with Table 1."""
    return {"tau=linear": epd_arm(), "tau=cosine": epd_arm(tau="cosine"), "tau=sigmoid": epd_arm(tau="sigmoid")}


def tphi_arms(values: Sequence[float] = (0.25, 0.5, 0.75)) -> Dict[str, Arm]:
    return {f"t_phi={v:g}": (epd_arm() if v == 0.5 else epd_arm(t_phi=float(v))) for v in values}


def lambda_arms(constants: Sequence[float] = LAMBDA_GRID) -> Dict[str, Arm]:
    """Constant λ values, the default linear λ(t) ∈ [1e-4, 1e-1] and the sigmoid λ(t)."""
    arms = {f"lambda={c:g}": epd_arm(lambda_schedule="constant", lambda_constant=float(c)) for c in constants}
    arms["lambda(t) linear"] = epd_arm()
    arms["lambda(t) sigmoid"] = epd_arm(lambda_schedule="sigmoid")
    return arms


# Official-code quirks (spec §5): (quirk, code behaviour arm, paper-meaning arm, what differs).
def quirk_arms() -> List[dict]:
    d = epd_arm()
    return [
        dict(quirk="Q1 tau train/sample", code="train cosine, sample linear", paper="linear in both",
             code_arm=Arm(EPD, {"tau": "cosine"}, {"tau_sample": "linear"}), paper_arm=d, side="training"),
        dict(quirk="Q4 edge-map normalisation", code="max over the batch", paper="max per image",
             code_arm=d, paper_arm=epd_arm(edge_norm="image"), side="training"),
        dict(quirk="Q5 Sobel padding", code="zeros", paper="replicate",
             code_arm=d, paper_arm=epd_arm(edge_padding="replicate"), side="training"),
        dict(quirk="Q9 final step", code="stop at t=1, noise added", paper="final denoise (return x0-hat)",
             code_arm=d, paper_arm=Arm(EPD, {}, {"final_step": "denoise"}), side="sampling"),
        dict(quirk="Q12 sampling weights", code="raw weights (no EMA)", paper="EMA weights",
             code_arm=Arm(EPD, weights="raw"), paper_arm=Arm(EPD, weights="ema"), side="sampling"),
    ]


def arms_of_quirks(rows: List[dict]) -> Dict[str, Arm]:
    """Distinct arms of the quirk table, named '<quirk>: code' / '<quirk>: paper' (the default arm once)."""
    arms = {"default (code Q4/Q5/Q9, EMA, linear tau)": epd_arm()}
    for r in rows:
        for side in ("code", "paper"):
            if r[f"{side}_arm"] != epd_arm():
                arms[f"{r['quirk']}: {side}"] = r[f"{side}_arm"]
    return arms


def arm_name_for(arms: Dict[str, Arm], arm: Arm) -> str:
    return next(n for n, a in arms.items() if a == arm)


# ----------------------------------------------------------------------------------------------------------
# Training and sampling (cached)

def train_arms(arms: Dict[str, Arm], s: SimpleNamespace, progress: bool = False) -> Dict[str, list]:
    """{arm: [TrainResult per seed]}; identical training configs share one cached model."""
    out = {}
    for name, arm in arms.items():
        proc = arm.train_process(s.prof, s.budget)
        out[name] = [study.train_model(proc, s.ds, s.prof, seed, device=s.dev, progress=progress)
                     for seed in s.seeds]
    return out


def _samples_path(result, proc, weights: str, n: int, seed: int, shape) -> "experiment.Path":
    key = json.dumps([str(result.checkpoint), proc.config_dict(), weights, n, seed, list(shape), result.step],
                     sort_keys=True, default=str)
    return experiment.RUNS_DIR / "samples" / (hashlib.sha256(key.encode()).hexdigest()[:20] + ".pt")


def sample_arm(arm: Arm, result, s: SimpleNamespace, seed: int, n: Optional[int] = None) -> torch.Tensor:
    """n samples of one trained model (cached on disk); data-dependent priors get seeded training images."""
    n = n or s.prof.n_eval
    proc = arm.sample_process(s.prof, s.budget)
    proc.fit_prior(s.x)
    w = arm.weights or s.weights
    path = _samples_path(result, proc, w, n, seed, s.x.shape[1:])
    if path.exists():
        return torch.load(path)
    net = result.ema if w == "ema" else result.net
    prior = study.prior_images(s.x, n, seed + 1000)
    out = study.sample_model(proc, net, n, s.x.shape[1:], seed, s.prof, s.dev, prior_data=prior, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def sample_arms(arms: Dict[str, Arm], trained: Dict[str, list], s: SimpleNamespace) -> Dict[str, list]:
    """{arm: [samples per seed]} (seed i samples the model of seed i)."""
    return {name: [sample_arm(arm, r, s, seed) for r, seed in zip(trained[name], s.seeds)]
            for name, arm in arms.items()}


def timed(fn: Callable, *args, **kwargs):
    """(result, wall seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------------------
# Metrics and tables

def metric_row(fake: torch.Tensor, s: SimpleNamespace) -> dict:
    """Flat metric row: FD column named by its extractor, P/R, SWD mean + per level, high-frequency power."""
    r = study.evaluate(fake, s.real, s.dataset, s.data_root)
    row = {k: v for k, v in r.items() if not isinstance(v, (list, dict)) and v is not None}
    for i, v in enumerate(r.get("SWD_per_level", [])):
        row[f"SWD_L{i}"] = v
    row["hf_power"] = metrics.high_frequency_power(fake)
    return row


def metric_table(samples: Dict[str, list], s: SimpleNamespace) -> pd.DataFrame:
    """Tidy table: one row per (arm, seed)."""
    rows = [{"arm": name, "seed": seed, **metric_row(fake, s)}
            for name, per_seed in samples.items() for fake, seed in zip(per_seed, s.seeds)]
    return pd.DataFrame(rows)


def fd_column(df: pd.DataFrame) -> str:
    """The Fréchet-distance column (FID_inception / FD_<extractor>), or SWD_mean when no extractor exists."""
    cols = [c for c in df.columns if c.startswith(("FD_", "FID_"))]
    return cols[0] if cols else "SWD_mean"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per arm (numeric columns), arm order kept."""
    num = df.drop(columns=["seed"]).select_dtypes("number").columns
    g = df.groupby("arm", sort=False)[list(num)]
    mean, std = g.mean(), g.std(ddof=1)
    out = mean.copy()
    for c in num:
        if not c.startswith("n_"):
            out[f"{c}_std"] = std[c]
    out.insert(0, "n_seeds", g.size())
    return out.reset_index()


def real_hf_power(s: SimpleNamespace) -> float:
    return metrics.high_frequency_power(s.real)


def values(df: pd.DataFrame, arm: str, col: str) -> List[float]:
    return df.loc[df["arm"] == arm, col].astype(float).tolist()


def lower_claim(cid: str, text: str, df: pd.DataFrame, col: str, low: str, high: str, s: SimpleNamespace,
                paper_values: Optional[dict] = None) -> dict:
    """Ledger entry "arm ``low`` has a lower ``col`` than arm ``high``" (evaluation.md verdict rule)."""
    return claims.compare(cid, "EPD", text, col, {low: values(df, low, col)}, {high: values(df, high, col)},
                          paper_values=paper_values, **s.ctx)


def paper_fids(dataset: str) -> dict:
    return TABLE1_FID.get(dataset, TABLE1_FID["afhq_cat"])


def metric_note(col: str) -> str:
    return (f"ours: {col} at this scale; paper: {PAPER_METRIC} — different metric, resolution and sample count, "
            "so only directions are compared, never values")


def table1_claims(df: pd.DataFrame, s: SimpleNamespace) -> List[dict]:
    """Claims 1-4 and 9 of epd_spec §7."""
    col, fid = fd_column(df), paper_fids(s.dataset)
    pv = lambda *names: {n: fid[n] for n in names}  # noqa: E731
    out = [lower_claim("EPD-1", "EPD FID < DDPM FID (unconditional, Table 1)", df, col, EPD, "ddpm", s,
                       pv(EPD, "ddpm")),
           lower_claim("EPD-2", "EPD FID < BNDM FID (Table 1)", df, col, EPD, "bndm", s, pv(EPD, "bndm")),
           lower_claim("EPD-3", "EPD FID far below IHDM (Table 1)", df, col, EPD, "ihdm", s, pv(EPD, "ihdm"))]
    gain = relative_gain(df, col, EPD, "ddpm")
    paper_gain = 1 - fid[EPD] / fid["ddpm"]
    out.append(claims.within_tolerance(
        "EPD-4", "EPD", "largest unconditional gain over DDPM about 25 % (Church, Cat); about 7 % on CelebA",
        f"relative {col} reduction vs DDPM", gain, paper_gain, 0.10, **s.ctx))
    if "precision" in df.columns:
        for m, i in (("precision", 0), ("recall", 1)):
            diff = [a - b for a, b in zip(values(df, EPD, m), values(df, "ddpm", m))]
            out.append(claims.within_tolerance(
                f"EPD-9-{m}", "EPD", f"unconditional {m} of EPD within 0.02 of DDPM (Table 5, AFHQ-Cat/CelebA)",
                f"{m} difference EPD - DDPM (k=3, {col} features)", diff, 0.0, 0.02,
                **s.ctx))
    for c in out:
        c["metric_note"] = metric_note(col)
    return out


def relative_gain(df: pd.DataFrame, col: str, arm: str, ref: str) -> List[float]:
    """Per seed 1 - arm/ref."""
    return [1 - a / b for a, b in zip(values(df, arm, col), values(df, ref, col))]


def best_of_claims(cid: str, text: str, df: pd.DataFrame, best: str, others: Sequence[str], s: SimpleNamespace,
                   paper_values: Optional[dict] = None) -> List[dict]:
    """One direction entry per competitor: ``best`` has lower FD than each of ``others``."""
    col = fd_column(df)
    out = [lower_claim(f"{cid}-{i + 1}", f"{text}: {best} < {o}", df, col, best, o, s, paper_values)
           for i, o in enumerate(others)]
    for c in out:
        c["metric_note"] = metric_note(col)
    return out


def tau_claims(df: pd.DataFrame, s: SimpleNamespace) -> List[dict]:
    """Claim 17: linear τ beats cosine and sigmoid; cosine ≈ sigmoid (reported as the measured gap)."""
    out = best_of_claims("EPD-17", "linear tau beats the others in FID", df, "tau=linear",
                         ["tau=cosine", "tau=sigmoid"], s)
    col = fd_column(df)
    gap = [abs(a - b) / max(a, b) for a, b in zip(values(df, "tau=cosine", col), values(df, "tau=sigmoid", col))]
    out.append(claims.qualitative("EPD-17-cos~sig", "EPD", "cosine and sigmoid tau perform about the same",
                                  "samples_grid", proxy={"metric": f"|cos - sig| / max ({col})", "values": gap,
                                                         "n": len(gap)}, **s.ctx))
    return out


def tphi_claims(df: pd.DataFrame, s: SimpleNamespace) -> List[dict]:
    """Claim 18: t_Φ = 0.5 beats 0.25 and 0.75 (LSUN-Church 35.71 vs 39.31 and 86.41)."""
    return best_of_claims("EPD-18", "t_phi = 0.5 beats the other transition points", df, "t_phi=0.5",
                          [a for a in df["arm"].unique() if a != "t_phi=0.5"], s,
                          {f"t_phi={k:g}": v for k, v in TPHI_FID_CHURCH.items()})


def lambda_claims(df: pd.DataFrame, s: SimpleNamespace) -> List[dict]:
    """Claims 19 (λ(t) beats every constant; low λ flat, high λ ≈ DDPM-like) and 20 (linear λ(t) > sigmoid)."""
    consts = [a for a in df["arm"].unique() if a.startswith("lambda=")]
    out = best_of_claims("EPD-19", "time-varying linear lambda(t) beats constant lambda", df, "lambda(t) linear",
                         consts, s)
    out += best_of_claims("EPD-20", "linear lambda(t) beats sigmoid lambda(t)", df, "lambda(t) linear",
                          ["lambda(t) sigmoid"], s)
    if consts:
        lo, hi = consts[0], consts[-1]   # arms are ordered by λ
        out.append(lower_claim("EPD-19-flat", f"low constant lambda gives flatter (cartoonish) samples: "
                               f"high-frequency power {lo} < {hi}", df, "hf_power", lo, hi, s))
    return out


# ----------------------------------------------------------------------------------------------------------
# Quirks table

def quirk_table(rows: List[dict], arms: Dict[str, Arm], df: pd.DataFrame) -> pd.DataFrame:
    """One row per quirk: FD with the code's behaviour and with the paper's meaning, and the difference."""
    col = fd_column(df)
    mean = df.groupby("arm")[col].mean()
    out = []
    for r in rows:
        c, p = arm_name_for(arms, r["code_arm"]), arm_name_for(arms, r["paper_arm"])
        out.append({"quirk": r["quirk"], "side": r["side"], "code": r["code"], "paper meaning": r["paper"],
                    f"{col} code": mean[c], f"{col} paper": mean[p], "code - paper": mean[c] - mean[p],
                    "n_seeds": int((df["arm"] == c).sum())})
    return pd.DataFrame(out)


def quirk_claims(rows: List[dict], arms: Dict[str, Arm], df: pd.DataFrame, s: SimpleNamespace) -> List[dict]:
    """Not paper claims but spec §5 checks: does switching each quirk on change FD? (two-sided, as directions)."""
    col = fd_column(df)
    out = []
    for r in rows:
        c, p = arm_name_for(arms, r["code_arm"]), arm_name_for(arms, r["paper_arm"])
        e = lower_claim(f"EPD-Q-{r['quirk'].split()[0]}", f"{r['quirk']}: the paper's meaning ({r['paper']}) "
                        f"gives lower {col} than the code's ({r['code']})", df, col, p, c, s)
        e["paper"] = "EPD (spec §5, official code vs paper)"
        out.append(e)
    return out


# ----------------------------------------------------------------------------------------------------------
# Forward process and x̂0 trajectories (Fig. 1, Fig. 2, claim 16)

def forward_rows(s: SimpleNamespace, x0: torch.Tensor, fractions: Sequence[float]) -> Dict[str, list]:
    """x_t of one image at t = f·(steps-1) for DDPM, EPD, IHDM and BNDM (same seed everywhere)."""
    return {n: study.forward_states(make(s, n), x0, fractions)
            for n in ("ddpm", EPD, "ihdm", "bndm")}


def epd_maps(s: SimpleNamespace, x0: torch.Tensor, ts: Sequence[int], seed: int = 0) -> Dict[str, list]:
    """Per t: the edge map G(x0), σ_t(x0)/√(1-ᾱ_t) (noise std relative to DDPM), the scaled-noise target σ_t⊙ε
    and the DDPM unit-ε target √(1-ᾱ_t)ε, all mapped to [-1, 1] for display."""
    p = make(s, EPD)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    G = p.edge_map(x0)[0].float()
    rows = {"x0": [x0[0]] * len(ts), "G(x0)": [G * 2 - 1] * len(ts)}
    rows["sigma_t / sigma_DDPM"] = [study.noise_ratio(p, x0, t)[0] * 2 - 1 for t in ts]
    scaled = [(p.noise_scale(x0, t).float() * eps)[0] for t in ts]
    iso = [(float(np.sqrt(1 - p.alpha_bar[t])) * eps)[0] for t in ts]
    rows["EPD target"] = [v.clamp(-1, 1) for v in scaled]
    rows["DDPM target (scaled)"] = [v.clamp(-1, 1) for v in iso]
    return rows


def noise_std_profile(s: SimpleNamespace, x0: torch.Tensor) -> pd.DataFrame:
    """Mean σ_t/σ_DDPM on edge pixels (G > 0.1) and flat pixels (G < 0.01) per t, and τ_t, λ_t."""
    p = make(s, EPD)
    G = p.edge_map(x0)
    rows = []
    for t in range(0, p.num_steps, max(1, p.num_steps // 50)):
        r = study.noise_ratio(p, x0, t).expand_as(G)
        rows.append({"t": t, "tau": float(p.tau[t]), "lambda": float(p.lam[t]),
                     "ratio_edges": float(r[G > 0.1].mean()), "ratio_flat": float(r[G < 0.01].mean())})
    return pd.DataFrame(rows)


def x0_trajectory(arm: Arm, result, s: SimpleNamespace, n: int, seed: int, every: int):
    """Reverse process of n images: (ts, x̂0 per recorded t [n,C,H,W], final sample)."""
    proc = arm.sample_process(s.prof, s.budget)
    net = (result.ema if (arm.weights or s.weights) == "ema" else result.net).to(s.dev).eval()
    gen = rng_lib.stacked(seed, list(range(n)), device=s.dev)
    rec = {}
    cb = lambda t, x, x0: rec.__setitem__(t, x0.detach().float().cpu()) if t % every == 0 or t == 1 else None  # noqa
    final = run_sampler(proc, net, (n, *s.x.shape[1:]), gen, device=s.dev, callback=cb, progress=False).cpu()
    ts = sorted(rec, reverse=True)
    return ts, [rec[t] for t in ts], final


def edge_energy(x: torch.Tensor) -> float:
    """Mean Sobel magnitude per image (replicate padding, per-image, no normalisation) of images in [-1,1]."""
    from lib.processes.edge_preserving import edge_map
    return float(edge_map(x.clamp(-1, 1), norm="none", magnitude="abs", padding="replicate").mean())


def trajectory_table(name: str, ts, x0s, final: torch.Tensor, T: int) -> pd.DataFrame:
    """Per t: RMSE of x̂0 (clipped) vs the final sample, its edge energy and high-frequency power."""
    f = final.clamp(-1, 1)
    return pd.DataFrame([{"arm": name, "t": t, "t_frac": t / (T - 1),
                          "rmse_to_final": float(((x.clamp(-1, 1) - f) ** 2).mean().sqrt()),
                          "edge_energy": edge_energy(x), "hf_power": metrics.high_frequency_power(x.clamp(-1, 1))}
                         for t, x in zip(ts, x0s)])


def structure_onset(traj: pd.DataFrame, threshold: float = 0.5) -> float:
    """Largest t_frac at which x̂0's RMSE to the final sample has dropped below ``threshold`` × its value at
    the start (higher = structure appears earlier in the reverse process)."""
    r = traj.sort_values("t", ascending=False)
    ok = r[r["rmse_to_final"] <= threshold * r["rmse_to_final"].iloc[0]]
    return float(ok["t_frac"].iloc[0]) if len(ok) else 0.0


def early_error(traj: pd.DataFrame, lo: float = 0.3, hi: float = 0.9) -> float:
    """Mean RMSE of x̂0 to the final sample over t_frac ∈ [lo, hi] (lower = final structure visible earlier)."""
    r = traj[(traj["t_frac"] >= lo) & (traj["t_frac"] <= hi)]
    return float(r["rmse_to_final"].mean())


def trajectory_figure(trajs: Dict[str, tuple], k: int = 8, n_img: int = 2):
    """x̂0 along the reverse process for each arm (rows = arm × image), ``k`` evenly spaced recorded t."""
    from lib import plots
    rows, labels = {}, None
    for name, (ts, x0s, final) in trajs.items():
        idx = np.linspace(0, len(ts) - 1, k).round().astype(int)
        labels = [f"t={ts[i]}" for i in idx] + ["sample"]
        for j in range(n_img):
            rows[f"{name} #{j}"] = [x0s[i][j].clamp(-1, 1) for i in idx] + [final[j]]
    return plots.strip_figure(rows, labels, title="x0-hat predictions along the reverse process")


def trajectory_curves_figure(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    cols = ["rmse_to_final", "edge_energy", "hf_power"]
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 3))
    for ax, c in zip(axes, cols):
        for (arm, seed), g in df.groupby(["arm", "seed"], sort=False):
            ax.plot(g["t_frac"], g[c], label=f"{arm} (seed {seed})")
        ax.set_xlabel("t / (T-1)  (reverse process runs right to left)"), ax.set_title(c, fontsize=10)
        ax.invert_xaxis()
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def noise_profile_figure(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    for c in ("ratio_edges", "ratio_flat", "tau"):
        ax.plot(df["t"], df[c], label=c)
    ax.set_xlabel("t"), ax.set_ylabel("sigma_t / sigma_DDPM, tau"), ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------
# Cost (Table 3)

def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Callable, repeats: int, device) -> float:
    fn()   # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cost_row(name: str, s: SimpleNamespace, batch: int, repeats: int, sample_steps: int) -> dict:
    """Training s/iteration (forward+loss+backward+Adam, profile U-Net and batch), reverse-step time over
    ``sample_steps`` steps at the profile's sampling batch, extrapolated to the full chain, and peak memory
    (CUDA peak on GPU; 'n/a on CPU')."""
    from lib.unet import UNet
    dev = torch.device(s.dev)
    proc = make(s, name)
    proc.fit_prior(s.x)
    torch.manual_seed(0)
    net = UNet(s.prof.unet(s.x.shape[1], proc.out_channels(s.x.shape[1]))).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x0 = s.x[torch.randint(0, len(s.x), (batch,), generator=g)].to(dev)

    def train_step():
        loss = proc.loss(net, x0, generator=torch.Generator(dev).manual_seed(1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_s = _median_time(train_step, repeats, dev)
    nb = s.prof.sample_batch
    prior = s.x[torch.randint(0, len(s.x), (nb,), generator=g)].to(dev)
    steps = proc.sampling_timesteps()
    picks = [steps[i] for i in np.linspace(0, len(steps) - 1, sample_steps).round().astype(int)]
    gen = torch.Generator(dev).manual_seed(2)
    xt = proc.prior((nb, *s.x.shape[1:]), gen, x0=prior, device=dev)
    net.eval()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    @torch.no_grad()
    def sample_steps():
        for t, tp in picks:
            proc.step(net, xt, t, tp, gen)

    step_s = _median_time(sample_steps, max(1, repeats // 3), dev) / len(picks)
    mem = torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == "cuda" else None
    return {"process": name, "train_s_per_it": train_s, "train_batch": batch, "sample_s_per_step": step_s,
            "sampling_steps": len(steps), "inference_s_per_batch": step_s * len(steps), "sample_batch": nb,
            "inference_peak_mem_gb": mem, "max_rss_gb_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 2 ** 20}


def cost_table(names: Sequence[str], s: SimpleNamespace, batch: int, repeats: int, sample_steps: int):
    """All processes measured in one run, with ratios to DDPM."""
    df = pd.DataFrame([cost_row(n, s, batch, repeats, sample_steps) for n in names])
    ref = df.set_index("process").loc["ddpm"]
    for c in ("train_s_per_it", "inference_s_per_batch", "inference_peak_mem_gb"):
        df[f"{c}_ratio_to_ddpm"] = (df[c] / ref[c]) if ref[c] is not None and not pd.isna(ref[c]) else None
    df["memory_note"] = "CUDA peak allocated" if torch.device(s.dev).type == "cuda" else "n/a on CPU"
    return df


def cost_claims(df: pd.DataFrame, s: SimpleNamespace, tol_train: float = 0.05, tol_infer: float = 0.05,
                tol_mem: float = 0.05) -> List[dict]:
    """Claims 13-14 as ratios EPD/DDPM with absolute tolerances on the ratio."""
    r = df.set_index("process").loc[EPD]
    ctx = {**s.ctx, "paper_metric": "wall time ratio EPD/DDPM (2x Quadro RTX 8000, 128², batch 64)"}
    p = TABLE3
    out = [claims.within_tolerance("EPD-13", "EPD", "EPD training overhead vs DDPM about 1 % per iteration "
                                   "(1.12 vs 1.11 s/it)", "train s/it ratio EPD/DDPM",
                                   [float(r["train_s_per_it_ratio_to_ddpm"])],
                                   p["train_s_per_it"][EPD] / p["train_s_per_it"]["ddpm"], tol_train, **ctx),
           claims.within_tolerance("EPD-14", "EPD", "EPD inference about 9 % slower than DDPM (301.5 vs 277.5 "
                                   "per batch of 64)", "inference s/batch ratio EPD/DDPM",
                                   [float(r["inference_s_per_batch_ratio_to_ddpm"])],
                                   p["inference_s_per_batch"][EPD] / p["inference_s_per_batch"]["ddpm"], tol_infer,
                                   **ctx)]
    if r["inference_peak_mem_gb"] is not None and not pd.isna(r["inference_peak_mem_gb"]):
        out.append(claims.within_tolerance("EPD-14-mem", "EPD", "EPD inference memory equal to DDPM (9.16 GB)",
                                           "inference peak memory ratio EPD/DDPM",
                                           [float(r["inference_peak_mem_gb_ratio_to_ddpm"])], 1.0, tol_mem, **ctx))
    for c in out:
        c["tolerance_note"] = f"absolute tolerance on the ratio: {c['tolerance']:g}"
    return out


# ----------------------------------------------------------------------------------------------------------
# Figures and records

def grid_figure(samples: Dict[str, list], s: SimpleNamespace, title: str = ""):
    """Real images (a seeded random subset) beside the first seed's samples of each arm."""
    from lib import plots
    n = s.prof.n_show
    return plots.image_grid_figure({"real": s.real[:n], **{k: v[0][:n] for k, v in samples.items()}}, title=title)


def loss_figure(trained: Dict[str, list]):
    from lib import plots
    return plots.loss_curves_figure({k: v[0].log for k, v in trained.items()})


def fd_bar_figure(df: pd.DataFrame, col: Optional[str] = None, title: str = ""):
    """Mean ± std (over seeds) of one metric per arm."""
    import matplotlib.pyplot as plt
    col = col or fd_column(df)
    g = df.groupby("arm", sort=False)[col]
    m, sd = g.mean(), g.std(ddof=1).fillna(0)
    fig, ax = plt.subplots(figsize=(1.2 * len(m) + 2, 3))
    ax.bar(range(len(m)), m.values, yerr=sd.values, capsize=3)
    ax.set_xticks(range(len(m)), m.index, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(col), ax.set_title(title or col, fontsize=10)
    fig.tight_layout()
    return fig


def arm_configs(arms: Dict[str, Arm], s: SimpleNamespace) -> dict:
    return {n: {"process": a.process, "train_config": a.config, "sample_config": a.sample_config,
                "weights": a.weights or s.weights, "full_config": a.sample_process(s.prof, s.budget).config_dict()} for n, a in arms.items()}


def save_all(s: SimpleNamespace, df: pd.DataFrame, extra: dict, claim_list: List[dict], timings: dict) -> None:
    """Per-seed CSV, summary table and metrics.json (with claims and the scale)."""
    s.run.save_table(df, "per_seed")
    s.run.save_table(summary(df), "table")
    s.run.save_metrics({"dataset": s.ds.info(), "scale": s.prof.note, "profile_overrides": s.overrides,
                        "train_steps": s.prof.train_steps, "n_eval": s.prof.n_eval, "fd_column": fd_column(df),
                        "rows": df.to_dict("records"), "timings_s": timings, "claims": claim_list, **extra})


# ----------------------------------------------------------------------------------------------------------
# Forward-process notebook helpers

def plots_strip(rows: Dict[str, list], labels: Sequence[str], title: str = ""):
    from lib import plots
    return plots.strip_figure(rows, labels, title=title)


def mask_times(s: SimpleNamespace) -> List[int]:
    """t at which the EPD noise masks are shown: through the edge-preserving phase to the first isotropic index."""
    T = make(s, EPD).num_steps
    return [0, T // 10, T // 4, 2 * T // 5, T // 2 - 1, T // 2]


def trajectories(arms: Dict[str, Arm], trained: Dict[str, list], s: SimpleNamespace, n: int) -> Dict[str, list]:
    """{arm: [(ts, x̂0 list, final) per seed]}, x̂0 recorded at ~40 evenly spaced t."""
    out = {}
    for name, arm in arms.items():
        every = max(1, arm.sample_process(s.prof, s.budget).num_steps // 40)
        out[name] = [x0_trajectory(arm, r, s, n, seed, every) for r, seed in zip(trained[name], s.seeds)]
    return out


def trajectory_frame(trajs: Dict[str, list], s: SimpleNamespace) -> pd.DataFrame:
    frames = []
    for name, per_seed in trajs.items():
        T = make(s, name).num_steps
        for (ts, x0s, final), seed in zip(per_seed, s.seeds):
            frames.append(trajectory_table(name, ts, x0s, final, T).assign(seed=seed))
    return pd.concat(frames, ignore_index=True)


def trajectory_claims(df: pd.DataFrame, s: SimpleNamespace):
    """Claim 16 proxies per seed: mean RMSE of x̂0 to the final sample over t/(T-1) ∈ [0.3, 0.9] (lower = the
    final structure is visible earlier) and the structure-onset time (RMSE halved; higher = earlier)."""
    rows = [{"arm": a, "seed": sd, "early_rmse_to_final": early_error(g), "structure_onset_t_frac": structure_onset(g)}
            for (a, sd), g in df.groupby(["arm", "seed"], sort=False)]
    p = pd.DataFrame(rows)
    c = claims.compare("EPD-16", "EPD", "EPD x0-hat shows the final structure earlier than DDPM (Fig. 2)",
                       "mean RMSE(x0-hat, final sample) over t/(T-1) in [0.3, 0.9]",
                       {EPD: values(p, EPD, "early_rmse_to_final")}, {"ddpm": values(p, "ddpm", "early_rmse_to_final")},
                       **{**s.ctx, "paper_metric": "qualitative (Fig. 2, AFHQ-Cat 128², T=750)"})
    c["figure"] = "x0hat_trajectories.png, x0hat_proxies.png"
    return [c], p.to_dict("records")
