"""Training-step and sampling-step time of every process with the same U-Net, measured in one run.

    python benchmarks/step_time.py [--device cpu|cuda] [--resolution 32|128] [--batch 32] [--channels 3]
                                   [--threads 1] [--precisions fp32,bf16] [--processes ddpm,edge_preserving,...|all]
                                   [--full-sample] [--out PATH]

Writes ``<out>.csv`` (+ .md, .json with provenance and the device name; default results/bench/step_time): per
process the median seconds per training step (forward + loss + backward + Adam) and per reverse sampling step,
both as ratios to DDPM, images/s of training, the sampling time of one batch (the median step times the
number of steps, or with ``--full-sample`` one timed full reverse run), the peak memory (CUDA:
``max_memory_allocated`` of one training and one sampling step; CPU: n/a per process, the whole run's peak RSS
in the JSON), and the achieved TFLOP/s of the training step (3 × the forward FLOPs of ``lib.unet.measure_flops``
per step: the usual backward ≈ 2 × forward estimate; norms and pointwise ops not counted) against the device's
dense bf16 peak where it is known (H100 SXM / H200: 989 TFLOP/s; CPU: n/a).  The JSON also carries the FID
feature-extraction rate (images/s) of the extractor the notebooks use: Inception when its weights are present,
else the offline ``mnistclf`` classifier (named in the output).

Processes are timed round-robin (every round times each process once, in a rotated order) so slow drifts of
the machine hit all of them alike; the median over rounds is reported with its interquartile range.  32×32 uses
the tiny U-Net, larger resolutions the EPD paper's 128² U-Net.  Every (process, precision) pair is a case of the
round-robin: on CUDA bf16 autocast, as ``lib.train`` does (``--no-amp``: float32); on CPU float32 and, where the
CPU computes bf16 natively (``lib.precision``), bf16 autocast too, with each process's bf16/fp32 ratio.  Every ratio
carries a 95 % bootstrap CI over the interleaved rounds (``ratio_ci``) and is printed to the digits the CI
supports.  Threads are set by ``--threads`` (default 1), not read from the environment.
The paper's Table 3 (2× Quadro RTX 8000, 128², batch 64): EPD 1.12 vs DDPM 1.11 s/it (ratio 1.009); sampling
301.5 vs 277.5 s per batch of 64 (ratio 1.086).  Goal here: EPD/DDPM ≤ 1.03.
"""
from __future__ import annotations

import argparse
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import experiment, io  # noqa: E402
from lib import precision as precision_lib  # noqa: E402
from lib.processes import PROCESSES, make_process  # noqa: E402
from lib.unet import UNet, UNetConfig, measure_flops  # noqa: E402

DEFAULT_PROCESSES = "ddpm,edge_preserving,ihdm,bndm,cold_blur"
# Dense bf16 tensor-core peaks (TFLOP/s) by a substring of the device name; H100 is taken to be the SXM part.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0}


