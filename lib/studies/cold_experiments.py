"""Cold Diffusion study notebooks (issue #6): which process each experiment uses, and the measurements.

The notebooks ``cold_degradations``, ``cold_restoration``, ``cold_algorithm1_vs_2``, ``cold_generation_blur``,
``cold_generation_noise`` and ``cold_generation_other`` stay thin and call this module.

Set-up.  ``setup(notebook, profile=..., ...)`` (keyword-only) gives the profile, device, Run folder and the
fit / held-out data as a frozen ``ColdSetup`` (``lib.studies.setup``).

Processes.  ``restoration_process(kind, dataset, profile)`` / ``generation_process(kind, dataset, profile)`` give
the README settings of cold_spec.md §3-§4 for the dataset (MNIST and CIFAR-10 have README restoration presets;
generation presets exist only at CelebA/AFHQ 128², so 32² generation uses the *scaled* settings of
``GENERATION_32`` below, documented there).  ``overrides`` replace single config fields (e.g. a smaller T at
quick scale, from notebooks/params/<profile>.yaml).  Under the smoke profile every T is cut to at most 5.

Sharing.  Fields that act only at sampling time (``algorithm``, ``prior_noise``, ``noise_mode``, ``generation``
of the SR model) never enter the *training* config: a model is trained once with the canonical config
(``study.train_model`` caches it by content key) and ``variant(process, **fields)`` builds the sampling arms.
So the blur restoration model of ``cold_restoration`` is the one ``cold_algorithm1_vs_2`` measures.

Layout.  This module: processes, forward sequences, restoration (arms, metrics, tables, learning curves,
claims); ``lib/studies/cold_oracles.py``: Algorithm 1 vs 2 under oracle errors; ``lib/studies/cold_generation.py``: the
generation notebooks.  Names of the two parts are reachable here too (``ce.stability_claims``).

Restoration flow (cold_restoration):
    trained = train_restorers(procs, train_ds, prof, seeds, dev)               # {kind: {seed: TrainResult}}
    outputs, all_metrics = restoration_per_seed(procs, trained, x0, dataset, prof, dev, data_root)
    curves = restoration_curves(procs, trained, x0, dev)                       # direct-x̂0 RMSE at 4+ checkpoints
    table = restoration_table(all_metrics, dataset)                            # + the paper's columns
    claims = restoration_claims(all_metrics, ctx, "restoration_<kind>.png", curves=curves)

Replicates.  Restoration direction claims compare per-*training-seed* values, paired by seed
(``train_restorers`` / ``restoration_per_seed`` train one model per entry of ``seeds``; quick.yaml gives 3).
With one training seed the rows fall back to disjoint held-out subsets of that model and say so
(``replicates="eval subsets"``); generation rows over sampling seeds of one model say ``"sampling seeds"``.

Baselines and gates.  Restoration tables carry the degraded input x_T and the direct R(x_T, T) beside
Algorithms 1 and 2, Algorithm 1 with x̂0 clamped to [-1, 1] each step (sensitivity row, Q3) and the paper's
numbers (``PAPER``).  Comparisons between restoration arms are "not testable at this scale" when x_T keeps no
structure (SSIM(x_T, x0) < ``MIN_XT_SSIM``: every arm returns the same blob).  Generation claims are gated on
diversity (``diversity_gate``: recall of the improved P/R and, on digits, distinct classes found by the digit
classifier).

MNIST blur.  The paper's MNIST deblurring uses 40 steps, the README (code) T = 20, both with a constant
σ = 7 px, K = 11 kernel, circular padding (cold_spec §3.1, Q8).  At 32² an 11×11 kernel with σ = 7 is almost a
box filter: after 20 (or 40) passes x_T is the image mean everywhere (measured on 256 held-out digits:
SSIM(x_T, x0) = 0.015 at T = 20 and 0.014 at T = 40; per-image pixel std 0.006 and 0.000), so Degraded,
Direct, Algorithm 1 and Algorithm 2 all return one blob and COLD-1/5 test nothing.  We therefore run MNIST
blur with the preset ``mnist_structured`` (T = 20, constant σ = 1.0 px, K = 11: total σ ≈ √20 ≈ 4.5 px,
SSIM(x_T, x0) = 0.13, pixel std 0.19 — about the information CIFAR-10's special_6 preset leaves, SSIM 0.15).
The README setting stays available as ``process_overrides: {blur: {blur_std: 7.0}}`` (or preset "mnist"); run
that way, the arm comparisons are marked not testable by the x_T-structure gate above.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from lib.reports import claims as claims_lib
from lib.reports import paper_data
from lib import rng as rng_lib
from lib.processes import PROCESSES, make_process
from lib.profiles import Profile, get_profile
from lib.studies.setup import ColdSetup

PAPER = "Cold Diffusion (Bansal et al. 2022)"

# Restoration: (process, preset per dataset) — cold_spec.md §3 README settings.
RESTORATION = {
    "blur": ("cold_blur", {"mnist": "mnist_structured", "cifar10": "cifar10", "celeba": "celeba"}),  # see above
    "inpaint": ("cold_inpaint", {"mnist": "mnist", "cifar10": "cifar10", "celeba": "celeba"}),
    "sr": ("cold_sr", {"mnist": "mnist", "cifar10": "cifar10", "celeba": "celeba"}),
    "snow": ("cold_snow", {"mnist": "cifar10", "cifar10": "cifar10", "celeba": "celeba"}),
    "desaturate": ("cold_desaturate", {"mnist": "cifar10", "cifar10": "cifar10", "celeba": "celeba"}),
}

# Generation at 32² (no README setting exists below 128²; cold_spec §4 scaled down, [inferred]):
#   blur  -- the celeba_generation routine (exponential σ_i = e^{rate·i}, circular, discrete: last step = channel
#            mean, GMM with 1 component, noise 0.002); T 300 -> 20 and K 27 -> 11 for CPU, rate 0.01 -> 0.08 so
#            that σ spans 1 -> 4.6 px at 32² (≈ the 1 -> 20 px of 128² scaled by 1/4);
#   noise -- cosine schedule, T 200 -> 20;
#   inpaint_gen -- centred colour fill, T 750 -> 20, kernel_std 0.05 -> 0.5 (the masks cover 32² in 20 steps);
#   sr    -- T = 4: 32² -> 2² (the paper's "2×2" final state), GMM with 10 components (code default, §4.2).
GENERATION_32 = {
    "blur": ("cold_blur", dict(T=20, blur_routine="exponential", blur_size=11, blur_std=0.08, discrete=True,
                               generation=True, prior_noise=0.002, gmm_components=1)),
    "noise": ("cold_noise", dict(T=20)),
    "inpaint_gen": ("cold_inpaint_gen", dict(T=20, kernel_std=0.5, initial_mask=1)),
    "sr": ("cold_sr", dict(T=4, generation=True, gmm_components=10)),
}
SMOKE_T = 5


def cold_profile(name: str, overrides: Optional[dict] = None) -> Profile:
    """The profile with the notebook's ``profile_overrides`` (lists become tuples)."""
    ov = {k: tuple(v) if isinstance(v, list) else v for k, v in (overrides or {}).items()}
    return get_profile(name, **ov)


