"""Train one model (one process, one seed) from a profile and a dataset; runs alone or under ``torchrun``.

    python -m lib.train_cli --profile quick --process edge_preserving --dataset mnist --steps 50
    torchrun --standalone --nproc_per_node=8 -m lib.train_cli --profile paper --process edge_preserving \
        --dataset afhq_cat --resolution 128 --data-root DIR --compile auto --samples 30000

Under torchrun every rank joins the process group (NCCL on CUDA, gloo on CPU), the profile's batch is the
*global* batch (split evenly over the ranks), rank 0 writes the checkpoint, and ``--samples`` are generated
split over the ranks and written by rank 0 as ``samples.pt`` (uint8 [N, C, H, W], image i from (seed, i));
``--evaluate`` then scores them against as many training images (``lib.studies.study.evaluate``: FD/FID, precision/recall,
SWD), with the feature extraction split over the ranks, and rank 0 writes ``metrics.json`` beside them.
The checkpoint does not depend on the number of processes: a run may be resumed with a different one.
Without ``--run-dir`` the checkpoint goes where the notebooks look for it (``cache/runs/models/<key>``), so a
model trained here is reused by the notebooks with the same profile, data and code.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lib import distributed, io
from lib.data import load_dataset
from lib.profiles import PROFILES, get_profile
from lib.processes import PROCESSES
from lib.studies.study import evaluate, extractor_for, prior_images, process_for_profile, random_subset, sample_model, train_model


def _value(text: str):
    """A ``--set`` value, read as the notebook runner reads ``-p NAME=VALUE`` (``lib.experiment.parse_value``)."""
    from lib.experiment import parse_value
    return parse_value(text)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick", choices=list(PROFILES))
    ap.add_argument("--process", required=True, choices=sorted(PROCESSES))
    ap.add_argument("--dataset", default="mnist", help="a name of lib.data.DATASETS")
    ap.add_argument("--data-root", default=None, help="folder of the real datasets (env DIFFUSION_DATA_ROOT)")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", default=None, help="checkpoint folder (default: the notebooks' model cache)")
    ap.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
    ap.add_argument("--steps", type=int, default=None, help="override the profile's training steps")
    ap.add_argument("--batch-size", type=int, default=None, help="override the profile's global batch")
    ap.add_argument("--compile", default="off", choices=["off", "on", "auto"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="process config override, e.g. --set edge_norm=image (repeatable)")
    ap.add_argument("--samples", type=int, default=0, help="generate this many images after training")
    ap.add_argument("--evaluate", action="store_true",
                    help="score the --samples against as many training images; writes metrics.json")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.evaluate and not args.samples:
        raise SystemExit("--evaluate scores the generated images: give --samples N as well")
    device = distributed.init_from_env(args.device)
    try:
        profile = get_profile(args.profile)
        overrides = dict(kv.split("=", 1) for kv in args.set)
        process = process_for_profile(args.process, profile, **{k: _value(v) for k, v in overrides.items()})
        load = lambda: load_dataset(args.dataset, data_root=args.data_root, resolution=args.resolution,  # noqa: E731
                                    max_images=args.max_images)
        if distributed.is_main():  # rank 0 fills the decoded-data cache; the others then read it
            data = load()
        distributed.barrier()
        if not distributed.is_main():
            data = load()
        train_over = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v is not None}
        res = train_model(process, data, profile, args.seed, run_dir=Path(args.run_dir) if args.run_dir else None,
                          device=device, progress=not args.no_progress, compile=args.compile, **train_over)
        summary = {"process": args.process, "profile": args.profile, "dataset": args.dataset, "step": res.step,
                   "world_size": distributed.world_size(), "device": str(device),
                   "checkpoint": str(res.checkpoint), "last_log": res.log[-1] if res.log else None}
        if args.samples:
            x = data.images.float() / 127.5 - 1.0
            process.fit_prior(x)
            prior = prior_images(x, args.samples, args.seed)
            imgs = sample_model(process, res.ema, args.samples, tuple(x.shape[1:]), args.seed, profile,
                                device=device, prior_data=prior, progress=not args.no_progress)
            if distributed.is_main():
                out = res.checkpoint.parent / "samples.pt"
                io.torch_save(((imgs + 1) * 127.5).round().clamp(0, 255).to(torch.uint8), out)
                summary["samples"] = str(out)
            if args.evaluate:
                if distributed.is_main():  # trains (or loads) the extractor once; the other ranks load its cache
                    extractor_for(args.dataset, args.data_root)
                distributed.barrier()
                real = random_subset(x, min(len(x), args.samples), seed=0)
                row = evaluate(imgs, real, args.dataset, args.data_root)  # features split over the ranks
                if distributed.is_main():
                    out = res.checkpoint.parent / "metrics.json"
                    io.write_text(out, json.dumps({**summary, "metrics": row}, indent=1, default=str) + "\n")
                    summary["metrics"] = str(out)
        if distributed.is_main():
            print(json.dumps(summary))
    finally:
        distributed.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