def bf16_peak(device_name: str):
    for key, peak in BF16_PEAK_TFLOPS.items():
        if key in device_name:
            return peak
    return None


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_case(name, c, res, batch, device, T, precision):
    over = {"T": T} if name in ("ddpm", "edge_preserving") else {}
    proc = make_process(name, **over)
    torch.manual_seed(0)
    cfg = UNetConfig.tiny(in_channels=c) if res <= 64 else UNetConfig.epd_afhq128(in_channels=c)
    net = UNet(UNetConfig.from_dict({**cfg.to_dict(), "out_channels": proc.out_channels(c)})).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, fused=device.type in ("cuda", "cpu"))   # as lib.train
    g = torch.Generator("cpu").manual_seed(0)
    x0 = (torch.rand(batch, c, res, res, generator=g) * 2 - 1).to(device)
    proc.fit_prior(x0)
    gen = torch.Generator(device).manual_seed(1)
    autocast = lambda: precision_lib.autocast(device, precision)  # noqa: E731  (as lib.train / lib.sampling)

    def train_step():
        with autocast():
            loss = proc.loss(net, x0, generator=gen).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    x = proc.prior(tuple(x0.shape), gen, x0=x0, device=device)
    steps = proc.sampling_timesteps()
    t, t_prev = steps[len(steps) // 2]
    f = lambda x_, t_: net(x_, t_).float()  # noqa: E731  (as lib.sampling does)

    @torch.no_grad()
    def sample_step():
        net.eval()
        with autocast():
            proc.step(f, x, t, t_prev, gen)
        net.train()

    @torch.no_grad()
    def full_sample():
        net.eval()
        y = x
        with autocast():
            for t_, tp_ in steps:
                y = proc.step(f, y, t_, tp_, gen).x_prev
        net.train()

    def forward_flops():
        return measure_flops(net, x0, torch.zeros(batch, device=device))

    return {"train": train_step, "sample": sample_step, "full_sample": full_sample, "flops": forward_flops,
            "n_sample_steps": len(steps)}


def fid_extraction_rate(device, res: int, n: int, batch: int) -> dict:
    """Images/s of the FID feature extractor the notebooks would use on ``device`` (random uint8 images)."""
    from lib import metrics
    if metrics.inception_available():
        ext, label = metrics.get_extractor("inception", device=str(device)), "inception (pytorch-fid weights)"
    else:
        ext = metrics.get_extractor("mnistclf", device=str(device))
        label = "mnistclf (offline digit classifier: the Inception weights are absent)"
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (n, 3, res, res), generator=g, dtype=torch.uint8)
    ext.features(imgs[:batch], batch_size=batch, progress=False)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    ext.features(imgs, batch_size=batch, progress=False)
    _sync(device)
    sec = time.perf_counter() - t0
    return {"extractor": label, "images": n, "batch": batch, "resolution_in": res, "seconds": sec,
            "images_per_s": n / sec}


def ratio_ci(num, den, n_boot: int = 2000, level: float = 0.95, seed: int = 0):
    """median(num)/median(den) and its bootstrap CI over rounds: both lists are indexed by the interleaved round
    they were timed in, and a bootstrap sample resamples whole rounds (pairs), keeping the pairing."""
    a, b = torch.tensor(num, dtype=torch.float64), torch.tensor(den, dtype=torch.float64)
    est = float(a.median() / b.median())
    if len(a) < 2:
        return est, float("nan"), float("nan")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(a), (n_boot, len(a)), generator=g)
    boot = (a[idx].median(dim=1).values / b[idx].median(dim=1).values).sort().values
    lo, hi = boot[int((1 - level) / 2 * n_boot)], boot[int((1 + level) / 2 * n_boot) - 1]
    return est, float(lo), float(hi)


def fmt_ci(est: float, lo: float, hi: float) -> str:
    """'0.67 (0.63–0.74)': as many decimals as the CI's half-width supports (its first significant digit)."""
    if not math.isfinite(lo) or hi <= lo:
        return f"{est:.3g}"
    d = max(0, -math.floor(math.log10((hi - lo) / 2)))
    return f"{est:.{d}f} ({lo:.{d}f}–{hi:.{d}f})"


