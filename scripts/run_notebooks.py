"""Execute every notebook in notebooks/ with papermill and render an HTML report of each.

Called by ./run_all.sh (which bootstraps the environment first).  For each notebook ``notebooks/<nb>.ipynb``:
  results/<nb>/<profile>/<nb>.ipynb     the executed notebook (outputs kept)
  results/<nb>/<profile>/report.html    the report (code hidden)
  results/<nb>/<profile>/run.json       status, duration, parameters, input hash
  cache/logs/<nb>__<profile>.log        what the kernel wrote to stderr (warnings, progress bars) and the library
                                        log lines of its stdout (``[name] ...``): kept out of the report, whose
                                        absolute machine paths are also written relative (``clean_outputs``)
Parameters come from notebooks/params/<profile>.yaml (keys ``all`` and ``<nb>``) plus ``profile`` itself, then
``--data-root`` and ``-p NAME=VALUE``.  They are checked against each notebook's parameters cell before anything
runs: an unknown name or a value of the wrong type stops with exit status 2 and nothing written.
A notebook whose inputs (its own file, its parameters, lib/, requirements.txt) did not change since its last
successful run is skipped unless --force.  A failing notebook is reported (cell and error) and the others go on;
the exit status is non-zero when any notebook failed.

Staging: a notebook's kernel writes everything (through lib.experiment.Run, whose DIFFUSION_RESULTS_DIR points at
results/.staging/<nb>/<folder>/) and the runner writes the executed notebook, report.html and run.json there too.
Only when the notebook succeeded is results/<nb>/<folder>/ replaced by the staged folder (old folder renamed
aside, new one renamed in, old one deleted; a PUBLISH.json written first lets the next run finish a swap that a
crash interrupted, and a staging folder without it is discarded).  A failed or interrupted run leaves the
previous results' files untouched: a failure adds results/<nb>/<folder>/FAILED.json and <nb>.failed.ipynb (the
index shows the failure beside the last good numbers); a folder that held no results yet receives the failed
run's partial outputs with run.json status "failed".
"""
from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import io  # noqa: E402
from lib.experiment import (ParameterError, code_hash, notebook_parameters, parse_value,  # noqa: E402
                            validate_parameters)
from lib.experiment import result_folder as lib_result_folder  # noqa: E402

PROFILES = ("smoke", "quick", "gpu", "paper")
STAGING = ".staging"          # results/.staging/<nb>/<folder>/: the kernel's DIFFUSION_RESULTS_DIR while it runs
PUBLISH = "PUBLISH.json"      # written into a staging folder before its swap: the swap is finished on recovery
FAILED = "FAILED.json"        # beside the last good results when a later run of the same folder failed
LOG_DIR = ROOT / "cache" / "logs"  # <nb>__<folder>.log: what the kernel wrote to stderr and library log lines


def notebook_list(nb_dir: Path, only: str | None):
    nbs = sorted(p for p in nb_dir.glob("*.ipynb") if not p.name.startswith("_"))
    if only:
        nbs = [p for p in nbs if fnmatch.fnmatch(p.stem, only) or only in p.stem]
    return nbs


def params_table(nb_dir: Path, profile: str) -> dict:
    """notebooks/params/<profile>.yaml as a dict ({} when absent)."""
    import yaml
    f = nb_dir / "params" / f"{profile}.yaml"
    return (yaml.safe_load(f.read_text()) if f.exists() else {}) or {}


def load_params(nb_dir: Path, profile: str, stem: str, table: dict | None = None) -> dict:
    table = params_table(nb_dir, profile) if table is None else table
    return {**(table.get("all") or {}), **(table.get(stem) or {}), "profile": profile}