def setup(notebook: str, *, profile: str, dataset: str = "mnist", data_root: str = "", max_images: int = 0,
          seeds: Sequence[int] = (0,), device: str = "auto", threads: int = 0,
          profile_overrides: Optional[dict] = None, tag: str = "", train_data: bool = True) -> ColdSetup:
    """A Cold notebook's profile (``cold_profile``), device, torch threads (``set_threads``), Run folder and data.

    Every argument after the notebook name is keyword-only.  Loads the "fit" split (unless ``train_data=False``:
    notebooks without a model) and the "heldout" split, at most ``max_images`` each (0: all); ``x_held`` is the
    held-out split shuffled with a fixed seed, since the split is stored class-sorted (``held_ds`` keeps the
    stored order).  ``C``, ``R``: channels and resolution; ``ctx``: ``claim_context(dataset, R, prof)``."""
    from lib import data, experiment
    prof = cold_profile(profile, profile_overrides)
    dev = experiment.default_device() if device == "auto" else device
    set_threads(threads, dev)
    run = experiment.Run(notebook, experiment.result_folder(profile, tag), list(seeds), dev)
    load = dict(data_root=data_root or None, max_images=max_images or None)
    train_ds = data.load_dataset(dataset, split="fit", **load) if train_data else None
    held_ds = data.load_dataset(dataset, split="heldout", **load)
    x_train = train_ds.float() if train_ds is not None else None
    x_held = held_ds.float()
    x_held = x_held[torch.randperm(len(x_held), generator=torch.Generator().manual_seed(0))]
    C, R = x_held.shape[1], x_held.shape[-1]
    return ColdSetup(prof=prof, dev=dev, run=run, dataset=dataset, data_root=data_root or None, seeds=list(seeds),
                     train_ds=train_ds, held_ds=held_ds, x_train=x_train, x_held=x_held, C=C, R=R,
                     ctx=claim_context(dataset, R, prof))