def default_precisions(device: torch.device, no_amp: bool) -> list:
    """CUDA: bf16 (fp32 with --no-amp); CPU: fp32, plus bf16 where the CPU has native bf16 (lib.precision)."""
    if device.type == "cuda":
        return ["fp32"] if no_amp else ["bf16"]
    return ["fp32", "bf16"] if precision_lib.cpu_bf16_supported() and not no_amp else ["fp32"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=experiment.default_device())
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=3, help="steps per timing")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (set, not read from the environment)")
    ap.add_argument("--processes", default=DEFAULT_PROCESSES, help="comma-separated names, or 'all'")
    ap.add_argument("--precisions", default="default",
                    help="comma-separated fp32,bf16; default: CPU fp32 (+ bf16 where native), CUDA bf16")
    ap.add_argument("--no-amp", action="store_true", help="float32 only (default precisions)")
    ap.add_argument("--full-sample", action="store_true", help="also time one full reverse run per process")
    ap.add_argument("--fid-images", type=int, default=256, help="images for the FID extraction rate (0: skip)")
    ap.add_argument("--fid-batch", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "step_time"))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    precs = (default_precisions(device, args.no_amp) if args.precisions == "default"
             else [precision_lib.resolve(p, device) for p in args.precisions.split(",")])
    base_prec = precs[0]
    dev_name = experiment.device_name(device)
    names = sorted(PROCESSES) if args.processes == "all" else args.processes.split(",")
    if "ddpm" not in names:
        names = ["ddpm"] + names
    keys = [(n, p) for p in precs for n in names]
    cases = {(n, p): make_case(n, args.channels, args.resolution, args.batch, device, args.T, p) for n, p in keys}
    times = {(c, k): [] for c in keys for k in ("train", "sample")}
    for c in keys:  # warm-up (allocator, caches, Cholesky factors, oneDNN bf16 primitives)
        for k in ("train", "sample"):
            cases[c][k]()
    for r in range(args.rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for c in order:
            for k in ("train", "sample"):
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    cases[c][k]()
                _sync(device)
                times[(c, k)].append((time.perf_counter() - t0) / args.steps)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)

    peak = {}
    for c in keys:  # peak memory of one step of each kind, measured apart from the timing
        for k in ("train", "sample"):
            if cuda:
                _sync(device)
                torch.cuda.reset_peak_memory_stats(device)
                cases[c][k]()
                _sync(device)
                peak[(c, k)] = torch.cuda.max_memory_allocated(device) / 2 ** 20
            else:
                peak[(c, k)] = None
    full = {}
    if args.full_sample:
        for c in keys:
            _sync(device)
            t0 = time.perf_counter()
            cases[c]["full_sample"]()
            _sync(device)
            full[c] = time.perf_counter() - t0
    peak_tflops = bf16_peak(dev_name) if cuda else None

    import pandas as pd
    med = {key: statistics.median(v) for key, v in times.items()}
    rows = []
    for n, p in keys:
        c = (n, p)
        q_tr = statistics.quantiles(times[(c, "train")], n=4) if len(times[(c, "train")]) > 1 else [0, 0, 0]
        tr, sa = med[(c, "train")], med[(c, "sample")]
        fwd = cases[c]["flops"]()
        tflops = 3 * fwd / tr / 1e12
        steps = cases[c]["n_sample_steps"]
        r_tr = ratio_ci(times[(c, "train")], times[((("ddpm", p)), "train")])
        r_sa = ratio_ci(times[(c, "sample")], times[((("ddpm", p)), "sample")])
        row = {"process": n, "precision": p, "train_ms_per_step": 1e3 * tr, "train_iqr_ms": 1e3 * (q_tr[2] - q_tr[0]),
               "train_images_per_s": args.batch / tr,
               "train_ratio_to_ddpm": r_tr[0], "train_ratio_to_ddpm_ci": list(r_tr[1:]),
               "train_ratio_to_ddpm_str": fmt_ci(*r_tr),
               "sample_ms_per_step": 1e3 * sa, "sample_ratio_to_ddpm": r_sa[0],
               "sample_ratio_to_ddpm_ci": list(r_sa[1:]), "sample_ratio_to_ddpm_str": fmt_ci(*r_sa),
               "sample_steps": steps, "sample_s_per_batch_est": sa * steps,
               "sample_s_per_batch_full": full.get(c),
               "train_peak_mib": peak[(c, "train")], "sample_peak_mib": peak[(c, "sample")],
               "fwd_gflop_per_batch": fwd / 1e9, "train_tflops": tflops,
               "train_mfu_bf16": None if peak_tflops is None else tflops / peak_tflops}
        if p != base_prec:   # the speed-up of this precision over the first one (fp32), same process, paired rounds
            for k in ("train", "sample"):
                r = ratio_ci(times[(c, k)], times[((n, base_prec), k)])
                row[f"{k}_ratio_to_{base_prec}"], row[f"{k}_ratio_to_{base_prec}_ci"] = r[0], list(r[1:])
                row[f"{k}_ratio_to_{base_prec}_str"] = fmt_ci(*r)
        rows.append(row)
    shown = [k for k in rows[0] if not k.endswith("_ci") and not (k.endswith("_ratio_to_ddpm") or
                                                                  k.endswith(f"_ratio_to_{base_prec}"))]
    shown += [k for k in (f"train_ratio_to_{base_prec}_str", f"sample_ratio_to_{base_prec}_str")
              if any(k in r for r in rows)]
    df = pd.DataFrame([{k: r.get(k) for k in shown} for r in rows]).astype(object)
    for col in ("train_peak_mib", "sample_peak_mib", "train_mfu_bf16", f"train_ratio_to_{base_prec}_str",
                f"sample_ratio_to_{base_prec}_str"):
        if col in df:
            df[col] = df[col].where(df[col].notna(), "n/a")
    df["sample_s_per_batch_full"] = df["sample_s_per_batch_full"].where(df["sample_s_per_batch_full"].notna(),
                                                                        "not run")
    out = Path(args.out)
    io.write_text(out.with_suffix(".csv"), df.to_csv(index=False))
    io.write_text(out.with_suffix(".md"), f"device: {dev_name}; {args.resolution}², batch {args.batch}, "
                  f"{args.threads} thread(s), precisions {', '.join(precs)}; ratios: median ratio with a 95 % "
                  f"bootstrap CI over {args.rounds} interleaved rounds\n\n"
                  + df.to_markdown(index=False, floatfmt=".4g") + "\n")
    setting = {"resolution": args.resolution, "channels": args.channels, "batch": args.batch, "T": args.T,
               "unet": "tiny (1.1M params)" if args.resolution <= 64 else "EPD AFHQ-Cat 128² (146M params)",
               "precisions": precs, "cpu_bf16_native": precision_lib.cpu_bf16_supported(),
               "optimizer": "Adam(fused=True)", "rounds": args.rounds, "steps_per_timing": args.steps,
               "torch_threads": torch.get_num_threads(),
               "ratio_ci": "95 % percentile bootstrap of median(a)/median(b), resampling whole interleaved rounds"}
    fid = fid_extraction_rate(device, args.resolution, args.fid_images, args.fid_batch) if args.fid_images else None
    by = {(r["process"], r["precision"]): r for r in rows}
    epd = by.get(("edge_preserving", base_prec))
    speedup = {f"{n}": {k: {"ratio": by[(n, p)][f"{k}_ratio_to_{base_prec}"],
                            "ci95": by[(n, p)][f"{k}_ratio_to_{base_prec}_ci"]} for k in ("train", "sample")}
               for n, p in keys if p != base_prec}
    io.write_json(out.with_suffix(".json"), {
        **experiment.provenance("bench", [0], device), "device_name": dev_name, "setting": setting, "rows": rows,
        "memory": ("CUDA max_memory_allocated per step (MiB)" if cuda else
                   {"per_process": "n/a on CPU", "peak_rss_mib_whole_run":
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
        "flops": {"train_step": "3 × forward FLOPs (lib.unet.measure_flops; conv/matmul/attention only)",
                  "device_bf16_peak_tflops": peak_tflops,
                  "peak_note": "dense bf16 tensor-core peak (H100 SXM / H200: 989); n/a off CUDA or unknown GPU"},
        "fid_extraction": fid,
        f"precision_over_{base_prec}": speedup or None,
        "epd_over_ddpm": None if epd is None else {
            "precision": base_prec, "train": epd["train_ratio_to_ddpm"], "train_ci95": epd["train_ratio_to_ddpm_ci"],
            "sample": epd["sample_ratio_to_ddpm"], "sample_ci95": epd["sample_ratio_to_ddpm_ci"],
            "goal": 1.03, "paper_train": 1.12 / 1.11, "paper_sample": 301.5 / 277.5}})
    print(f"device: {dev_name}")
    print(df.to_string(index=False))
    if fid:
        print(f"FID extraction: {fid['images_per_s']:.1f} images/s ({fid['extractor']})")
    return rows


if __name__ == "__main__":
    main()