def parse_param_overrides(items) -> dict:
    """['seeds=[0, 1]', 'tag=afhq_cat'] -> {'seeds': [0, 1], 'tag': 'afhq_cat'} (``lib.experiment.parse_value``:
    YAML, and ``1e-3`` a float)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"--param expects NAME=VALUE (e.g. -p seeds=[0,1]), got {item!r}")
        out[name.strip()] = parse_value(value)
    return out


def input_hash(nb: Path, params: dict) -> str:
    h = hashlib.sha256()
    h.update(nb.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(code_hash().encode())
    h.update((ROOT / "requirements.txt").read_bytes())
    return h.hexdigest()[:16]


LOG_LINE = re.compile(r"^\[[A-Za-z0-9_.-]+\] ")  # a library's log line, e.g. "[mnistclf] loaded ...: accuracy 0.99"
TEXT_MIMES = ("text/plain", "text/html", "text/markdown")


def _scrub(text: str, paths: dict) -> str:
    """Replace absolute machine paths (the repo, the results and staging folders) by their relative names."""
    for path, name in paths.items():
        text = text.replace(path + "/", f"{name}/" if name else "").replace(path, name or ".")
    return text


def clean_outputs(book, paths: dict | None = None) -> str:
    """Make an executed notebook a report: move its stderr blocks (warnings, progress bars, library logging) and
    the library log lines of its stdout (``[name] ...``) out of the outputs, and write absolute machine paths as
    relative ones.  Returns the text moved out (for the kernel's log file); ``book`` is changed in place."""
    paths = {str(k): v for k, v in (paths or {}).items() if len(str(k)) > 1}  # never "/" itself
    paths = dict(sorted(paths.items(), key=lambda kv: -len(kv[0])))  # the longest (most specific) path first
    log = []
    for i, cell in enumerate(book.cells):
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
                if out.get("name") == "stderr":
                    log.append(f"--- cell {i} stderr\n{text}")
                    continue
                lines = text.splitlines(keepends=True)
                moved = [ln for ln in lines if LOG_LINE.match(ln)]
                if moved:
                    log.append(f"--- cell {i} stdout\n{''.join(moved)}")
                    text = "".join(ln for ln in lines if not LOG_LINE.match(ln))
                    if not text:
                        continue
                out["text"] = _scrub(text, paths)
            elif out.get("output_type") in ("execute_result", "display_data"):
                for mime in TEXT_MIMES:
                    if mime in out.get("data", {}):
                        v = out["data"][mime]
                        out["data"][mime] = _scrub("".join(v) if isinstance(v, list) else v, paths)
            elif out.get("output_type") == "error":
                out["evalue"] = _scrub(str(out.get("evalue", "")), paths)
                out["traceback"] = [_scrub(t, paths) for t in out.get("traceback", [])]
            kept.append(out)
        cell["outputs"] = kept
    return "".join(log)


def finish_notebook(running: Path, log_file: Path, paths: dict) -> None:
    """clean_outputs on the executed notebook file; the moved text goes to ``log_file``."""
    import nbformat
    book = nbformat.read(str(running), as_version=4)
    log = clean_outputs(book, paths)
    nbformat.write(book, str(running))
    if log:
        io.write_text(log_file, log)
    elif log_file.exists():
        log_file.unlink()  # a previous run's log would describe another run


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


def result_folder(profile: str, params: dict) -> str:
    """results/<nb>/<this>/: the profile, with ``_<tag>`` when a tag parameter is given."""
    return lib_result_folder(profile, str(params.get("tag") or ""))


def notebook_params(nb: Path, profile: str, extra: dict) -> dict:
    return {**load_params(nb.parent, profile, nb.stem), **extra}


def check_params(nb: Path, profile: str, extra: dict) -> dict:
    """Validated parameters of one notebook (ParameterError names the unknown / mistyped ones)."""
    table = params_table(nb.parent, profile)
    shared = set(table.get("all") or {}) - set(table.get(nb.stem) or {}) - set(extra)
    return validate_parameters(nb, {**load_params(nb.parent, profile, nb.stem, table), **extra},
                               declared=notebook_parameters(nb),
                               ignore_unknown=shared)  # keys under "all" need not exist in every notebook


def _rmtree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _remove_stage(stage: Path) -> None:
    """Delete a staging root and the staging folders above it that are left empty."""
    _rmtree(stage)
    try:
        stage.parent.rmdir()  # .staging/<nb> when empty (.staging itself stays: parallel runs create beneath it)
    except OSError:
        pass


def _finish_publish(stage: Path, out_root: Path) -> None:
    """Move the folders of a staging root listed in its PUBLISH.json into the results tree (idempotent).

    The main folder is swapped whole: results/<rel> is renamed to <stage>/.old/<rel>, the staged folder renamed
    onto results/<rel>, the old one deleted.  Other folders the notebook wrote (e.g. a second tagged folder) are
    merged file by file (os.replace each), as a notebook writing there directly would have done.
    """
    plan = json.loads((stage / PUBLISH).read_text())
    aside = stage / ".old"
    for rel in plan["folders"]:
        src, dst = stage / rel, out_root / rel
        if not src.exists():
            continue  # already moved in before a crash
        if rel == plan["main"]:
            old = aside / rel
            if dst.exists():
                _rmtree(old)
                old.parent.mkdir(parents=True, exist_ok=True)
                os.rename(dst, old)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.rename(src, dst)
        else:
            for f in sorted(p for p in src.rglob("*") if p.is_file()):
                target = dst / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, target)
            _rmtree(src)
    _remove_stage(stage)