def _finish(name: str, cfg: dict, profile: Profile, overrides: Optional[dict]):
    cfg = {**cfg, **(overrides or {})}
    if profile.name == "smoke":
        cfg["T"] = min(cfg.get("T", PROCESSES[name].config_cls.T), SMOKE_T)
        if name == "cold_inpaint_gen":
            cfg["kernel_std"] = PROCESSES[name].small_overrides["kernel_std"]
    return make_process(name, **cfg)


def restoration_process(kind: str, dataset: str, profile: Profile, overrides: Optional[dict] = None):
    """The README restoration setting of ``kind`` for ``dataset`` (training config: Algorithm 2, no noise)."""
    name, presets = RESTORATION[kind]
    cfg = PROCESSES[name].config_cls.PRESETS[presets.get(dataset, "cifar10")]
    return _finish(name, dict(cfg), profile, overrides)


def generation_process(kind: str, dataset: str, profile: Profile, overrides: Optional[dict] = None):
    """The 32² generation setting (GENERATION_32); ``overrides`` replace fields."""
    name, cfg = GENERATION_32[kind]
    return _finish(name, dict(cfg), profile, overrides)


SAMPLING_FIELDS = ("algorithm", "prior_noise", "subtract_prior_noise", "noise_mode", "generation", "clamp")
MIN_XT_SSIM = 0.05        # below this SSIM(x_T, x0) the degraded input is structureless (restoration arms coincide)


def variant(process, **fields):
    """The same process with sampling-time fields replaced (the degradation and fitted priors are shared)."""
    bad = set(fields) - set(SAMPLING_FIELDS)
    if bad:
        raise ValueError(f"variant() changes sampling-time fields only {SAMPLING_FIELDS}, got {sorted(bad)}")
    new = type(process)(dataclasses.replace(process.config, **fields))
    for attr in ("D", "gmm", "_fixed"):
        if hasattr(process, attr):
            setattr(new, attr, getattr(process, attr))
    return new


def skipped_kinds(kinds: Sequence[str], channels: int) -> Dict[str, str]:
    """Degradations that are meaningless for the data, with the reason (desaturation of 1-channel images)."""
    return {k: "desaturation is the identity on 1-channel (grayscale) images: nothing to restore"
            for k in kinds if k == "desaturate" and channels == 1}


# ----------------------------------------------------------------------------------------------------------
# Forward sequences.

def forward_sequence(process, x0: torch.Tensor, n_cols: int = 7, seed: int = 0) -> tuple:
    """D(x0, s; z) at s = round(j·T/(n_cols-1)), j = 0..n_cols-1 (same latent z) -> (list of [B,C,H,W], severities)."""
    T = process.num_steps
    sev = [int(round(v)) for v in np.linspace(0, T, n_cols)]
    z = process.run_latent(x0.shape, rng_lib.stacked(seed, range(len(x0))), x0.device)
    return [process.degrade(x0, s, z).clamp(-1, 1) for s in sev], sev


def sequence_rows(seqs: Dict[str, tuple], image: int = 0) -> Dict[str, list]:
    """{name (T): [C,H,W] images of one example} for plots.strip_figure (columns: s = j·T/(n-1))."""
    return {f"{n}\nT={sev[-1]}": [x[image] for x in states] for n, (states, sev) in seqs.items()}


