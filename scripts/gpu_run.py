"""Run a packed GPU plan on the GPU machine, resumably and within a time budget; unpack its results here.

On the GPU machine, from the repository root, with the pack folder carried along (``scripts/gpu_pack.py``
prints the exact device call):

    python3 scripts/gpu_run.py --pack cache/gpu_pack [--budget-s 540]

1. installs the pack's wheels (the packages the machine's image lacks: papermill, nbconvert, ipykernel, ...)
   into ``/tmp/site`` once per machine (``--no-index``: nothing is fetched) and puts them on PYTHONPATH;
2. runs the plan's steps (``manifest.json``: benchmark runs, notebook runs with ``run_notebooks.py``) in order,
   skipping the ones finished in an earlier call on the same machine (``cache/gpu_state/``).  A step still
   running at the deadline gets SIGINT (the notebook runner then stops its kernel and keeps the previous
   results), so the call ends inside its limit; training checkpoints stay in ``cache/runs`` and the next call
   on the still-warm machine resumes from them;
3. writes what finished into ``$OUT/gpu_results.tar.gz`` (``results/...`` paths only; ``--out`` without the
   device tool's $OUT) and the call's log beside it, plus ``gpu_state.json`` (which steps are done).

Back here:

    python scripts/gpu_run.py --unpack /work/.device/.../gpu_results.tar.gz     # into results/, then commit

This file uses the standard library only: it runs before the wheels are installed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("GPU_RUN_SITE", "/tmp/site"))  # where the wheels go (the device README's)
STATE_DIR = ROOT / "cache" / "gpu_state"    # git-ignored; survives between calls while the machine is warm
ARCHIVE = "gpu_results.tar.gz"
GRACE_S = 45                                # after SIGINT, before SIGKILL
MIN_START_S = 60                            # do not start a step with less time than this left


def log(msg: str) -> None:
    print(f"[gpu_run {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_manifest(pack: Path) -> dict:
    path = pack / "manifest.json"
    if not path.is_file():
        raise SystemExit(f"no {path}: make the pack first (python scripts/gpu_pack.py) and carry its folder")
    return json.loads(path.read_text())


def install_wheels(pack: Path, site: Path = SITE) -> dict:
    """pip-install the pack's wheels into ``site`` (once per set of wheels) and return the environment that
    puts them on the path.  Without wheels the environment is returned unchanged."""
    env = dict(os.environ)
    wheels = sorted((pack / "wheels").glob("*.whl"))
    if not wheels:
        return env
    stamp = site / ".gpu_run_wheels"
    want = hashlib.sha256("\n".join(w.name for w in wheels).encode()).hexdigest()
    if not stamp.is_file() or stamp.read_text() != want:
        log(f"installing {len(wheels)} wheels into {site}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
        stamp.write_text(want)
    # modules, scripts, and the data files (nbconvert's HTML templates, ipykernel's kernel spec)
    for var, path in (("PYTHONPATH", site), ("PATH", site / "bin"), ("JUPYTER_PATH", site / "share" / "jupyter")):
        env[var] = os.pathsep.join(p for p in (str(path), env.get(var, "")) if p)
    return env


def _fill(text: str, pack: Path) -> str:
    return text.replace("{python}", sys.executable).replace("{pack}", str(pack))


def step_argv(step: dict, pack: Path) -> list:
    """A plan step's command: ``argv`` with ``{python}`` and ``{pack}`` (absolute) filled in."""
    return [_fill(a, pack) for a in step["argv"]]


def step_env(step: dict, pack: Path, env: dict) -> dict:
    """``env`` plus the step's own variables (filled in like its argv; an empty value is left out)."""
    extra = {k: _fill(v, pack) for k, v in step.get("env", {}).items()}
    return {**env, **{k: v for k, v in extra.items() if v}}


def run_step(argv: list, env: dict, deadline: float, logf, root: Path = ROOT, grace_s: float = GRACE_S) -> str:
    """Run one step until it ends or the deadline; returns "done", "failed (rc N)" or "stopped at deadline"."""
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = proc.wait(timeout=None if deadline == float("inf") else max(1.0, deadline - time.time()))
        return "done" if rc == 0 else f"failed (rc {rc})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return "stopped at deadline"


