"""Training-step and sampling-step time of every process with the same U-Net, measured in one run.

    python benchmarks/step_time.py [--device cpu|cuda] [--resolution 32|128] [--batch 32] [--channels 3]
                                   [--processes ddpm,edge_preserving,...|all] [--full-sample] [--out PATH]

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
the tiny U-Net, larger resolutions the EPD paper's 128² U-Net.  On CUDA the steps run under bf16 autocast, as
``lib.train`` does (``--no-amp``: float32).
The paper's Table 3 (2× Quadro RTX 8000, 128², batch 64): EPD 1.12 vs DDPM 1.11 s/it (ratio 1.009); sampling
301.5 vs 277.5 s per batch of 64 (ratio 1.086).  Goal here: EPD/DDPM ≤ 1.03.
"""
from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import experiment, io  # noqa: E402
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


def make_case(name, c, res, batch, device, T, amp):
    over = {"T": T} if name in ("ddpm", "edge_preserving") else {}
    proc = make_process(name, **over)
    torch.manual_seed(0)
    cfg = UNetConfig.tiny(in_channels=c) if res <= 64 else UNetConfig.epd_afhq128(in_channels=c)
    net = UNet(UNetConfig.from_dict({**cfg.to_dict(), "out_channels": proc.out_channels(c)})).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    g = torch.Generator("cpu").manual_seed(0)
    x0 = (torch.rand(batch, c, res, res, generator=g) * 2 - 1).to(device)
    proc.fit_prior(x0)
    gen = torch.Generator(device).manual_seed(1)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext

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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=experiment.default_device())
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=3, help="steps per timing")
    ap.add_argument("--processes", default=DEFAULT_PROCESSES, help="comma-separated names, or 'all'")
    ap.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (default: bf16 autocast)")
    ap.add_argument("--full-sample", action="store_true", help="also time one full reverse run per process")
    ap.add_argument("--fid-images", type=int, default=256, help="images for the FID extraction rate (0: skip)")
    ap.add_argument("--fid-batch", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "step_time"))
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    amp = cuda and not args.no_amp
    dev_name = experiment.device_name(device)
    names = sorted(PROCESSES) if args.processes == "all" else args.processes.split(",")
    if "ddpm" not in names:
        names = ["ddpm"] + names
    cases = {n: make_case(n, args.channels, args.resolution, args.batch, device, args.T, amp) for n in names}
    times = {(n, k): [] for n in names for k in ("train", "sample")}
    for n in names:  # warm-up (allocator, caches, Cholesky factors)
        for k in ("train", "sample"):
            cases[n][k]()
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            for k in ("train", "sample"):
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    cases[n][k]()
                _sync(device)
                times[(n, k)].append((time.perf_counter() - t0) / args.steps)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)

    peak = {}
    for n in names:  # peak memory of one step of each kind, measured apart from the timing
        for k in ("train", "sample"):
            if cuda:
                _sync(device)
                torch.cuda.reset_peak_memory_stats(device)
                cases[n][k]()
                _sync(device)
                peak[(n, k)] = torch.cuda.max_memory_allocated(device) / 2 ** 20
            else:
                peak[(n, k)] = None
    full = {}
    if args.full_sample:
        for n in names:
            _sync(device)
            t0 = time.perf_counter()
            cases[n]["full_sample"]()
            _sync(device)
            full[n] = time.perf_counter() - t0
    peak_tflops = bf16_peak(dev_name) if cuda else None

    import pandas as pd
    med = {key: statistics.median(v) for key, v in times.items()}
    rows = []
    for n in names:
        q_tr = statistics.quantiles(times[(n, "train")], n=4) if len(times[(n, "train")]) > 1 else [0, 0, 0]
        tr, sa = med[(n, "train")], med[(n, "sample")]
        fwd = cases[n]["flops"]()
        tflops = 3 * fwd / tr / 1e12
        steps = cases[n]["n_sample_steps"]
        rows.append({"process": n, "train_ms_per_step": 1e3 * tr, "train_iqr_ms": 1e3 * (q_tr[2] - q_tr[0]),
                     "train_images_per_s": args.batch / tr, "train_ratio_to_ddpm": tr / med[("ddpm", "train")],
                     "sample_ms_per_step": 1e3 * sa, "sample_ratio_to_ddpm": sa / med[("ddpm", "sample")],
                     "sample_steps": steps, "sample_s_per_batch_est": sa * steps,
                     "sample_s_per_batch_full": full.get(n),
                     "train_peak_mib": peak[(n, "train")], "sample_peak_mib": peak[(n, "sample")],
                     "fwd_gflop_per_batch": fwd / 1e9, "train_tflops": tflops,
                     "train_mfu_bf16": None if peak_tflops is None else tflops / peak_tflops})
    df = pd.DataFrame(rows).astype(object)
    for col in ("train_peak_mib", "sample_peak_mib", "train_mfu_bf16"):
        df[col] = df[col].where(df[col].notna(), "n/a")
    df["sample_s_per_batch_full"] = df["sample_s_per_batch_full"].where(df["sample_s_per_batch_full"].notna(),
                                                                        "not run")
    out = Path(args.out)
    io.write_text(out.with_suffix(".csv"), df.to_csv(index=False))
    io.write_text(out.with_suffix(".md"), f"device: {dev_name}; {args.resolution}², batch {args.batch}, "
                  f"{'bf16 autocast' if amp else 'float32'}\n\n" + df.to_markdown(index=False, floatfmt=".4g") + "\n")
    setting = {"resolution": args.resolution, "channels": args.channels, "batch": args.batch, "T": args.T,
               "unet": "tiny (1.1M params)" if args.resolution <= 64 else "EPD AFHQ-Cat 128² (146M params)",
               "dtype": "bf16 autocast" if amp else "float32",
               "rounds": args.rounds, "steps_per_timing": args.steps, "torch_threads": torch.get_num_threads()}
    fid = fid_extraction_rate(device, args.resolution, args.fid_images, args.fid_batch) if args.fid_images else None
    epd = df.set_index("process").loc["edge_preserving"] if "edge_preserving" in names else None
    io.write_json(out.with_suffix(".json"), {
        **experiment.provenance("bench", [0], device), "device_name": dev_name, "setting": setting, "rows": rows,
        "memory": ("CUDA max_memory_allocated per step (MiB)" if cuda else
                   {"per_process": "n/a on CPU", "peak_rss_mib_whole_run":
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
        "flops": {"train_step": "3 × forward FLOPs (lib.unet.measure_flops; conv/matmul/attention only)",
                  "device_bf16_peak_tflops": peak_tflops,
                  "peak_note": "dense bf16 tensor-core peak (H100 SXM / H200: 989); n/a off CUDA or unknown GPU"},
        "fid_extraction": fid,
        "epd_over_ddpm": None if epd is None else {
            "train": float(epd["train_ratio_to_ddpm"]), "sample": float(epd["sample_ratio_to_ddpm"]),
            "goal": 1.03, "paper_train": 1.12 / 1.11, "paper_sample": 301.5 / 277.5}})
    print(f"device: {dev_name}")
    print(df.to_string(index=False))
    if fid:
        print(f"FID extraction: {fid['images_per_s']:.1f} images/s ({fid['extractor']})")
    return rows


if __name__ == "__main__":
    main()