def column_labels(n_cols: int = 7) -> List[str]:
    return [f"s = {j}/{n_cols - 1}·T" for j in range(n_cols)]


def set_threads(n: int, device) -> None:
    """torch CPU threads (1 avoids oversubscription on a shared small machine; 0 keeps torch's default)."""
    if n and str(device) == "cpu":
        torch.set_num_threads(int(n))


# ----------------------------------------------------------------------------------------------------------
# Restoration.

@torch.no_grad()
def restore(process, net, x0: torch.Tensor, seed: int, batch: int = 128, device="cpu",
            callback_factory: Optional[Callable] = None) -> Dict[str, torch.Tensor]:
    """Degraded x_T, direct R(x_T, T), Algorithm 1 (plain and with x̂0 and x_s clamped to [-1, 1] each step, Q3),
    Algorithm 2 outputs x_0, and R(x_1, 1) of Algorithm 2 (Q5).

    Image i uses the latent of (seed, i) in every arm, so the arms see the same degraded image."""
    from lib.sampling import sample
    net = net.to(device).eval()
    arms = {"alg1": variant(process, algorithm=1), "alg1_clamped": variant(process, algorithm=1, clamp=True),
            "alg2": variant(process, algorithm=2)}
    out = {k: [] for k in RESTORATION_ARMS}
    for lo in range(0, len(x0), batch):
        xb = x0[lo:lo + batch].to(device)
        gen = rng_lib.stacked(seed, range(lo, lo + len(xb)), device=device)
        x_T = process.prior(tuple(xb.shape), gen, x0=xb, device=device)
        out["degraded"].append(x_T.cpu())
        out["direct"].append(process.restore_direct(lambda x, t: net(x, t).float(), x_T).cpu())
        for a, proc in arms.items():
            last = {}
            cb = (lambda t, x, x0h: last.__setitem__("x0", x0h)) if callback_factory is None else \
                callback_factory(a, xb, last)
            out[a].append(sample(proc, net, xb.shape, gen, x_init=x_T, device=device, callback=cb,
                                 progress=False).cpu())
            if a == "alg2":
                out["alg2_last_x0"].append(last["x0"].cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def subsets(n: int, k: int = 3) -> List[np.ndarray]:
    """k disjoint index blocks covering range(n) (the replicates of one model's restoration metrics)."""
    return [a for a in np.array_split(np.arange(n), k) if len(a)]


def restoration_metrics(outputs: Dict[str, torch.Tensor], x0: torch.Tensor, dataset: str,
                        data_root: Optional[str] = None, n_sub: int = 3) -> Dict[str, dict]:
    """{arm: FD column, SSIM, RMSE over all images, and the same per disjoint image subset} against the originals.

    FD uses ``study.extractor_for`` (Inception if present, else the project classifier); without an extractor
    the column is the Laplacian-pyramid SWD.  Features are computed once per arm and reused for the subsets."""
    from lib import metrics
    from lib.studies import study
    ext = study.extractor_for(dataset, data_root)
    subs = subsets(len(x0), n_sub)
    if ext is not None:
        col, ref = ext.name, ext.features(x0)
        dist = lambda f, i: float(metrics.fid_from_features(f[i], ref[i]))
    else:
        col = "SWD_mean"
        dist = lambda x, i: float(metrics.swd(x0[i], x[i])["mean"])
    res = {}
    for arm, x in outputs.items():
        ss, rm = metrics.ssim(x, x0), metrics.rmse(x, x0)
        f = ext.features(x) if ext is not None else x
        everything = np.arange(len(x0))
        res[arm] = {"SSIM": float(ss.mean()), "RMSE": float(rm.mean()), col: dist(f, everything), "fd_column": col,
                    "n": int(len(x0)), "per_subset": {"SSIM": [float(ss[i].mean()) for i in subs],
                                                     "RMSE": [float(rm[i].mean()) for i in subs],
                                                     col: [dist(f, i) for i in subs]}}
    return res


RESTORATION_ARMS = ("degraded", "direct", "alg1", "alg1_clamped", "alg2", "alg2_last_x0")
# Column-group names: the paper's (Table 1/2: Degraded, Sampled, Direct) where it has the arm, ours otherwise.
ARM_LABELS = {"degraded": "Degraded", "direct": "Direct", "alg1": "Algorithm 1",
              "alg1_clamped": "Algorithm 1 (x̂0 clamped)", "alg2": "Sampled",
              "alg2_last_x0": "R(x_1,1) of Sampled (code, Q5)"}

# The paper's numbers are data: lib/reports/paper_data.yaml ("cold_restoration", "cold_table_names"; cold_spec §6.2,
# [3rd-party card], arXiv v1; Inception FID at paper scale, so not comparable in value with our FD columns; "nf"
# cells are absent).  Keys: (degradation, dataset) -> {"<paper column group> <metric>": value}, the paper's own
# row/column names.
PAPER_RESTORATION = {(kind, dataset): cells for kind, by_dataset in paper_data.table("cold_restoration").items()
                     for dataset, cells in by_dataset.items()}
PAPER_TABLE_NAMES = paper_data.table("cold_table_names")


def per_seed_form(all_metrics: dict) -> Dict[str, Dict[int, dict]]:
    """{kind: {seed: restoration_metrics}}; a one-model input {kind: metrics} becomes {kind: {0: metrics}}."""
    return {k: (m if "degraded" not in m else {0: m}) for k, m in all_metrics.items()}


def _arm_values(per_seed: Dict[int, dict], arm: str, metric: str) -> List[float]:
    return [float(m[arm][metric]) for m in per_seed.values()]


def restoration_table(all_metrics: dict, dataset: Optional[str] = None):
    """The paper's layout: one row per degradation, (FD, SSIM, RMSE) per arm (mean over training seeds), the
    SSIM(x_T, x0) of the degraded input, and the paper's numbers (``PAPER_RESTORATION``) in "paper ..." columns
    beside ours.  ``all_metrics`` is {kind: {seed: metrics}} (or {kind: metrics} of one model)."""
    import pandas as pd
    rows = []
    for kind, per_seed in per_seed_form(all_metrics).items():
        first = next(iter(per_seed.values()))
        row = {"degradation": kind, "paper table": PAPER_TABLE_NAMES.get(kind, ""), "training seeds": len(per_seed),
               "n images": first["degraded"]["n"]}
        for arm in RESTORATION_ARMS:
            if arm not in first:
                continue
            col = first[arm]["fd_column"]
            for metric in (col, "SSIM", "RMSE"):
                v = _arm_values(per_seed, arm, metric)
                row[f"{ARM_LABELS[arm]} {metric}"] = float(np.mean(v))
                if len(v) > 1:
                    row[f"{ARM_LABELS[arm]} {metric} sd"] = float(np.std(v, ddof=1))
        for name, val in PAPER_RESTORATION.get((kind, dataset), {}).items():
            row[f"paper {name}"] = val
        rows.append(row)
    return pd.DataFrame(rows)


def qualitative_panels(outputs: Dict[str, torch.Tensor], x0: torch.Tensor, n: int) -> Dict[str, torch.Tensor]:
    panels = {ARM_LABELS[k]: outputs[k][:n] for k in ("degraded", "direct", "alg1", "alg1_clamped", "alg2")
              if k in outputs}
    return {**panels, "ground truth": x0[:n]}


def train_restorers(procs: dict, train_ds, profile: Profile, seeds: Sequence[int], device="cpu") -> Dict[str, dict]:
    """{kind: {seed: TrainResult}}: one restoration network per (degradation, training seed), cached by content."""
    from lib.studies import study
    return {k: {s: study.train_model(p, train_ds, profile, s, device=device, progress=False) for s in seeds}
            for k, p in procs.items()}


def restoration_per_seed(procs: dict, trained: Dict[str, dict], x0: torch.Tensor, dataset: str, profile: Profile,
                         device="cpu", data_root: Optional[str] = None) -> tuple:
    """(outputs {kind: outputs of the first seed}, metrics {kind: {seed: restoration_metrics}}).

    Every seed's model restores the same ``x0`` from the same degraded images (latents of (seed 0, i)), so
    the per-seed values are paired across arms and seeds differ only by the trained network."""
    outs, mets = {}, {}
    for k, p in procs.items():
        mets[k] = {}
        for s, res in trained[k].items():
            o = restore(p, res.ema, x0, 0, profile.sample_batch, device)
            mets[k][s] = restoration_metrics(o, x0, dataset, data_root)
            outs.setdefault(k, o)
    return outs, mets


@torch.no_grad()
def direct_learning_curve(process, result, x0: torch.Tensor, device="cpu", batch: int = 256) -> List[List[float]]:
    """[[step, RMSE, SSIM], ...] of the direct x̂0 = R(x_T, T) on held-out ``x0`` at each EMA snapshot of
    ``result`` (``study.train_model`` keeps 4: 1/4, 1/2, 3/4, 1 of the budget) and at the final EMA."""
    from lib import metrics
    from lib.train import load_snapshot
    nets = {int(st): load_snapshot(result.ema, path) for st, path in sorted(getattr(result, "snapshots", {}).items())}
    nets[int(result.step)] = result.ema.eval()
    curve = []
    for st, net in sorted(nets.items()):
        net = net.to(device).eval()
        outs = []
        for lo in range(0, len(x0), batch):
            xb = x0[lo:lo + batch].to(device)
            x_T = process.prior(tuple(xb.shape), rng_lib.stacked(0, range(lo, lo + len(xb)), device=device), x0=xb,
                                device=device)
            outs.append(process.restore_direct(lambda x, t: net(x, t).float(), x_T).cpu())
        y = torch.cat(outs)
        curve.append([st, float(metrics.rmse(y, x0).mean()), float(metrics.ssim(y, x0).mean())])
    return curve


def restoration_curves(procs: dict, trained: Dict[str, dict], x0: torch.Tensor, device="cpu",
                       n: int = 256) -> Dict[str, list]:
    """{kind: [direct_learning_curve per training seed]} on the first ``n`` held-out images."""
    return {k: [direct_learning_curve(p, res, x0[:n], device) for res in trained[k].values()]
            for k, p in procs.items()}


def curves_figure(curves: Dict[str, list]):
    """Direct-x̂0 RMSE against training step, one panel per degradation, one line per training seed."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 2.8), squeeze=False)
    for ax, (kind, cs) in zip(axes[0], curves.items()):
        for i, c in enumerate(cs):
            c = np.asarray(c)
            ax.plot(c[:, 0], c[:, 1], marker=".", label=f"seed {i}")
        fl = curve_flat(cs)
        ax.set_title(f"{kind}: {'flat' if fl['flat'] else 'not flat'}", fontsize=9)
        ax.set_xlabel("training step"), ax.set_ylabel("RMSE(R(x_T,T), x0)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def curve_flat(curves: Sequence[Sequence[Sequence[float]]]) -> dict:
    """``lib.metrics.quality.flattened`` on the RMSE column of per-seed learning curves ([step, RMSE, SSIM] rows)."""
    from lib.metrics import quality
    fl = quality.flattened([[[c[0], c[1]] for c in curve] for curve in curves])
    if fl.get("reason"):
        fl["reason"] = fl["reason"].replace("final FD", "final RMSE").replace("FD still", "direct-x̂0 RMSE still")
    return fl


def structure_gate(per_seed: Dict[int, dict]) -> Optional[dict]:
    """None when x_T keeps structure; else a failed quality dict (every arm) saying why nothing is testable."""
    ss = float(np.mean(_arm_values(per_seed, "degraded", "SSIM")))
    if ss >= MIN_XT_SSIM:
        return None
    return {"passed": False, "reasons": [f"SSIM(x_T, x0) = {ss:.3f} < {MIN_XT_SSIM}: the degraded input keeps no structure, so "
                        "every restoration arm returns the same blob"]}


def restoration_claims(all_metrics: dict, context: dict, figure: str, curves: Optional[dict] = None) -> List[dict]:
    """C1, C4, C5, C6 (and qualitative C8-C11).  With >= 2 training seeds per degradation the replicates are the
    per-training-seed values, paired by seed across arms; with one model, disjoint held-out subsets of it
    (``replicates="eval subsets"``: capped at inconclusive by ``claims.compare``).

    Gates: comparisons *between restoration arms* (C1, C5, C6) are "not testable at this scale" when x_T keeps no
    structure (``structure_gate``); every row of a degradation is when ``curves`` ({kind: per-seed
    ``direct_learning_curve``s}) show its restoration net had not converged."""
    out = []
    for kind, per_seed in per_seed_form(all_metrics).items():
        first = next(iter(per_seed.values()))
        col = first["alg2"]["fd_column"]
        if len(per_seed) >= 2:
            rep, note = "training seeds", f"replicates: training seeds {list(per_seed)} (one model each), paired by seed"
            vals = lambda arm, metric, ps=per_seed: _arm_values(ps, arm, metric)
        else:
            rep, note = "eval subsets", "replicates: disjoint held-out image subsets of ONE trained model, not training seeds"
            vals = lambda arm, metric, f=first: list(f[arm]["per_subset"][metric])
        fl = curve_flat(curves[kind]) if curves and kind in curves else None
        train_gate = None if fl is None or fl["flat"] else {
            "passed": False, "reasons": [f"restoration net not converged: {fl['reason']}"]}
        xt_gate = structure_gate(per_seed)
        fid = {**context, "paper_metric": "FID (Inception, pytorch-fid)"}
        checked = ("SSIM(x_T, x0) structure; " + ("direct-x̂0 learning curve flat" if fl is not None
                                                   else "learning curve not recorded"))

        def cmp(cid, text, metric, a, b, sign=1.0, between_arms=True, **kw):
            gates = [g for g in (train_gate, xt_gate if between_arms else None) if g is not None]
            ctx = {**fid, **kw.pop("ctx", {})}
            return _compare(cid, PAPER, text, metric, {a: [sign * v for v in vals(a, metric.lstrip("-"))]},
                            {b: [sign * v for v in vals(b, metric.lstrip("-"))]}, note=note, replicates=rep,
                            paired=True, quality=_quality((a, b), gates, checked), **kw, **ctx)

        out += [cmp(f"C4-{kind}-FD", f"{kind}: FD(Sampled, Alg. 2) < FD(Degraded)", col, "alg2", "degraded",
                    between_arms=False),
                cmp(f"C4-{kind}-RMSE", f"{kind}: RMSE(Sampled) < RMSE(Degraded)", "RMSE", "alg2", "degraded",
                    between_arms=False, ctx={"paper_metric": "RMSE"}),
                cmp(f"C4-{kind}-SSIM", f"{kind}: SSIM(Sampled) > SSIM(Degraded)", "-SSIM", "alg2", "degraded",
                    sign=-1.0, between_arms=False, ctx={"paper_metric": "SSIM"}),
                cmp(f"C5-{kind}", f"{kind}: iterative sampling (Alg. 2) has lower FD than direct one-shot R(x_T,T)",
                    col, "alg2", "direct", paper_values=PAPER_RESTORATION.get((kind, context.get("dataset")))),
                cmp(f"C6-{kind}", f"{kind}: direct reconstruction has lower (or equal) RMSE than sampling", "RMSE",
                    "direct", "alg2", ctx={"paper_metric": "RMSE"})]
        if kind == "blur":
            out.append(cmp("C1", "blur: Algorithm 2 restores better than Algorithm 1 (lower FD)", col, "alg2", "alg1"))
            if "alg1_clamped" in first:
                out.append(cmp("C1-clamped", "blur (sensitivity): Algorithm 2 restores better than Algorithm 1 with "
                               "x̂0 clamped to [-1, 1] each step (lower FD)", col, "alg2", "alg1_clamped",
                               ctx={"setting": "sensitivity"}))
        qual = QUALITATIVE_CLAIMS.get(kind)
        if qual:
            gain = [d - a for d, a in zip(vals("degraded", "RMSE"), vals("alg2", "RMSE"))]
            out.append(claims_lib.qualitative(qual[0], PAPER, qual[1], figure.replace("<kind>", kind),
                                              proxy={"metric": "RMSE(Degraded) - RMSE(Sampled)",
                                                     "value": float(np.mean(gain)), "n": len(gain),
                                                     "replicates": rep}, **context))
    return out


def _quality(arms: Sequence[str], failures: List[dict], checked: str = "") -> Dict[str, dict]:
    """The ``quality`` argument of ``claims.compare``: every arm failed with all reasons, or passed (``checked``
    says which checks ran)."""
    if not failures:
        return {a: {"passed": True, "reasons": [], "checked": checked} for a in arms}
    reasons = [r for f in failures for r in f["reasons"]]
    return {a: {"passed": False, "reasons": reasons} for a in arms}


def _compare(*args, note: str = "", **kwargs) -> dict:
    """``claims.compare`` (replicates, pairing, quality gates and proxies are its keywords) plus ``note``, a
    sentence saying what the n values are, kept in the entry and its detail."""
    entry = claims_lib.compare(*args, **kwargs)
    if note:
        entry["replicates_note"] = note
        entry["detail"] = f"{entry['detail']} [{note}]"
    return entry


QUALITATIVE_CLAIMS = {
    "inpaint": ("C8", "inpainting restores plausibly with random mask locations (MNIST/CIFAR-10)"),
    "sr": ("C9", "super-resolution from 4x4 gives plausible images"),
    "snow": ("C10", "snow removal works although snow has no compositional structure"),
    "desaturate": ("C11", "desaturation can be inverted (colourisation) with T = 20"),
}


def claim_context(dataset: str, resolution: int, profile: Profile, extra: str = "") -> dict:
    """The fields every ledger row carries: dataset, resolution, profile and what this scale is."""
    return {"dataset": dataset, "resolution": resolution, "profile": profile.name,
            "scale": f"{profile.note}; Cold set: {profile.train_steps} steps, batch {profile.batch_size}, "
                     f"U-Net width {profile.unet_channels}{'; ' + extra if extra else ''}"}


def float_net(net):
    """net(x, t) -> float32, in eval mode (for the oracle-style step loops)."""
    net = net.eval()
    return lambda x, t: net(x, t).float()


# ----------------------------------------------------------------------------------------------------------
# The degradations notebook.

def gallery_processes(dataset: str, channels: int, profile: Profile) -> dict:
    """Every degradation at its README T (generation ones at the 32² settings); desaturation on colour data only.

    The smoke profile cuts T (``_finish``); quick and above keep the README values (no network is involved)."""
    procs = {k: restoration_process(k, dataset, profile) for k in RESTORATION if skipped_kinds([k], channels) == {}}
    for k in ("noise", "inpaint_gen"):
        procs[k] = generation_process(k, dataset, profile)
    procs["blur_gen"] = generation_process("blur", dataset, profile)
    return procs


def colour_sequence(colour_root: str, profile: Profile, n: int = 1, seed: int = 0):
    """The desaturation sequence on the first ``n`` held-out CIFAR-10 images of ``colour_root``; None (with a
    printed note) when no CIFAR-10 folder is there, so the figure simply has no desaturation row."""
    from lib import data
    try:
        x = data.load_dataset("cifar10", data_root=colour_root, split="test", max_images=n).float()
    except FileNotFoundError as e:
        print(f"desaturation row skipped: {e}")
        return None
    return forward_sequence(restoration_process("desaturate", "cifar10", profile), x, seed=seed)


def degradation_table(procs: dict, seqs: dict, x0: torch.Tensor):
    """Per degradation: process, T, kind of operator and RMSE(D(x0, T), x0) in [0, 1] units."""
    import pandas as pd
    from lib import metrics
    return pd.DataFrame([{"degradation": k, "process": p.name, "T": p.num_steps, "operator": type(p.D).__name__,
                          "RMSE(x_T, x0)": float(metrics.rmse(seqs[k][0][-1], x0).mean())} for k, p in procs.items()])


# ----------------------------------------------------------------------------------------------------------
# The Algorithm 1 vs 2 and generation parts live in lib/studies/cold_oracles.py and lib/studies/cold_generation.py; the notebooks
# reach them through this module (``ce.stability_claims``, ``ce.fd_per_seed``, ...), resolved on first use.

_PARTS = ("lib.studies.cold_oracles", "lib.studies.cold_generation")


def __getattr__(name: str):
    import importlib
    if not name.startswith("__"):
        for part in _PARTS:
            mod = importlib.import_module(part)
            if name in vars(mod):
                return vars(mod)[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
