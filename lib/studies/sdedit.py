"""Stroke-guided generation (SDEdit, Meng et al. 2022) as in the EPD paper (epd_spec §6.3, §6.6, §6.7).

    guides = stroke_paintings(images_u8, k=4, color_space="rgb")     # k-means colour-cluster "paintings"
    out = sdedit(process, net, to_float(guides), fraction=0.55, seed=0)
    rec = reconstruction_metrics(out, originals)                       # SSIM, RMSE to the originals

SDEdit: noise the guide to the hijack index t0 = round(0.55·T) with the process's own forward process, then run
that process's own reverse sampler from t0 (``lib.sampling.sample(..., x_init=x_t0, start=t0)``): ancestral for
DDPM and EPD (or DDIM for DDPM with ``ddim_steps``), the deterministic blue-noise sampler for BNDM, started at
α = t0/T = 0.55 (BNDM's time axis is α itself, so the "corresponding α" of the hijack point 0.55·T is 0.55).

CLIP score (Table 6): cosine similarity ×100 of CLIP image embeddings of output and original. open_clip and its
weights are optional: ``load_clip`` raises ``ClipUnavailable`` naming the expected path when either is missing;
``clip_score`` works with any model that has ``encode_image`` (tested with a tiny random stand-in).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from lib import rng as rng_lib
from lib.sampling import sample, sample_ddim

HIJACK_FRACTION = 0.55                              # epd_spec §6.3: hijack point 0.55·T.
COLOR_SPACES = ("rgb", "lab")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)    # open_clip's OPENAI_DATASET_MEAN / STD.
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_CLIP_WEIGHTS = Path(os.environ.get("OPEN_CLIP_WEIGHTS", "cache/clip/ViT-B-32-openai.pt"))


# ---------------------------------------------------------------------------------------------------- guides

def _cluster_image(img: np.ndarray, k: int, color_space: str, seed: int) -> np.ndarray:
    """One [H, W, C] uint8 image -> every pixel replaced by the mean colour of its k-means cluster."""
    from sklearn.cluster import KMeans
    h, w, c = img.shape
    pix = img.reshape(-1, c).astype(np.float64)
    feats = pix
    if color_space == "lab" and c == 3:
        from skimage.color import rgb2lab
        feats = rgb2lab(img.astype(np.float64) / 255.0).reshape(-1, 3)
    k_eff = int(min(k, len(np.unique(feats, axis=0))))
    if k_eff <= 1:
        return img.copy()
    labels = KMeans(n_clusters=k_eff, n_init=3, random_state=seed).fit_predict(feats)
    centres = np.stack([pix[labels == j].mean(axis=0) for j in range(k_eff)])
    return np.clip(np.rint(centres[labels]), 0, 255).astype(np.uint8).reshape(h, w, c)


def stroke_paintings(images_u8: torch.Tensor, k: int = 4, color_space: str = "rgb", smooth_sigma: float = 0.0,
                     seed: int = 0) -> torch.Tensor:
    """Synthetic stroke paintings [N, C, H, W] uint8: per image, k-means on the pixel colours (in ``rgb`` or
    CIE ``lab``; grayscale images cluster their intensity), each pixel painted with its cluster's mean RGB.
    ``smooth_sigma`` > 0 low-passes the image first (flatter strokes). The paper leaves k, the colour space and
    any smoothing unspecified (epd_spec §6.3)."""
    if color_space not in COLOR_SPACES:
        raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {color_space!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    from lib.data import low_pass
    src = low_pass(images_u8, smooth_sigma) if smooth_sigma > 0 else images_u8
    arr = src.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([_cluster_image(a, k, color_space, seed + i) for i, a in enumerate(arr)])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------------- SDEdit

def hijack_index(process, fraction: float = HIJACK_FRACTION) -> int:
    """t0 for the hijack point fraction·T in the process's own index: round(f·T) (T=500 -> 275; T=750 -> 412,
    Python's round-half-even), capped at the top index; BNDM: round(f·T) of its α = t/T axis (α = f)."""
    if not 0 < fraction < 1:
        raise ValueError(f"hijack fraction must be in (0, 1), got {fraction}")
    return int(min(process.sdedit_top, max(1, round(fraction * process.num_steps))))


def signal_fraction(process, t0: int) -> float:
    """How much of the guide is left in x_t0 (the coefficient of x0): √ᾱ_t0 (DDPM/EPD) or 1 − α (BNDM)."""
    return process.signal_level(t0)


