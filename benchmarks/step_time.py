"""Training-step and sampling-step time of every process with the same U-Net, measured in one run.

    python benchmarks/step_time.py [--device cpu|cuda] [--resolution 32] [--batch 32] [--channels 3]

Writes results/bench/step_time.csv (+ .md, .json with provenance): per process the median seconds per training
step (forward + loss + backward + Adam) and per reverse sampling step, and both as ratios to DDPM.  Processes
are timed round-robin (every round times each process once, in a rotated order) so slow drifts of the machine
hit all of them alike; the median over rounds is reported with its interquartile range.
The paper's Table 3 (2× Quadro RTX 8000, 128², batch 64): EPD 1.12 vs DDPM 1.11 s/it (ratio 1.009); sampling
301.5 vs 277.5 s per batch of 64 (ratio 1.086).  Goal here: EPD/DDPM ≤ 1.03.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import experiment, io  # noqa: E402
from lib.processes import PROCESSES, make_process  # noqa: E402
from lib.unet import UNet, UNetConfig  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_case(name, c, res, batch, device, T):
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

    def train_step():
        loss = proc.loss(net, x0, generator=gen).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    x = proc.prior(tuple(x0.shape), gen, x0=x0, device=device)
    t, t_prev = proc.sampling_timesteps()[len(proc.sampling_timesteps()) // 2]

    @torch.no_grad()
    def sample_step():
        proc.step(net.eval(), x, t, t_prev, gen)
        net.train()

    return {"train": train_step, "sample": sample_step}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=experiment.default_device())
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=3, help="steps per timing")
    ap.add_argument("--processes", default="all", help="comma-separated names, or 'all'")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "step_time"))
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    names = sorted(PROCESSES) if args.processes == "all" else args.processes.split(",")
    if "ddpm" not in names:
        names = ["ddpm"] + names
    cases = {n: make_case(n, args.channels, args.resolution, args.batch, device, args.T) for n in names}
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

    import pandas as pd
    med = {key: statistics.median(v) for key, v in times.items()}
    rows = []
    for n in names:
        q_tr = statistics.quantiles(times[(n, "train")], n=4)
        rows.append({"process": n, "train_s_per_step": med[(n, "train")],
                     "train_iqr": q_tr[2] - q_tr[0], "train_ratio_to_ddpm": med[(n, "train")] / med[("ddpm", "train")],
                     "sample_s_per_step": med[(n, "sample")],
                     "sample_ratio_to_ddpm": med[(n, "sample")] / med[("ddpm", "sample")]})
    df = pd.DataFrame(rows)
    out = Path(args.out)
    io.write_text(out.with_suffix(".csv"), df.to_csv(index=False))
    io.write_text(out.with_suffix(".md"), df.to_markdown(index=False, floatfmt=".4g") + "\n")
    setting = {"resolution": args.resolution, "channels": args.channels, "batch": args.batch, "T": args.T,
               "unet": "tiny (1.1M params)" if args.resolution <= 64 else "EPD AFHQ-Cat 128² (146M params)",
               "rounds": args.rounds, "steps_per_timing": args.steps, "torch_threads": torch.get_num_threads()}
    epd = df.set_index("process").loc["edge_preserving"] if "edge_preserving" in names else None
    io.write_json(out.with_suffix(".json"), {
        **experiment.provenance("bench", [0], device), "setting": setting, "rows": rows,
        "epd_over_ddpm": None if epd is None else {
            "train": float(epd["train_ratio_to_ddpm"]), "sample": float(epd["sample_ratio_to_ddpm"]),
            "goal": 1.03, "paper_train": 1.12 / 1.11, "paper_sample": 301.5 / 277.5}})
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
