"""Pack what a remote GPU run needs into one git-ignored folder, and print the one call that runs it there.

    python scripts/gpu_pack.py                        # plan "session", data from ../shared/assets
    python scripts/gpu_pack.py --plan full --data-root DIR --out cache/gpu_pack_full
    python scripts/gpu_pack.py --spec afhq_cat:64:1000 --no-wheels     # data only, e.g. for a machine with PyPI

The pack (``--out``, default ``cache/gpu_pack``) holds

- the data subsets as uint8 tensors: each ``NAME:RES[:N]`` of the plan (or ``--spec``) is decoded with
  ``lib.data.load_dataset`` (its seeded, class-stratified ``max_images`` draw) into ``<name>_train_<res>_<C>ch.packed.pt``,
  which ``load_dataset(name, data_root=<pack>, resolution=RES)`` reads when the image folders are absent;
  a subset is labelled as one in ``ds.info()["note"]`` and so in every result made from it;
- ``wheels/``: the packages that the GPU machine's image lacks (papermill, nbconvert, ipykernel, mlxtend,
  pot, pytorch-fid and whatever of their dependencies the image lacks), downloaded here from PyPI for its
  Python (``--python-version``, 3.12) and installed there with ``--no-index`` by ``scripts/gpu_run.py``;
- ``extractors/``: the trained CIFAR-10 classifier (``FD_cifarclf``, the natural-image stand-in backbone of
  ``lib.studies.study.extractor_for``), so the GPU run reports the same Fréchet distance as the runs here;
- ``manifest.json``: the plan's steps (commands, result folders) that ``scripts/gpu_run.py`` executes.

Budget: one device call carries at most 64 MiB *including the working tree* (tracked and untracked-not-ignored
files); the pack gets what the tree leaves (``--budget-mib`` 64 minus the tree) and is refused before
anything is written when it would not fit.

Plans: ``session`` (default) fits one 30-minute device session: the benchmark at 32² and 128², then Table 1 at
AFHQ-Cat 64² under the gpu profile cut to one seed, 5k steps and 2k evaluation images (tag afhq_cat64_5k).
``full`` is the gpu profile as it stands (3 seeds, 20k steps, 5k images; Table 1 on AFHQ-Cat 64² and 128² and
CelebA 64², frequency bands): hours of one GPU, for a machine that keeps its disk between calls
(``python3 scripts/gpu_run.py --budget-s 0``); its data subsets exceed one device call (use ``--spec``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name, parse_wheel_filename  # noqa: E402

from lib import data  # noqa: E402
from lib.io import write_text  # noqa: E402

MIB = 1 << 20
CALL_LIMIT_MIB = 64.0                       # the device tool's limit on what one call carries
GPU_PYTHON = "3.12"                         # the GPU image's python3 (device KINDS.md: 3.12.3, torch 2.11)
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64",
                   "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_12_x86_64",
                   "manylinux2010_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64")
# The GPU image's Python packages (the device tool's KINDS.md, "Python packages already there", 2026-11-17).
GPU_IMAGE_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-ml-py onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx
optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks
pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn
scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers
treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt
xarray xxhash yarl zipp
""".split())
NOT_FOR_RUNS = frozenset({"jupyterlab"})    # in requirements.txt for users, not needed to execute notebooks
# Left out of the pack: ipykernel's debugger (debugpy, 5 MiB) and IPython's completion (jedi + parso, 5 MiB) are
# imported only when present; a notebook run uses neither.
OPTIONAL_AT_RUN = frozenset({"debugpy", "jedi", "parso"})
# Carried instead of the pinned version: POT 0.9.7.post1's cp312 wheel is 33 MiB; 0.9.6.post1's is 1.5 MiB
# and its ot.sliced projections give a bit-identical SWD (lib.metrics.swd; compared here on 2026-11-23).
GPU_SUBSTITUTES = {"pot": "pot==0.9.6.post1"}

BENCH32 = {"name": "bench32",
           "argv": ["{python}", "benchmarks/step_time.py", "--device", "cuda", "--full-sample",
                    "--out", "results/bench/step_time_cuda"],
           "results": [f"results/bench/step_time_cuda.{e}" for e in ("csv", "md", "json")]}
BENCH128 = {"name": "bench128",
            "argv": ["{python}", "benchmarks/step_time.py", "--device", "cuda", "--resolution", "128", "--batch", "64",
                     "--rounds", "7", "--full-sample", "--out", "results/bench/step_time_cuda_128"],
            "results": [f"results/bench/step_time_cuda_128.{e}" for e in ("csv", "md", "json")]}


def notebook_step(notebook: str, dataset: str, res: int, tag: str, **params) -> dict:
    """A ``run_notebooks.py --profile gpu`` step on a packed dataset; ``params`` are extra ``-p`` values."""
    argv = ["{python}", "scripts/run_notebooks.py", "--profile", "gpu", "--only", notebook, "--data-root", "{pack}",
            "-p", f"dataset={dataset}", "-p", f"resolution={res}", "-p", f"tag={tag}"]
    for k, v in params.items():
        argv += ["-p", f"{k}={json.dumps(v) if isinstance(v, list) else v}"]
    return {"name": f"{notebook}-{tag}", "argv": argv, "results": [f"results/{notebook}/gpu_{tag}"],
            "env": {"DIFFUSION_FD_EXTRACTOR": "{extractor}"}}