@torch.no_grad()
def sdedit(process, net, guides: torch.Tensor, fraction: float = HIJACK_FRACTION, seed: int = 0,
           batch_size: int = 64, device="cpu", ddim_steps: int = 0) -> torch.Tensor:
    """SDEdit outputs [N, C, H, W] in [-1, 1] for guides in [-1, 1]; output i depends only on (seed, i).

    ``ddim_steps`` > 0 uses DDIM (η = 0) from t0 with that many steps (processes with ``supports_ddim`` only)."""
    t0 = hijack_index(process, fraction)
    net = net.to(device).eval()
    out = []
    for lo in range(0, len(guides), batch_size):
        idx = list(range(lo, min(lo + batch_size, len(guides))))
        gen = rng_lib.stacked(seed, idx, device=device)
        x0 = guides[lo:lo + len(idx)].to(device)
        x_t0 = process.q_sample(x0, t0, generator=gen)
        if ddim_steps:
            y = sample_ddim(process, net, x_t0, ddim_steps, gen, start=t0, progress=False)
        else:
            y = sample(process, net, x0.shape, gen, x_init=x_t0, start=t0, device=device, progress=False)
        out.append(y.cpu())
    return torch.cat(out)


def reconstruction_metrics(out: torch.Tensor, originals: torch.Tensor) -> Dict[str, float]:
    """Mean SSIM (uint8 RGB, data_range 255) and RMSE ([0, 1] units) of outputs vs their originals (paired)."""
    from lib.metrics import rmse, ssim
    s, r = ssim(out, originals), rmse(out, originals)
    return {"SSIM": float(s.mean()), "SSIM_std": float(s.std()), "RMSE": float(r.mean()), "RMSE_std": float(r.std())}


# ---------------------------------------------------------------------------------------------------- CLIP

class ClipUnavailable(RuntimeError):
    """open_clip or its weights are not available locally."""


def load_clip(weights: Optional[str] = None, model_name: str = "ViT-B-32"):
    """An open_clip image model from a LOCAL checkpoint (never downloads); ClipUnavailable otherwise."""
    path = Path(weights) if weights else DEFAULT_CLIP_WEIGHTS
    try:
        import open_clip  # noqa: F401  (optional dependency)
    except ImportError as exc:
        raise ClipUnavailable(f"open_clip is not installed; CLIP score unavailable offline (weights expected at "
                              f"{path})") from exc
    if not path.is_file():
        raise ClipUnavailable(f"CLIP weights not found at {path} (set OPEN_CLIP_WEIGHTS or pass clip_weights); "
                              f"CLIP score unavailable offline")
    model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=str(path))
    return model.eval()


def clip_preprocess(x: torch.Tensor, size: int = 224) -> torch.Tensor:
    """[-1, 1] images -> uint8-quantised RGB, bicubic resize to ``size``, CLIP mean/std normalisation."""
    from lib.metrics import to_uint8_rgb
    u8 = torch.from_numpy(np.ascontiguousarray(to_uint8_rgb(x))).permute(0, 3, 1, 2).float() / 255.0
    u8 = torch.nn.functional.interpolate(u8, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (u8 - mean) / std


@torch.no_grad()
def clip_score(model, out: torch.Tensor, originals: torch.Tensor, size: int = 224, batch_size: int = 64) -> np.ndarray:
    """Per-pair CLIP score: 100 · cos(E(out_i), E(original_i)) with E = ``model.encode_image``."""
    scores = []
    for lo in range(0, len(out), batch_size):
        a = model.encode_image(clip_preprocess(out[lo:lo + batch_size], size)).float()
        b = model.encode_image(clip_preprocess(originals[lo:lo + batch_size], size)).float()
        scores.append(100.0 * torch.nn.functional.cosine_similarity(a, b, dim=-1))
    return torch.cat(scores).numpy()


def clip_column(weights: Optional[str], out: Dict[str, torch.Tensor], originals: torch.Tensor) -> Dict[str, object]:
    """{method: mean CLIP score} when CLIP loads, else {method: "unavailable offline"} (and the reason)."""
    try:
        model = load_clip(weights)
    except ClipUnavailable as exc:
        return {"status": str(exc), **{m: "unavailable offline" for m in out}}
    return {"status": "ok", **{m: float(clip_score(model, x, originals).mean()) for m, x in out.items()}}


# ---------------------------------------------------------------------------------------------------- claims

def with_control(processes: Dict[str, object]) -> Dict[str, object]:
    """``processes`` plus ``epd_isotropic`` (EPD with τ ≡ 1, the control arm) when EPD is among them."""
    from lib.studies.frequency import with_control as _with_control
    return _with_control(processes)


def model_quality(procs: Dict[str, object], models: Dict[tuple, object], x: torch.Tensor, profile, seeds,
                  dataset: str, data_root=None, device="cpu"):
    """({method: gate dict}, curves, floor): the quality gate of the models SDEdit starts from (``lib.metrics.quality``):
    unconditional samples (n = profile.n_eval) of each EMA snapshot against a seeded reference of ``x`` (float
    images), floor = the next n images.  ``models[(method, seed)]`` are ``study.train_model`` results."""
    from lib.metrics import quality
    from lib.studies import study
    from lib.train import load_snapshot
    ext = study.extractor_for(dataset, data_root)
    if ext is None:
        return {m: quality.not_measured("no feature extractor for this dataset (SWD only)") for m in procs}, {}, None
    n = min(profile.n_eval, len(x) // 2)
    real = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]]

    def sample(m, r, seed, path):
        return study.sample_model(procs[m], load_snapshot(r.ema, path), n, x.shape[1:], seed, profile, device,
                                  prior_data=study.prior_images(x, n, seed + 1000), progress=False)
    trained = {m: [models[(m, s)] for s in seeds] for m in procs}
    return quality.measure(trained, sample, list(seeds), real, quality.held_out_images(x, n), ext,
                           f"{dataset}-{x.shape[-1]}px-{n}")