def export(paths: list, out: Path, state: dict, root: Path = ROOT) -> Path:
    """tar.gz of the finished steps' result paths (relative to the repo root, all under results/)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{ARCHIVE}.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for rel in paths:
            if (root / rel).exists():
                tar.add(root / rel, arcname=rel)
    os.replace(tmp, out / ARCHIVE)
    (out / "gpu_state.json").write_text(json.dumps(state, indent=1) + "\n")
    return out / ARCHIVE


def run_plan(pack: Path, budget_s: float, out: Path, state_dir: Path = STATE_DIR, site: Path = SITE,
             root: Path = ROOT, min_start_s: float = MIN_START_S, grace_s: float = GRACE_S) -> int:
    start = time.time()
    deadline = start + budget_s if budget_s > 0 else float("inf")  # 0: no deadline (own GPU server)
    manifest = load_manifest(pack)
    env = install_wheels(pack, site)
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    state_dir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    state, exported = {}, []
    with open(out / "gpu_run.log", "a") as logf:
        for step in manifest["plan"]:
            name = step["name"]
            key = hashlib.sha256(json.dumps(step, sort_keys=True).encode()).hexdigest()[:12]
            marker = state_dir / f"{name}-{key}.done"  # a changed step is a new step
            if marker.is_file():
                state[name] = "done earlier"
            elif deadline - time.time() < min_start_s:
                state[name] = "not started (budget spent)"
            else:
                argv = step_argv(step, pack)
                log(f"step {name}: {' '.join(argv)}")
                logf.write(f"\n===== {name}: {' '.join(argv)}\n")
                logf.flush()
                t0 = time.time()
                state[name] = run_step(argv, step_env(step, pack, env), deadline, logf, root, grace_s)
                log(f"step {name}: {state[name]} after {time.time() - t0:.0f} s")
                if state[name] == "done":
                    marker.write_text(json.dumps({"seconds": round(time.time() - t0, 1)}))
            if state[name] in ("done", "done earlier"):
                exported += step.get("results", [])
    path = export(exported, out, {"steps": state, "budget_s": budget_s, "seconds": round(time.time() - start),
                                  "commit": manifest.get("commit", "")}, root)
    log(f"{sum(v.startswith('done') for v in state.values())}/{len(state)} steps done; results in {path} "
        f"({path.stat().st_size / 2**20:.1f} MiB)")
    pending = [k for k, v in state.items() if not v.startswith("done")]
    if pending:
        log(f"pending: {', '.join(pending)}: run the same call again (a warm machine resumes the checkpoints)")
    return 1 if any(v.startswith("failed") for v in state.values()) else 0


def unpack(archive: Path, root: Path = ROOT, commit: str = "") -> list:
    """Extract a ``gpu_results.tar.gz`` into the repository: members must lie under results/; a result folder
    (``results/<notebook>/<folder>``) in the archive replaces the one here whole.  The device's copy of the
    tree has no .git, so its JSON files say ``"commit": "unknown"``; with ``commit`` (the pack's, from
    gpu_state.json) those are filled in, with ``commit_source`` saying where it came from."""
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] != "results" or \
                    not (m.isfile() or m.isdir()):
                raise SystemExit(f"refusing {archive}: member {m.name!r} is not a plain path under results/")
        folders = {PurePosixPath(*PurePosixPath(m.name).parts[:3]) for m in members
                   if len(PurePosixPath(m.name).parts) > 3}
        for folder in folders:
            if (root / folder).is_dir():
                shutil.rmtree(root / folder)
        tar.extractall(root, members=members, filter="data")
    files = [root / m.name for m in members if m.isfile()]
    if commit:
        for f in files:
            if f.suffix == ".json":
                try:
                    obj = json.loads(f.read_text())
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("commit") == "unknown":
                    obj["commit"] = commit
                    obj["commit_source"] = "scripts/gpu_pack.py manifest (the GPU machine's copy has no .git)"
                    f.write_text(json.dumps(obj, indent=2) + "\n")
    return sorted({str(PurePosixPath(*PurePosixPath(m.name).parts[:3])) for m in members if m.isfile()})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pack", default=str(ROOT / "cache" / "gpu_pack"), help="the carried pack folder")
    ap.add_argument("--budget-s", type=float, default=540.0,
                    help="stop at this many seconds (the device tool allows 600 per command; 0: no limit)")
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "cache" / "gpu_out"),
                    help="where the archive and log go (default: the device tool's $OUT)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan's commands and stop")
    ap.add_argument("--unpack", default=None, metavar="ARCHIVE", help="here: extract a returned archive")
    args = ap.parse_args(argv)
    if args.unpack:
        archive = Path(args.unpack)
        state = archive.with_name("gpu_state.json")
        commit = json.loads(state.read_text()).get("commit", "") if state.is_file() else ""
        for rel in unpack(archive, commit=commit):
            print(rel)
        print("now: python scripts/build_index.py, look at the reports, commit results/")
        return 0
    pack = Path(args.pack).resolve()
    if args.dry_run:
        for step in load_manifest(pack)["plan"]:
            print(f"{step['name']}: {' '.join(step_argv(step, pack))}")
        return 0
    return run_plan(pack, args.budget_s, Path(args.out))


if __name__ == "__main__":
    sys.exit(main())