PLANS = {
    "session": {"specs": ("afhq_cat:64:2000",),
                "steps": [BENCH32, BENCH128,
                          notebook_step("epd_table1_unconditional", "afhq_cat", 64, "afhq_cat64_5k",
                                        seeds=[0], train_steps=5000, n_eval=2000)]},
    "full": {"specs": ("afhq_cat:64", "afhq_cat:128", "celeba:64"),
             "steps": [BENCH32, BENCH128,
                       notebook_step("epd_table1_unconditional", "afhq_cat", 64, "afhq_cat64"),
                       notebook_step("epd_table1_unconditional", "afhq_cat", 128, "afhq_cat128"),
                       notebook_step("epd_table1_unconditional", "celeba", 64, "celeba64"),
                       notebook_step("epd_frequency_bands", "afhq_cat", 64, "afhq_cat64")]},
}


def parse_spec(spec: str):
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in data.DATASETS:
        raise ValueError(f"bad --spec {spec!r}: expected NAME:RES[:N] with NAME in {sorted(data.DATASETS)}")
    return parts[0], int(parts[1]), (int(parts[2]) if len(parts) == 3 else None)


def tree_bytes(root: Path = ROOT) -> int:
    """Bytes of what a device call sends besides the carried paths: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout
    files = {root / p for p in out.decode().split("\0") if p}
    return sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())


def carried_requirements(requirements: Path = ROOT / "requirements.txt") -> list:
    """requirements.txt lines whose package the GPU image lacks (``name==version``)."""
    reqs = []
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and canonicalize_name(Requirement(line).name) not in GPU_IMAGE_PACKAGES | NOT_FOR_RUNS:
            reqs.append(line)
    return reqs


def _wheel_name_version(wheel: Path):
    name, version, _, _ = parse_wheel_filename(wheel.name)
    return name, version


def _wheel_requires(wheel: Path, python_version: str) -> list:
    """The Requires-Dist of a wheel that apply on Linux x86-64 under ``python_version`` (no extras)."""
    import zipfile

    from packaging.markers import default_environment
    env = {**default_environment(), "python_version": python_version, "python_full_version": f"{python_version}.0",
           "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode("utf-8", "replace").splitlines()
    out = []
    for line in lines:
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None or req.marker.evaluate(env):
                out.append(req)
    return out


def _download(req: Requirement, dest: Path, python_version: str) -> Path:
    """One wheel (no dependencies) for the GPU machine into ``dest``; returns its path."""
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp", "-d", str(dest), str(req)]
    for plat in WHEEL_PLATFORMS:
        cmd[-1:-1] = ["--platform", plat]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pip could not download a wheel of {str(req)!r} for Python {python_version} "
                         f"(is PyPI reachable?):\n{proc.stderr[-2000:]}")
    new = set(dest.glob("*.whl")) - before
    found = [w for w in (new or dest.glob("*.whl")) if _wheel_name_version(w)[0] == canonicalize_name(req.name)]
    if not found:
        raise SystemExit(f"pip downloaded no wheel named like {str(req)!r} into {dest}")
    return max(found, key=lambda w: _wheel_name_version(w)[1])


def resolve_wheels(reqs: list, cache: Path, python_version: str = GPU_PYTHON) -> list:
    """Wheels of ``reqs`` and, transitively, of their dependencies that the GPU image lacks (one version each;
    dependencies in the image are trusted to be compatible).  Downloads go to ``cache`` and are reused."""
    cache.mkdir(parents=True, exist_ok=True)
    todo, seen, wheels = [Requirement(r) for r in reqs], set(), []
    while todo:
        req = todo.pop(0)
        name = canonicalize_name(req.name)
        if name in seen or name in GPU_IMAGE_PACKAGES or name in OPTIONAL_AT_RUN:
            continue
        seen.add(name)
        req = Requirement(GPU_SUBSTITUTES.get(name, f"{name}{req.specifier}"))  # extras and markers are settled
        hit = [w for w in cache.glob("*.whl") if _wheel_name_version(w)[0] == name
               and req.specifier.contains(_wheel_name_version(w)[1], prereleases=True)]
        wheel = max(hit, key=lambda w: _wheel_name_version(w)[1]) if hit else _download(req, cache, python_version)
        wheels.append(wheel)
        todo += _wheel_requires(wheel, python_version)
    return sorted(wheels)


def extractor_file(data_root: str):
    """The trained CIFAR-10 classifier (trained here once from <data_root>/cifar10; then from the cache)."""
    if not (Path(data_root) / "cifar10").is_dir():
        return None
    from lib.metrics import get_extractor
    return get_extractor("cifarclf", data_root=data_root).path


def source_commit(root: Path = ROOT) -> str:
    """HEAD, with '-dirty' when the code that travels has uncommitted changes (the results' provenance)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "notebooks", "scripts", "benchmarks"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_call(out: Path) -> dict:
    rel = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    return {"command": f"python3 scripts/gpu_run.py --pack {rel}", "carry": [str(rel)]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", default="session", choices=sorted(PLANS))
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "assets"))
    ap.add_argument("--out", default=str(ROOT / "cache" / "gpu_pack"))
    ap.add_argument("--spec", action="append", default=None, help="NAME:RES[:N] (repeatable; replaces the plan's)")
    ap.add_argument("--budget-mib", type=float, default=CALL_LIMIT_MIB,
                    help="what one device call may carry in all, the working tree included")
    ap.add_argument("--no-wheels", action="store_true", help="leave the wheels out (machine with PyPI access)")
    ap.add_argument("--python-version", default=GPU_PYTHON, help="the GPU machine's Python, for the wheels")
    ap.add_argument("--wheel-cache", default=str(ROOT / "cache" / "wheels"))
    args = ap.parse_args(argv)
    plan = PLANS[args.plan]
    specs = [parse_spec(s) for s in (args.spec or plan["specs"])]
    out = Path(args.out).resolve()
    tree = tree_bytes()
    room = args.budget_mib * MIB - tree

    wheels = [] if args.no_wheels else resolve_wheels(carried_requirements(),
                                                      Path(args.wheel_cache) / f"cp{args.python_version}",
                                                      args.python_version)
    ext = extractor_file(args.data_root)
    fixed = sum(w.stat().st_size for w in wheels) + (ext.stat().st_size if ext else 0) + 64 * 1024  # + manifest
    loaded, total = [], fixed
    for name, res, n in specs:
        ds = data.load_dataset(name, data_root=args.data_root, resolution=res, max_images=n)
        # the full count, for the subset label (decoded once into lib.data's cache, so cheap from then on)
        full = len(data.load_dataset(name, data_root=args.data_root, resolution=res)) if n else len(ds)
        loaded.append((name, res, ds, full))
        total += ds.images.numel()
        if total > room:
            raise SystemExit(f"pack would exceed what one device call carries at {name}:{res}: "
                             f"{total / MIB:.1f} MiB of pack + {tree / MIB:.1f} MiB of working tree > "
                             f"{args.budget_mib:g} MiB: pack fewer images (NAME:RES:N) or split the plan")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest = []
    for name, res, ds, full in loaded:
        path = data.packed_path(out, name, "train", res, ds.channels)
        data.save_packed(ds, path, total=full)
        manifest.append({"file": path.name, "dataset": name, "resolution": res, "images": len(ds), "of": full,
                         "mib": round(path.stat().st_size / MIB, 2)})
    if wheels:
        (out / "wheels").mkdir()
        for w in wheels:
            shutil.copy2(w, out / "wheels" / w.name)
    steps = [dict(s) for s in plan["steps"]]
    if ext is not None:
        (out / "extractors").mkdir()
        shutil.copy2(ext, out / "extractors" / ext.name)
        extractor = f"{{pack}}/extractors/{ext.name}"
    else:
        extractor = ""
        print(f"note: no {Path(args.data_root) / 'cifar10'}: the notebook runs report SWD only (no FD column)")
    for s in steps:
        if "env" in s:
            s["env"] = {k: v.replace("{extractor}", extractor) for k, v in s["env"].items()}
    call = device_call(out)
    write_text(out / "manifest.json", json.dumps({
        "plan": steps, "plan_name": args.plan, "commit": source_commit(), "packs": manifest, "wheels": [w.name for w in wheels],
        "python_version": args.python_version, "extractor": ext.name if ext else None,
        "device_call": call}, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    if size + tree > args.budget_mib * MIB:
        shutil.rmtree(out)
        raise SystemExit(f"{out} holds {size / MIB:.1f} MiB + {tree / MIB:.1f} MiB of working tree > "
                         f"{args.budget_mib:g} MiB: removed; pack less")
    for m in manifest:
        print(f"{m['file']}: {m['images']} of {m['of']} images, {m['mib']} MiB")
    print(f"{len(wheels)} wheels ({sum(w.stat().st_size for w in wheels) / MIB:.1f} MiB), extractor "
          f"{ext.name if ext else 'none'}")
    print(f"pack {size / MIB:.1f} MiB in {out} + working tree {tree / MIB:.1f} MiB = "
          f"{(size + tree) / MIB:.1f} of {args.budget_mib:g} MiB (git-ignored: cache/)")
    if not out.is_relative_to(ROOT):
        print(f"note: {out} lies outside the repository; the device tool carries only paths inside it")
    print("device call (repeat it until gpu_state.json shows every step done; a warm machine resumes):")
    print(f"  run(command={call['command']!r}, carry={call['carry']!r}, timeout_s=600)")
    print("then: python scripts/gpu_run.py --unpack <files_at>/gpu_results.tar.gz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