def sdedit_claims(per_seed: Dict[str, Dict[str, list]], fd_col: str, clip: Dict[str, object], **context) -> list:
    """Ledger entries for claims 5-8 and 10 (and "5a-edge", EPD vs its isotropic control, when that arm ran).
    ``per_seed[method][metric]`` = list over seeds; ``context`` may carry ``quality={method: gate dict}``."""
    from lib.reports import claims, paper_data
    epd, ddpm, bndm = per_seed["edge_preserving"], per_seed["ddpm"], per_seed["bndm"]
    # the paper's numbers (lib/reports/paper_data.yaml): Fig. 4 table FIDs, claim 6's gain range, Tables 4 and 6 (AFHQ-Cat)
    fid = paper_data.table("epd_fig4_sdedit_fid")["afhq_cat"]
    gain = paper_data.table("epd_fig4_sdedit_gain_pct")
    pr = paper_data.table("epd_table4_sdedit_pr")
    clip_paper = paper_data.table("epd_table6_clip")["afhq_cat"]
    out = [
        claims.compare("5a", "epd", "SDEdit stroke-to-image FID: EPD < DDPM (hijack 0.55T; Fig. 4 table)", fd_col,
                       {"edge_preserving": epd[fd_col]}, {"ddpm": ddpm[fd_col]},
                       paper_values={"AFHQ-Cat EPD": fid["edge_preserving"], "AFHQ-Cat DDPM": fid["ddpm"]}, **context),
        claims.compare("5b", "epd", "SDEdit stroke-to-image FID: DDPM < BNDM (hijack 0.55T; Fig. 4 table)", fd_col,
                       {"ddpm": ddpm[fd_col]}, {"bndm": bndm[fd_col]},
                       paper_values={"AFHQ-Cat DDPM": fid["ddpm"], "AFHQ-Cat BNDM": fid["bndm"]}, **context),
    ]
    gains = [100.0 * (d - e) / d for d, e in zip(ddpm[fd_col], epd[fd_col])]
    out.append(claims.within_tolerance("6", "epd", "EPD's SDEdit FID gain over DDPM is about 15-23 %",
                                       f"relative {fd_col} gain (%)", gains, gain["centre"], gain["half_width"],
                                       arms=["edge_preserving", "ddpm"], **context))
    out.append(claims.compare("7", "epd", "SDEdit precision: EPD >= DDPM (Table 4)", "precision",
                              {"ddpm": ddpm["precision"]}, {"edge_preserving": epd["precision"]},
                              paper_values={"AFHQ-Cat EPD": pr["afhq_cat"]["edge_preserving"][0],
                                            "AFHQ-Cat DDPM": pr["afhq_cat"]["ddpm"][0]}, **context))
    rec = claims.compare("8", "epd", "SDEdit recall: EPD > DDPM on AFHQ-Cat, < DDPM on CelebA and Church "
                         "(Table 4); tested here in the AFHQ-Cat direction", "recall",
                         {"ddpm": ddpm["recall"]}, {"edge_preserving": epd["recall"]},
                         paper_values={"AFHQ-Cat EPD": pr["afhq_cat"]["edge_preserving"][1],
                                       "AFHQ-Cat DDPM": pr["afhq_cat"]["ddpm"][1],
                                       "CelebA EPD": pr["celeba"]["edge_preserving"][1],
                                       "CelebA DDPM": pr["celeba"]["ddpm"][1]}, **context)
    out.append(rec)
    if "epd_isotropic" in per_seed:
        out.append(claims.compare("5a-edge", "epd", "the edge effect in SDEdit: EPD has lower stroke-to-image FD "
                                  "than its isotropic control (tau = 1: same sigma_t*eps target, loss and sampler)",
                                  fd_col, {"edge_preserving": epd[fd_col]},
                                  {"epd_isotropic": per_seed["epd_isotropic"][fd_col]}, **context))
    if clip.get("status") == "ok":
        out.append(claims.compare("10", "epd", "SDEdit CLIP score: EPD > DDPM (Table 6)", "CLIP",
                                  {"ddpm": [float(clip["ddpm"])]}, {"edge_preserving": [float(clip["edge_preserving"])]},
                                  paper_values={"AFHQ-Cat EPD": clip_paper["edge_preserving"],
                                                "AFHQ-Cat DDPM": clip_paper["ddpm"]}, **context))
    else:
        e = claims.qualitative("10", "epd", "SDEdit CLIP score: EPD > DDPM (Table 6)", figure="",
                               proxy=None, proxy_verdict=claims.INCONCLUSIVE, **context)
        e.update(metric="CLIP", detail=f"not measured: {clip.get('status')}")
        out.append(e)
    return out