def publish(stage: Path, out_root: Path, main_rel: str) -> None:
    """Swap the staged outputs into the results tree (see the module docstring)."""
    folders = sorted({p.relative_to(stage).as_posix() for p in stage.glob("*/*")
                      if p.is_dir() and not p.parent.name.startswith(".")} | {main_rel})
    io.write_json(stage / PUBLISH, {"main": main_rel, "folders": folders})
    _finish_publish(stage, out_root)


def recover(stage: Path, out_root: Path) -> str | None:
    """Clean up after a run that was killed: finish its swap (PUBLISH.json written) or discard its staging."""
    if not stage.exists():
        return None
    if (stage / PUBLISH).exists():
        _finish_publish(stage, out_root)
        return "finished the interrupted swap of a successful run"
    _remove_stage(stage)
    return "discarded the staging folder of an interrupted run"


def run_one(nb: Path, out_root: Path, profile: str, extra: dict, force: bool, timeout: int | None,
            log_dir: Path | None = None) -> dict:
    import papermill as pm
    log_dir = Path(log_dir or LOG_DIR)
    stem = nb.stem
    params = notebook_params(nb, profile, extra)
    folder = result_folder(profile, params)
    main_rel = f"{stem}/{folder}"
    out_dir = out_root / stem / folder
    stage = out_root / STAGING / stem / folder  # the kernel's results root; its outputs land in stage/<nb>/<..>
    note = recover(stage, out_root)
    if note:
        print(f"    {stem}/{folder}: {note}", flush=True)
    status_file = out_dir / "run.json"
    key = input_hash(nb, params)
    if not force and status_file.exists() and not (out_dir / FAILED).exists():
        prev = json.loads(status_file.read_text())
        if prev.get("status") == "ok" and prev.get("input_hash") == key and (out_dir / "report.html").exists():
            return {**prev, "skipped": True}
    stage_dir = stage / stem / folder
    stage_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    record = {"notebook": stem, "profile": profile, "parameters": params, "input_hash": key,
              "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    running = stage_dir / f".{stem}.running.ipynb"
    log_file = log_dir / f"{stem}__{folder}.log"  # the kernel's stderr and library log lines (not the report's)
    paths = {stage_dir.resolve(): "", stage.resolve(): "results", out_root.resolve(): "results", ROOT: "",
             Path.home(): "~"}
    saved_env = {k: os.environ.get(k) for k in ("DIFFUSION_RESULTS_DIR", "MPLBACKEND")}
    os.environ["DIFFUSION_RESULTS_DIR"] = str(stage.resolve())  # the kernel inherits it (lib.experiment)
    os.environ["MPLBACKEND"] = "Agg"  # figures reach the report once, as saved (Run.save_figure shows the PNG)
    try:
        pm.execute_notebook(str(nb), str(running), parameters=params, cwd=str(ROOT), kernel_name="python3",
                            progress_bar=False, log_output=False, execution_timeout=timeout)
        finish_notebook(running, log_file, paths)
        render_html(running, stage_dir / "report.html")
        running.replace(stage_dir / f"{stem}.ipynb")
        record.update(status="ok")
    except Exception as exc:  # noqa: BLE001 - any failure is reported and the next notebook runs
        record.update(status="failed", error=failure_summary(exc), traceback=traceback.format_exc(limit=3),
                      ename=getattr(exc, "ename", type(exc).__name__))
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    record["seconds"] = round(time.time() - t0, 1)
    if record["status"] == "ok":
        io.write_json(stage_dir / "run.json", record)
        publish(stage, out_root, main_rel)
        return record
    if record.pop("ename", None) == "KeyboardInterrupt" or _INTERRUPTED:
        raise KeyboardInterrupt  # Ctrl-C reached the kernel first: an interruption, not a failure of the notebook
    has_results = (out_dir / "metrics.json").exists() or (
        status_file.exists() and json.loads(status_file.read_text()).get("status") == "ok")
    if not has_results:  # nothing to protect: the failed run's partial outputs show what happened
        if running.exists():
            finish_notebook(running, log_file, paths)
            render_html(running, stage_dir / "report.html")
            running.replace(stage_dir / f"{stem}.failed.ipynb")
        io.write_json(stage_dir / "run.json", record)
        publish(stage, out_root, main_rel)
    else:  # keep the last good results' files; add the failure record and the failed notebook beside them
        if running.exists():
            finish_notebook(running, log_file, paths)
            io.write_bytes(out_dir / f"{stem}.failed.ipynb", running.read_bytes())
        io.write_json(out_dir / FAILED, {**record, "failed_notebook": f"{stem}.failed.ipynb",
                                         "note": "the other files here are from the last successful run"})
        _remove_stage(stage)
    record["published"] = not has_results
    return record


_INTERRUPTED = False  # set by the first Ctrl-C / SIGINT (``_on_interrupt``)


def _kernel_processes() -> list:
    """This process's descendant notebook kernels (ipykernel launched by papermill / jupyter_client)."""
    try:
        import psutil  # a dependency of ipykernel
        kids = psutil.Process().children(recursive=True)
        return [k for k in kids if "ipykernel" in " ".join(k.cmdline())]
    except Exception:  # noqa: BLE001 - best effort: a process that just exited, no psutil
        return []


def _on_interrupt(signum, frame):
    """Ctrl-C / SIGINT: remember it, stop the running kernel, and raise KeyboardInterrupt.

    papermill runs the kernel through an asyncio loop, which can swallow a KeyboardInterrupt raised inside one of
    its callbacks; the runner would then wait on a kernel that keeps running.  Stopping the kernel ends the
    execution in every case, and ``run_one`` reads the flag, so an interruption is never reported as a failure of
    the notebook (nothing is written to its results)."""
    global _INTERRUPTED
    _INTERRUPTED = True
    for k in _kernel_processes():
        try:
            k.kill()
        except Exception:  # noqa: BLE001
            pass
    raise KeyboardInterrupt


def run_one_logged(nb: Path, *args) -> dict:
    """run_one in a worker process of --jobs N, saying when it starts."""
    print(f"    started {nb.stem} (pid {os.getpid()})", flush=True)
    return run_one(nb, *args)


def report(rec: dict, args) -> int:
    """Print one notebook's outcome; 1 when it failed."""
    if rec.get("skipped"):
        print("    unchanged since its last successful run: skipped (use --force to re-run)", flush=True)
    elif rec["status"] == "ok":
        out = Path(args.results) / rec["notebook"] / result_folder(args.profile, rec["parameters"]) / "report.html"
        print(f"    ok in {rec['seconds']} s -> {out}", flush=True)
    else:
        where = Path(args.results) / rec["notebook"] / result_folder(args.profile, rec["parameters"])
        kept = ("" if rec.get("published") else
                f"; the previous results in {where} are kept, see {FAILED} and {rec['notebook']}.failed.ipynb there")
        print(f"    FAILED after {rec['seconds']} s at {rec['error']}{kept}", flush=True)
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
    ap.add_argument("--log-dir", default=str(LOG_DIR),
                    help="folder of the kernels' logs: stderr (warnings, progress bars) and library log lines, "
                         "which stay out of the reports (default: cache/logs)")
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
    bad = []
    for nb in nbs:  # every notebook's parameters are checked before any runs
        try:
            checked = check_params(nb, args.profile, extra)
        except ParameterError as exc:
            bad.append(str(exc))
            continue
        extra = {k: checked.get(k, v) for k, v in extra.items()}  # e.g. a number given for a str parameter
    if bad:
        print("error: bad notebook parameters, nothing was run:\n" + "\n".join(bad), file=sys.stderr)
        return 2
    failures = 0
    run_args = (Path(args.results), args.profile, extra, args.force, args.timeout, Path(args.log_dir))
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        failures = run_all(nbs, run_args, args)
    except KeyboardInterrupt:
        print("interrupted: the results of the unfinished notebook are untouched (its staging folder is discarded "
              "on the next run); re-run to continue, finished notebooks are skipped", file=sys.stderr, flush=True)
        return 130
    print(f"{len(nbs) - failures}/{len(nbs)} notebooks succeeded (profile={args.profile})", flush=True)
    return 1 if failures else 0


def run_all(nbs, run_args, args) -> int:
    failures = 0
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
    return failures


if __name__ == "__main__":
    sys.exit(main())
