"""The forward-process and x̂0-trajectory (Fig. 1, Fig. 2, claim 16) parts of the EPD study,
split from ``lib.studies.epd_experiments`` (which re-exports every name here, so notebooks keep calling ``E.<name>``).

Spec: ../shared/reference/epd_spec.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Sequence

import numpy as np
import pandas as pd
import torch

from lib.reports import claims

from lib import metrics

from lib.studies import study
from lib import rng as rng_lib
from lib.sampling import sample as run_sampler

if TYPE_CHECKING:
    from lib.studies.setup import StudySetup

EPD = "edge_preserving"


def make(s: StudySetup, name: str, **config):
    from lib.studies.epd_experiments import make as _make
    return _make(s, name, **config)


def values(df: pd.DataFrame, arm: str, col: str) -> List[float]:
    return df.loc[df["arm"] == arm, col].astype(float).tolist()


# ----------------------------------------------------------------------------------------------------------
# Forward process and x̂0 trajectories (Fig. 1, Fig. 2, claim 16)

def forward_rows(s: StudySetup, x0: torch.Tensor, fractions: Sequence[float]) -> Dict[str, list]:
    """x_t of one image at t = f·(steps-1) for DDPM, EPD, IHDM and BNDM (same seed everywhere)."""
    return {n: study.forward_states(make(s, n), x0, fractions)
            for n in ("ddpm", EPD, "ihdm", "bndm")}


def epd_maps(s: StudySetup, x0: torch.Tensor, ts: Sequence[int], seed: int = 0) -> Dict[str, list]:
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


def noise_std_profile(s: StudySetup, x0: torch.Tensor) -> pd.DataFrame:
    """Mean σ_t/σ_DDPM on edge pixels (G > 0.1) and flat pixels (G < 0.01) per t, and τ_t, λ_t."""
    p = make(s, EPD)
    G = p.edge_map(x0)
    rows = []
    for t in range(0, p.num_steps, max(1, p.num_steps // 50)):
        r = study.noise_ratio(p, x0, t).expand_as(G)
        rows.append({"t": t, "tau": float(p.tau[t]), "lambda": float(p.lam[t]),
                     "ratio_edges": float(r[G > 0.1].mean()), "ratio_flat": float(r[G < 0.01].mean())})
    return pd.DataFrame(rows)


def x0_trajectory(arm, result, s: StudySetup, n: int, seed: int, every: int):
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
    from lib.reports import plots
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
# Forward-process notebook helpers

def plots_strip(rows: Dict[str, list], labels: Sequence[str], title: str = ""):
    from lib.reports import plots
    return plots.strip_figure(rows, labels, title=title)


def mask_times(s: StudySetup) -> List[int]:
    """t at which the EPD noise masks are shown: through the edge-preserving phase to the first isotropic index."""
    T = make(s, EPD).num_steps
    return [0, T // 10, T // 4, 2 * T // 5, T // 2 - 1, T // 2]


def trajectories(arms: Dict[str, object], trained: Dict[str, list], s: StudySetup, n: int) -> Dict[str, list]:
    """{arm: [(ts, x̂0 list, final) per seed]}, x̂0 recorded at ~40 evenly spaced t."""
    out = {}
    for name, arm in arms.items():
        every = max(1, arm.sample_process(s.prof, s.budget).num_steps // 40)
        out[name] = [x0_trajectory(arm, r, s, n, seed, every) for r, seed in zip(trained[name], s.seeds)]
    return out


def trajectory_frame(trajs: Dict[str, list], s: StudySetup) -> pd.DataFrame:
    frames = []
    for name, per_seed in trajs.items():
        T = make(s, name).num_steps
        for (ts, x0s, final), seed in zip(per_seed, s.seeds):
            frames.append(trajectory_table(name, ts, x0s, final, T).assign(seed=seed))
    return pd.concat(frames, ignore_index=True)


def trajectory_claims(df: pd.DataFrame, s: StudySetup):
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


def border_edge_table(x: torch.Tensor, paddings: Sequence[str] = ("zeros", "replicate"), batch: int = 64) -> pd.DataFrame:
    """Does the Sobel padding turn the image border into an "edge"?  Per padding: mean G (EPD's default map,
    batch-max normalised over training-size batches) on the one-pixel border and in the interior, the mean G of
    interior edge pixels (G > 0.1) and the fraction of border pixels with G > 0.1 (issue 17; spec Q5, U2)."""
    from lib.processes.edge_preserving import edge_map
    H, W = x.shape[-2:]
    border = torch.zeros(H, W, dtype=torch.bool)
    border[0] = border[-1] = border[:, 0] = border[:, -1] = True
    rows = []
    for pad in paddings:
        G = torch.cat([edge_map(x[i:i + batch], padding=pad) for i in range(0, len(x), batch)])[:, 0]
        inner = G[:, ~border]
        rows.append({"padding": pad, "resolution": f"{H}x{W}", "G_border": float(G[:, border].mean()),
                     "G_interior": float(inner.mean()), "G_interior_edges": float(inner[inner > 0.1].mean()),
                     "border_fraction_G>0.1": float((G[:, border] > 0.1).float().mean()),
                     "border_pixels_fraction": float(border.float().mean())})
    return pd.DataFrame(rows)
