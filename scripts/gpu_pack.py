"""Pack what a remote GPU run needs into one small git-ignored folder, and print the command to run there.

    python scripts/gpu_pack.py                                  # default plan below, from ../shared/assets
    python scripts/gpu_pack.py --data-root DIR --spec afhq_cat:64:2000 --spec celeba:64:800 --out cache/gpu_pack

Each ``--spec NAME:RES[:N]`` decodes the first N images (canonical order; all when N is omitted) of a dataset
with ``lib.data.load_dataset`` (through its ``cache/data`` cache) and writes them as a uint8 pack
``<out>/<name>_train_<res>_<C>ch.packed.pt``, which ``load_dataset(name, data_root=<out>, resolution=RES)``
reads when the image folders are absent.  The total must stay within ``--budget-mib`` (64 MiB: what one
remote call may carry besides the working tree); a pack over it is refused before anything is written.
A subset pack is labelled as one in ``ds.info()["note"]`` and so in every result made from it.

Default plan (56 MiB): AFHQ-Cat 64² first 2000 (of 5153), AFHQ-Cat 128² first 500, CelebA 64² first 800.
Full AFHQ-Cat at 128² alone is 243 MiB: paper-scale data has to be on the GPU machine's own disk.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import data  # noqa: E402
from lib.io import write_text  # noqa: E402

DEFAULT_SPECS = ("afhq_cat:64:2000", "afhq_cat:128:500", "celeba:64:800")
MIB = 1 << 20


def parse_spec(spec: str):
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in data.DATASETS:
        raise ValueError(f"bad --spec {spec!r}: expected NAME:RES[:N] with NAME in {sorted(data.DATASETS)}")
    return parts[0], int(parts[1]), (int(parts[2]) if len(parts) == 3 else None)


def planned_bytes(name: str, res: int, n: int, channels: int) -> int:
    return n * channels * res * res


def gpu_commands(out: Path, specs) -> list:
    """The commands to run on the GPU machine from the repository root (what the pack is for)."""
    rel = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    cmds = []
    for name, res, _ in specs:  # the notebooks' gpu profile, one run per packed set
        cmds.append(f"./run_all.sh --profile gpu --only epd_table1_unconditional --data-root {rel} "
                    f"-p dataset={name} -p resolution={res} -p tag={name}{res}")
    cmds.append("python benchmarks/step_time.py --device cuda --full-sample --out results/bench/step_time_cuda")
    cmds.append("python benchmarks/step_time.py --device cuda --resolution 128 --batch 64 "
                "--full-sample --out results/bench/step_time_cuda_128")
    return cmds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "assets"))
    ap.add_argument("--out", default=str(ROOT / "cache" / "gpu_pack"))
    ap.add_argument("--spec", action="append", default=None, help="NAME:RES[:N] (repeatable)")
    ap.add_argument("--budget-mib", type=float, default=64.0)
    args = ap.parse_args(argv)
    specs = [parse_spec(s) for s in (args.spec or DEFAULT_SPECS)]
    out = Path(args.out).resolve()

    loaded, total = [], 0
    for name, res, n in specs:
        ds = data.load_dataset(name, data_root=args.data_root, resolution=res, max_images=n)
        full = len(data.load_dataset(name, data_root=args.data_root, resolution=res)) if n else len(ds)
        loaded.append((name, res, ds, full))
        total += ds.images.numel()
        if total > args.budget_mib * MIB:
            raise SystemExit(f"pack would exceed {args.budget_mib} MiB at {name}:{res} ({total / MIB:.1f} MiB so far): "
                             f"pack fewer images (NAME:RES:N)")
    manifest = []
    for name, res, ds, full in loaded:
        path = data.packed_path(out, name, "train", res, ds.channels)
        data.save_packed(ds, path, total=full)
        manifest.append({"file": path.name, "dataset": name, "resolution": res, "images": len(ds), "of": full,
                         "mib": round(path.stat().st_size / MIB, 2)})
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    cmds = gpu_commands(out, specs)
    write_text(out / "manifest.json", json.dumps({"packs": manifest, "total_mib": round(size / MIB, 2),
                                                  "commands": cmds}, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    if size > args.budget_mib * MIB:
        raise SystemExit(f"{out} holds {size / MIB:.1f} MiB > {args.budget_mib} MiB")
    for m in manifest:
        print(f"{m['file']}: {m['images']} of {m['of']} images, {m['mib']} MiB")
    print(f"total {size / MIB:.1f} MiB in {out} (git-ignored: cache/)")
    print("on the GPU machine, from the repository root (with the pack folder carried along):")
    for c in cmds:
        print("  " + c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