# ---------------------------------------------------------------------------------------------------- tables

GUIDE_UNCHANGED = "guide unchanged"          # the do-nothing baseline: the stroke guide returned as the output
_GUIDE_LABELS = ("guide (no model)", GUIDE_UNCHANGED)


def evaluate_outputs(outputs: Dict[tuple, torch.Tensor], originals: torch.Tensor, dataset: str, data_root=None,
                     guides: Optional[torch.Tensor] = None):
    """Tidy table, one row per (method, seed): FD vs the originals (project extractor), precision/recall, SWD,
    SSIM/RMSE to the paired original. ``outputs`` maps (method, seed) -> images in [-1, 1].

    The table always has the "guide unchanged" baseline (the guides themselves as outputs: what doing nothing
    scores): an ``outputs`` entry named "guide unchanged" (or "guide (no model)"), else added from ``guides``; the column
    ``worse than guide unchanged`` marks each method row whose FD column is above the baseline's."""
    import pandas as pd
    from lib.studies import study
    outputs = dict(outputs)
    if guides is not None and not any(m in _GUIDE_LABELS for m, _ in outputs):
        outputs[(GUIDE_UNCHANGED, next(iter(outputs))[1] if outputs else 0)] = guides
    rows = []
    for (method, seed), x in outputs.items():
        row = study.evaluate(x, originals, dataset, data_root)
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows.append({"method": method, "seed": seed, **scalars, **reconstruction_metrics(x, originals)})
    df = pd.DataFrame(rows)
    col = next((c for c in df.columns if c.startswith(("FD_", "FID_"))), "SWD_mean")
    base = df.loc[df["method"].isin(_GUIDE_LABELS), col]
    if len(base):
        df["worse than guide unchanged"] = [None if m in _GUIDE_LABELS else bool(v > base.mean())
                                            for m, v in zip(df["method"], df[col])]
    return df


def per_seed_values(df, metrics) -> Dict[str, Dict[str, list]]:
    """{method: {metric: [value per seed]}} from the tidy table (seed order preserved)."""
    return {m: {k: sub.sort_values("seed")[k].tolist() for k in metrics} for m, sub in df.groupby("method")}


def outputs_figure(originals: torch.Tensor, guides: torch.Tensor, outputs: Dict[str, torch.Tensor], n: int = 8):
    """Rows: original, stroke guide, then each method's SDEdit output (same n images)."""
    from lib.reports import plots
    rows = {"original": list(originals[:n]), "guide": list(guides[:n]), **{m: list(x[:n]) for m, x in outputs.items()}}
    return plots.strip_figure(rows, [f"#{i}" for i in range(n)], title="SDEdit from k-means stroke paintings")
