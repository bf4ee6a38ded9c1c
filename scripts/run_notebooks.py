"""Execute every notebook in notebooks/ with papermill and render an HTML report of each.

Called by ./run_all.sh (which bootstraps the environment first).  For each notebook ``notebooks/<nb>.ipynb``:
  results/<nb>/<profile>/<nb>.ipynb     the executed notebook (outputs kept)
  results/<nb>/<profile>/report.html    the report (code hidden)
  results/<nb>/<profile>/run.json       status, duration, parameters, input hash
Parameters come from notebooks/params/<profile>.yaml (keys ``all`` and ``<nb>``) plus ``profile`` itself.
A notebook whose inputs (its own file, its parameters, lib/, requirements.txt) did not change since its last
successful run is skipped unless --force.  A failing notebook is reported (cell and error) and the others go on;
the exit status is non-zero when any notebook failed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import io  # noqa: E402
from lib.experiment import code_hash  # noqa: E402

PROFILES = ("smoke", "quick", "gpu", "paper")


def notebook_list(nb_dir: Path, only: str | None):
    nbs = sorted(p for p in nb_dir.glob("*.ipynb") if not p.name.startswith("_"))
    if only:
        nbs = [p for p in nbs if fnmatch.fnmatch(p.stem, only) or only in p.stem]
    return nbs


def load_params(nb_dir: Path, profile: str, stem: str) -> dict:
    import yaml
    f = nb_dir / "params" / f"{profile}.yaml"
    table = yaml.safe_load(f.read_text()) if f.exists() else {}
    table = table or {}
    return {**(table.get("all") or {}), **(table.get(stem) or {}), "profile": profile}


def parse_param_overrides(items) -> dict:
    """['seeds=[0, 1]', 'tag=afhq_cat'] -> {'seeds': [0, 1], 'tag': 'afhq_cat'} (values parsed as YAML)."""
    import yaml
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"--param expects NAME=VALUE (e.g. -p seeds=[0,1]), got {item!r}")
        out[name.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def input_hash(nb: Path, params: dict) -> str:
    h = hashlib.sha256()
    h.update(nb.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(code_hash().encode())
    h.update((ROOT / "requirements.txt").read_bytes())
    return h.hexdigest()[:16]


def render_html(executed: Path, html: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(str(executed), as_version=4))
    io.write_text(html, body)


def failure_summary(exc: BaseException) -> str:
    """Papermill's PapermillExecutionError carries the failing cell index and the error."""
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f"cell [{cell}]" if cell is not None else "before execution"
    return f"{where}: {ename}: {evalue}"


def run_one(nb: Path, out_root: Path, profile: str, extra: dict, force: bool, timeout: int | None) -> dict:
    import papermill as pm
    stem = nb.stem
    params = {**load_params(nb.parent, profile, stem), **extra}
    tag = str(params.get("tag") or "")
    out_dir = out_root / stem / (f"{profile}_{tag}" if tag else profile)  # lib.epd_experiments.results_profile
    status_file = out_dir / "run.json"
    key = input_hash(nb, params)
    if not force and status_file.exists():
        prev = json.loads(status_file.read_text())
        if prev.get("status") == "ok" and prev.get("input_hash") == key and (out_dir / "report.html").exists():
            return {**prev, "skipped": True}
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{stem}.ipynb"
    t0 = time.time()
    record = {"notebook": stem, "profile": profile, "parameters": params, "input_hash": key,
              "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    tmp = out_dir / f".{stem}.running.ipynb"
    try:
        pm.execute_notebook(str(nb), str(tmp), parameters=params, cwd=str(ROOT), kernel_name="python3",
                            progress_bar=False, log_output=False, execution_timeout=timeout)
        render_html(tmp, out_dir / "report.html")
        tmp.replace(executed)
        (out_dir / f"{stem}.failed.ipynb").unlink(missing_ok=True)
        record.update(status="ok")
    except Exception as exc:  # noqa: BLE001 - any failure is reported and the next notebook runs
        record.update(status="failed", error=failure_summary(exc), traceback=traceback.format_exc(limit=3))
        if tmp.exists():  # keep the partially executed notebook (and its report) for debugging
            render_html(tmp, out_dir / "report.html")
            tmp.replace(out_dir / f"{stem}.failed.ipynb")
    record["seconds"] = round(time.time() - t0, 1)
    io.write_json(status_file, record)
    return record


def run_one_logged(nb: Path, *args) -> dict:
    """run_one in a worker process of --jobs N, saying when it starts."""
    print(f"    started {nb.stem} (pid {os.getpid()})", flush=True)
    return run_one(nb, *args)


def report(rec: dict, args) -> int:
    """Print one notebook's outcome; 1 when it failed."""
    if rec.get("skipped"):
        print(f"    unchanged since its last successful run: skipped (use --force to re-run)", flush=True)
    elif rec["status"] == "ok":
        tag = str(rec["parameters"].get("tag") or "")
        out = Path(args.results) / rec["notebook"] / (f"{args.profile}_{tag}" if tag else args.profile) / "report.html"
        print(f"    ok in {rec['seconds']} s -> {out}", flush=True)
    else:
        print(f"    FAILED after {rec['seconds']} s at {rec['error']}", flush=True)
        return 1
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick", choices=PROFILES, help="compute profile (default: quick)")
    ap.add_argument("--only", default=None, help="run only notebooks whose name matches this glob/substring")
    ap.add_argument("--data-root", default=None, help="folder holding the real datasets (passed as data_root)")
    ap.add_argument("--force", action="store_true", help="re-run notebooks whose inputs did not change")
    ap.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    ap.add_argument("--notebooks", default=str(ROOT / "notebooks"), help="notebook folder")
    ap.add_argument("--results", default=str(ROOT / "results"), help="results folder")
    ap.add_argument("--jobs", type=int, default=1,
                    help="notebooks run in this many parallel processes (default 1; each kernel uses its own threads)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="override one notebook parameter (VALUE is read as YAML: 3, [0, 1], true, text); "
                         "repeatable. A 'tag' parameter writes to results/<nb>/<profile>_<tag>/")
    args = ap.parse_args(argv)

    nbs = notebook_list(Path(args.notebooks), args.only)
    if not nbs:
        print(f"no notebooks match in {args.notebooks}", file=sys.stderr)
        return 1
    extra = {"data_root": args.data_root} if args.data_root else {}
    try:
        extra.update(parse_param_overrides(args.param))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ["DIFFUSION_RESULTS_DIR"] = str(Path(args.results).resolve())  # the kernels inherit it
    failures = 0
    run_args = (Path(args.results), args.profile, extra, args.force, args.timeout)
    if args.jobs <= 1:
        for i, nb in enumerate(nbs, 1):
            print(f"[{i}/{len(nbs)}] {nb.stem} (profile={args.profile}) ...", flush=True)
            failures += report(run_one(nb, *run_args), args)
    else:  # notebooks in parallel processes; each line says which notebook it is about
        import concurrent.futures as cf
        import multiprocessing as mp
        with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("fork")) as pool:
            futures = {pool.submit(run_one_logged, nb, *run_args): nb for nb in nbs}
            print(f"running {len(nbs)} notebooks in {args.jobs} parallel processes (profile={args.profile})",
                  flush=True)
            for done, fut in enumerate(cf.as_completed(futures), 1):
                nb = futures[fut]
                print(f"[{done}/{len(nbs)} done] {nb.stem} (profile={args.profile})", flush=True)
                failures += report(fut.result(), args)
    print(f"{len(nbs) - failures}/{len(nbs)} notebooks succeeded (profile={args.profile})", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
