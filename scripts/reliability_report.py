"""Execute every fault and bad input in a temporary folder and record what actually happens: results/reliability.md.

    python scripts/reliability_report.py                 # all cases -> results/reliability.md
    python scripts/reliability_report.py --out X.md      # elsewhere (the tests do this)

Each case does the bad thing for real (a runner subprocess killed with SIGKILL, a corrupt PNG, a NaN loss, ...)
and records the observed outcome: the exception class and the first line of its message, or the exit status,
and whether any file that existed before was changed (SHA-256 of every file of a sentinel folder before and
after).  ``expected`` says what the case must show; tests/test_reliability.py runs the cases and asserts it, so
the table cannot silently go wrong.  Everything runs on one CPU thread in well under two minutes.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNNER = ROOT / "scripts" / "run_notebooks.py"

# ----------------------------------------------------------------------------------------------------------------
# Helpers shared with tests/test_reliability.py

TOY_PARAMS = '''profile: str = "smoke"  # compute profile
tag: str = ""  # suffix of the results folder
value: int = 1  # a number written into metrics.json
scale: float = 1.0  # a float parameter
seeds: list = [0]  # seeds
hold: str = ""  # while this file exists the notebook waits after its first artifact (tests interrupt it there)
fail: bool = False  # raise an error after the first artifact'''

TOY_CODE = '''import time
from pathlib import Path
import pandas as pd
from lib import experiment
run = experiment.Run("{name}", f"{{profile}}_{{tag}}" if tag else profile, seeds)
run.save_table(pd.DataFrame({{"value": [value], "scale": [scale]}}), "part1")
while hold and Path(hold).exists():
    time.sleep(0.05)
if fail:
    raise RuntimeError("deliberate failure after the first artifact")
run.save_table(pd.DataFrame({{"value": [value * 2]}}), "part2")
run.save_metrics({{"value": value, "scale": scale}})'''


def write_toy_notebook(path: Path) -> Path:
    """A tiny notebook that writes two tables and metrics.json through lib.experiment.Run (seconds to run)."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(TOY_PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(TOY_CODE.format(name=path.stem))]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def tree_hashes(folder: Path) -> Dict[str, str]:
    """{relative path: sha256} of every file under ``folder`` (staging folders excluded)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".staging" not in p.relative_to(folder).parts}


def changed_files(before: Dict[str, str], after: Dict[str, str]) -> List[str]:
    """Files that existed before and were modified or removed (new files are not damage)."""
    return sorted(k for k in before if after.get(k) != before[k])


def runner_env(extra: Optional[dict] = None) -> dict:
    return {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra or {})}


def runner_cmd(*args) -> list:
    return [sys.executable, str(RUNNER), "--profile", "smoke", *map(str, args)]


def run_runner(*args, env: Optional[dict] = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(runner_cmd(*args), cwd=ROOT, env=runner_env(env), capture_output=True, text=True,
                          timeout=timeout)


def start_runner(*args, env: Optional[dict] = None) -> subprocess.Popen:
    """The runner in its own process group (so a signal reaches it and its kernel, as Ctrl-C in a shell does)."""
    return subprocess.Popen(runner_cmd(*args), cwd=ROOT, env=runner_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not Path(path).exists():
        if proc.poll() is not None:
            raise RuntimeError(f"process ended (rc {proc.returncode}) before {path} appeared:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def descendants(pid: int) -> List[int]:
    """Child processes of ``pid``, recursively (Linux /proc)."""
    out = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for c in children.read_text().split():
                out += [int(c)] + descendants(int(c))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def signal_group(proc: subprocess.Popen, sig: int, timeout: float = 60) -> int:
    """Send ``sig`` to the process group that ``proc`` leads and wait for it (SIGKILL after ``timeout``).

    The notebook kernel runs in its own session (jupyter_client), so it does not get the signal; after its runner
    died it exits by itself within about a second (ipykernel's parent poller).  We wait for that, and SIGKILL a
    kernel that is still there after 10 s, so no orphan writes anything after the interruption."""
    kids = descendants(proc.pid)
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    t0 = time.time()
    while any(_alive(k) for k in kids) and time.time() - t0 < 10:
        time.sleep(0.1)
    for k in kids:
        if _alive(k):
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)
    return proc.returncode


def temp_files(folder: Path) -> List[str]:
    """Half-written files: atomic-write temporaries and running notebooks outside the staging area."""
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob(".*")
                  if p.is_file() and ".staging" not in p.relative_to(folder).parts)


# Training in a subprocess: TRAIN_CODE.format(run_dir=..., out=..., slow=0 or 1). Prints each logged step.
TRAIN_CODE = '''
import dataclasses, sys, time, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
from lib.processes import make_process
from lib.train import TrainConfig, train
from lib.unet import UNet, UNetConfig
torch.manual_seed(0)
net = UNet(dataclasses.replace(UNetConfig.tiny(in_channels=3), model_channels=16))
g = torch.Generator().manual_seed(0)
data = torch.randint(0, 256, (16, 3, 16, 16), generator=g, dtype=torch.uint8)
cfg = TrainConfig(steps=30, batch_size=4, lr=1e-3, ckpt_every=2, log_every=1, seed=3)
def on_log(e):
    print("step", e["step"], flush=True)
    if {slow}:
        time.sleep(0.15)
res = train(make_process("ddpm", T=50), net, data, cfg, run_dir={run_dir!r}, progress=False, on_log=on_log)
torch.save({{"net": res.net.state_dict(), "ema": res.ema.state_dict(), "log": [e["loss"] for e in res.log],
            "step": res.step}}, {out!r})
'''


def train_cmd(run_dir: Path, out: Path, slow: bool) -> list:
    code = TRAIN_CODE.format(root=str(ROOT), run_dir=str(run_dir), out=str(out), slow=int(slow))
    return [sys.executable, "-c", code]


def same_training(a: Path, b: Path) -> bool:
    import torch
    x, y = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    return (x["step"] == y["step"] and x["log"] == y["log"]
            and all(torch.equal(x[k][n], y[k][n]) for k in ("net", "ema") for n in x[k]))


# ----------------------------------------------------------------------------------------------------------------
# The cases

@dataclasses.dataclass
class Outcome:
    case: str
    action: str
    observed: str
    damaged: str          # "none" or the files changed
    ok: bool              # observed == what the case must show
    expected: str


def _exc(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def _raises(fn: Callable, sentinel: Optional[Path] = None):
    before = tree_hashes(sentinel) if sentinel else {}
    try:
        fn()
        exc = None
    except Exception as e:  # noqa: BLE001 - the outcome is what we record
        exc = e
    damaged = changed_files(before, tree_hashes(sentinel)) if sentinel else []
    return exc, damaged


def _damage_text(files: List[str]) -> str:
    return "none" if not files else ", ".join(files)


class Context:
    """A work folder with a sentinel results tree holding a finished toy run (shared by the runner cases)."""

    def __init__(self, work: Path):
        self.work = Path(work)
        self.nbs = self.work / "notebooks"
        self.results = self.work / "results"
        self.runs = self.work / "runs"
        write_toy_notebook(self.nbs / "toy_a.ipynb")
        write_toy_notebook(self.nbs / "toy_b.ipynb")
        self.hold = self.work / "hold"
        (self.nbs / "params").mkdir(parents=True, exist_ok=True)
        (self.nbs / "params" / "smoke.yaml").write_text(f"toy_b: {{hold: {json.dumps(str(self.hold))}}}\n")
        self._prepared = False

    def env(self) -> dict:
        return {"DIFFUSION_RUNS_DIR": str(self.runs)}

    def runner(self, *args, timeout: float = 300) -> subprocess.CompletedProcess:
        return run_runner("--notebooks", self.nbs, "--results", self.results, *args, env=self.env(), timeout=timeout)

    def prepare(self) -> None:
        """A first, successful run of both toy notebooks: the results that every later fault must not damage."""
        if self._prepared:
            return
        proc = self.runner()
        if proc.returncode != 0:
            raise RuntimeError(f"the sentinel run failed:\n{proc.stdout}\n{proc.stderr}")
        self._prepared = True


def case_unknown_profile(ctx: Context) -> Outcome:
    ctx.prepare()
    before = tree_hashes(ctx.results)
    proc = ctx.runner("--profile", "huge")
    msg = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:120])
    damaged = changed_files(before, tree_hashes(ctx.results))
    ok = proc.returncode == 2 and "invalid choice" in proc.stderr and not damaged
    return Outcome("unknown profile", "`run_notebooks.py --profile huge`", f"exit {proc.returncode}: {msg}",
                   _damage_text(damaged), ok, "exit 2, argparse lists the valid profiles")


def _bad_param(ctx: Context, case: str, param: str, must: str) -> Outcome:
    ctx.prepare()
    before = tree_hashes(ctx.results)
    listing = sorted(p.relative_to(ctx.results).as_posix() for p in ctx.results.rglob("*"))
    proc = ctx.runner("--force", "-p", param)
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    first = next((ln for ln in lines if must in ln), lines[-1] if lines else "")
    damaged = changed_files(before, tree_hashes(ctx.results))
    new = sorted(set(p.relative_to(ctx.results).as_posix() for p in ctx.results.rglob("*")) - set(listing))
    ok = proc.returncode == 2 and must in proc.stderr and "valid parameters" in proc.stderr and not damaged \
        and not new
    return Outcome(case, f"`run_notebooks.py -p {param}`",
                   f"exit {proc.returncode}, nothing run ({len(new)} new files): {first[:160]}",
                   _damage_text(damaged), ok, f"exit 2, message names {must!r} and lists the valid parameters")


def case_unknown_parameter(ctx: Context) -> Outcome:
    return _bad_param(ctx, "unknown parameter", "resolutoin=32", "unknown parameter 'resolutoin'")


def case_wrong_parameter_type(ctx: Context) -> Outcome:
    return _bad_param(ctx, "wrong parameter type", "seeds=a", "parameter 'seeds' must be list")


def _data_case(ctx: Context, case: str, action: str, make: Callable[[Path], dict], exc_type, must: str) -> Outcome:
    from lib.data import load_dataset
    root = ctx.work / case.replace(" ", "_")
    root.mkdir(parents=True, exist_ok=True)
    kwargs = make(root)
    exc, damaged = _raises(lambda: load_dataset(cache_dir=ctx.work / "data_cache", **kwargs), sentinel=root)
    ok = isinstance(exc, exc_type) and must in str(exc) and not damaged
    return Outcome(case, action, _exc(exc) if exc else "no error", _damage_text(damaged), ok,
                   f"{exc_type.__name__} mentioning {must!r}")


def _img(path: Path, size, color=(10, 20, 30)) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def case_missing_dataset_folder(ctx: Context) -> Outcome:
    return _data_case(ctx, "missing dataset folder", "`load_dataset('afhq_cat', data_root=<folder without afhq_cat/>)`",
                      lambda root: dict(name="afhq_cat", data_root=root), FileNotFoundError, "afhq_cat")


def case_empty_image_folder(ctx: Context) -> Outcome:
    def make(root):
        (root / "celeba").mkdir(exist_ok=True)
        (root / "celeba" / "notes.txt").write_text("no images here")
        return dict(name="celeba", data_root=root)
    return _data_case(ctx, "empty image folder", "`load_dataset('celeba')` on a folder holding only a .txt", make,
                      FileNotFoundError, "no images")


def case_mixed_size_folder(ctx: Context) -> Outcome:
    def make(root):
        _img(root / "a.png", (16, 16))
        _img(root / "b.png", (24, 30))
        return dict(name="folder", data_root=root, resolution=None)
    return _data_case(ctx, "mixed-size image folder", "`load_dataset('folder', resolution=None)` on 16² and 24×30 "
                      "PNGs", make, ValueError, "resolution=")


def case_corrupt_image(ctx: Context) -> Outcome:
    def make(root):
        _img(root / "a.png", (16, 16))
        (root / "x.png").write_bytes(b"this is not a png" * 10)
        return dict(name="folder", data_root=root, resolution=8)
    return _data_case(ctx, "corrupt image file", "`load_dataset('folder')` with one garbage `x.png`", make,
                      ValueError, "x.png")


def case_missing_fid_weights(ctx: Context) -> Outcome:
    from lib.metrics import MissingWeightsError, get_extractor
    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", "FID_INCEPTION_WEIGHTS", "FID_ALLOW_DOWNLOAD")}
    os.environ["TORCH_HOME"] = str(ctx.work / "empty_torch_home")
    os.environ.pop("FID_INCEPTION_WEIGHTS", None)
    os.environ.pop("FID_ALLOW_DOWNLOAD", None)
    try:
        exc, _ = _raises(lambda: get_extractor("inception"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ok = isinstance(exc, MissingWeightsError) and "FID_INCEPTION_WEIGHTS" in str(exc)
    return Outcome("missing FID weights", "`get_extractor('inception')` offline, empty $TORCH_HOME",
                   _exc(exc) if exc else "no error", "none", ok,
                   "MissingWeightsError saying where to put the weights (no download attempted)")


def _tiny_unet():
    import torch
    from lib.unet import UNet, UNetConfig
    torch.manual_seed(0)
    return UNet(dataclasses.replace(UNetConfig.tiny(in_channels=3), model_channels=16))


def _data_u8():
    import torch
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (16, 3, 16, 16), generator=g, dtype=torch.uint8)


def case_checkpoint_other_config(ctx: Context) -> Outcome:
    from lib.processes import make_process
    from lib.train import CheckpointMismatchError, TrainConfig, train
    run_dir = ctx.work / "ckpt_mismatch"
    cfg = TrainConfig(steps=2, batch_size=4, log_every=1)
    train(make_process("edge_preserving", T=50), _tiny_unet(), _data_u8(), cfg, run_dir=run_dir, progress=False)
    exc, damaged = _raises(lambda: train(make_process("edge_preserving", T=50, tau="cosine"), _tiny_unet(),
                                         _data_u8(), dataclasses.replace(cfg, steps=4), run_dir=run_dir,
                                         progress=False), sentinel=run_dir)
    ok = isinstance(exc, CheckpointMismatchError) and not damaged
    return Outcome("checkpoint from another configuration",
                   "resume an EPD run (τ linear) with τ = cosine in the same run folder",
                   _exc(exc) if exc else "loaded", _damage_text(damaged) + " (checkpoint not overwritten)"
                   if not damaged else _damage_text(damaged), ok, "CheckpointMismatchError, checkpoint unchanged")


def case_nan_loss(ctx: Context) -> Outcome:
    import torch
    from lib.processes import make_process
    from lib.train import NonFiniteLossError, TrainConfig, load_checkpoint, train

    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _tiny_unet()
            self.config = self.inner.config
            self.calls = 0

        def forward(self, x, t):
            self.calls += 1
            out = self.inner(x, t)
            return out * float("nan") if self.calls > 6 else out

    run_dir = ctx.work / "nan"
    cfg = TrainConfig(steps=20, batch_size=4, log_every=2, ckpt_every=3)
    exc, _ = _raises(lambda: train(make_process("ddpm", T=50), Exploding(), _data_u8(), cfg, run_dir=run_dir,
                                   progress=False))
    ckpt = load_checkpoint(run_dir / "checkpoint.pt") if (run_dir / "checkpoint.pt").exists() else None
    finite = ckpt is not None and all(torch.isfinite(v).all() for v in ckpt["net"].values() if v.is_floating_point())
    kept = f"checkpoint of step {ckpt['step']} kept, all weights finite" if finite else "no finite checkpoint"
    ok = isinstance(exc, NonFiniteLossError) and "step 8" in str(exc) and finite and ckpt["step"] == 6
    return Outcome("NaN loss", "the network output turns NaN from the 7th forward call (checkpoint every 3 steps)",
                   _exc(exc) if exc else "no error", f"none ({kept})", ok,
                   "NonFiniteLossError naming the step; last good checkpoint (step 6) kept")


def interrupt_runner(ctx: Context, sig: int, value: int = 5) -> dict:
    """Run both toy notebooks again (new value), interrupt the second one mid-run with ``sig``, then re-run.

    Returns what was observed: exit codes, the damaged files of the interrupted notebook's previous results,
    half-written files, and the re-run's output."""
    from lib.experiment import code_hash
    ctx.prepare()
    lib_before = code_hash()  # the skip key includes lib/: an edit to lib/ meanwhile legitimately re-runs toy_a
    before = tree_hashes(ctx.results / "toy_b")
    ctx.hold.write_text("hold")
    proc = start_runner("--notebooks", ctx.nbs, "--results", ctx.results, "-p", f"value={value}",
                        env=ctx.env())
    try:
        wait_for(ctx.results / ".staging" / "toy_b" / "smoke" / "toy_b" / "smoke" / "part1.csv", proc)
        time.sleep(0.3)
        rc = signal_group(proc, sig)
    finally:
        if proc.poll() is None:
            signal_group(proc, signal.SIGKILL)
        ctx.hold.unlink(missing_ok=True)
    out = proc.stdout.read()
    after = tree_hashes(ctx.results / "toy_b")
    half = temp_files(ctx.results)
    a_value = json.loads((ctx.results / "toy_a" / "smoke" / "metrics.json").read_text())["value"]
    rerun = ctx.runner("-p", f"value={value}")
    b_metrics = json.loads((ctx.results / "toy_b" / "smoke" / "metrics.json").read_text())
    staging_left = [p for p in (ctx.results / ".staging").rglob("*") if p.is_file()] \
        if (ctx.results / ".staging").exists() else []
    return {"rc": rc, "out": out, "damaged": changed_files(before, after), "new_in_b": sorted(set(after) - set(before)),
            "half_written": half, "a_value_after_kill": a_value, "value": value, "rerun": rerun, "b_value_after_rerun":
            b_metrics["value"], "a_skipped": "unchanged since its last successful run" in rerun.stdout.split(
                "toy_b")[0] or code_hash() != lib_before, "staging_left": staging_left}


def _interrupt_case(ctx: Context, sig: int, value: int = 5) -> Outcome:
    r = interrupt_runner(ctx, sig, value)
    name = signal.Signals(sig).name
    ok = (not r["damaged"] and not r["new_in_b"] and not r["half_written"] and r["rerun"].returncode == 0
          and r["b_value_after_rerun"] == value and r["a_value_after_kill"] == value and r["a_skipped"]
          and not r["staging_left"])
    observed = (f"runner exit {r['rc']}; previous toy_b results byte-identical ({len(r['new_in_b'])} files added), "
                f"{len(r['half_written'])} half-written files; re-run exit {r['rerun'].returncode}: finished "
                f"toy_a {'skipped' if r['a_skipped'] else 'NOT skipped'}, toy_b completed "
                f"(value {r['b_value_after_rerun']}), staging {'empty' if not r['staging_left'] else 'LEFT'}")
    return Outcome(f"{name} of run_notebooks mid-notebook",
                   f"`run_notebooks.py` on two toy notebooks; {name} to its process group while the second is "
                   "between two artifacts; then re-run", observed,
                   _damage_text(r["damaged"] + r["new_in_b"]), ok,
                   "previous results unchanged, no half-written file; re-run skips the finished notebook and "
                   "completes the other")


def case_sigkill_runner(ctx: Context) -> Outcome:
    return _interrupt_case(ctx, signal.SIGKILL)


def kill_training_and_resume(work: Path) -> dict:
    """Uninterrupted training vs. training SIGKILLed mid-run then re-run to the end (same run folder)."""
    work = Path(work)
    env = runner_env()
    full = subprocess.run(train_cmd(work / "full", work / "full.pt", slow=False), env=env, capture_output=True,
                          text=True, timeout=300)
    if full.returncode != 0:
        raise RuntimeError(full.stderr)
    proc = subprocess.Popen(train_cmd(work / "split", work / "split.pt", slow=True), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    killed_at = None
    for line in proc.stdout:
        if line.startswith("step") and int(line.split()[1]) >= 11:
            killed_at = int(line.split()[1])
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    import torch
    ckpt_step = torch.load(work / "split" / "checkpoint.pt", weights_only=False)["step"]
    resumed = subprocess.run(train_cmd(work / "split", work / "split.pt", slow=False), env=env, capture_output=True,
                             text=True, timeout=300)
    return {"killed_at": killed_at, "rc_killed": proc.returncode, "ckpt_step": ckpt_step,
            "rc_resumed": resumed.returncode, "stderr": resumed.stderr[-2000:],
            "equal": resumed.returncode == 0 and same_training(work / "full.pt", work / "split.pt"),
            "partial_file_written": (work / "split.pt").exists() and resumed.returncode != 0}


def case_sigkill_training(ctx: Context) -> Outcome:
    r = kill_training_and_resume(ctx.work / "train_kill")
    ok = r["rc_killed"] == -signal.SIGKILL and r["killed_at"] is not None and 0 < r["ckpt_step"] < 30 and r["equal"]
    observed = (f"killed after step {r['killed_at']} (exit {r['rc_killed']}), last checkpoint step {r['ckpt_step']}; "
                f"re-run exit {r['rc_resumed']}: weights, EMA and loss log "
                f"{'bit-identical to' if r['equal'] else 'DIFFERENT from'} an uninterrupted run")
    return Outcome("SIGKILL of training mid-run, then resume",
                   "`lib.train.train` (tiny U-Net, 30 steps, checkpoint every 2) in a subprocess, SIGKILL at "
                   "step ≥ 11, run again", observed, "none (the checkpoint is written atomically)", ok,
                   "resumed run equal to the uninterrupted one (CPU, bit-exact)")


CASES = [case_unknown_profile, case_unknown_parameter, case_wrong_parameter_type, case_missing_dataset_folder,
         case_empty_image_folder, case_mixed_size_folder, case_corrupt_image, case_missing_fid_weights,
         case_checkpoint_other_config, case_nan_loss, case_sigkill_runner, case_sigkill_training]


def run_cases(work: Path, cases=CASES) -> List[Outcome]:
    import torch
    torch.set_num_threads(1)
    ctx = Context(work)
    out = []
    for case in cases:
        t0 = time.time()
        try:
            o = case(ctx)
        except Exception as e:  # noqa: BLE001 - a case that cannot run is a failed row, not a crash
            o = Outcome(case.__name__, "(case crashed)", _exc(e), "?", False, "")
        o.observed = o.observed.replace(str(ctx.work.resolve()), "<tmp>").replace(str(ctx.work), "<tmp>")
        print(f"  {'ok ' if o.ok else 'BAD'} {o.case} ({time.time() - t0:.1f} s): {o.observed}", flush=True)
        out.append(o)
    return out


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(outcomes: List[Outcome], seconds: float) -> str:
    import torch
    from lib.experiment import git_commit
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    lines = ["# Reliability: what each fault and bad input actually does", "",
             f"Generated by `scripts/reliability_report.py` on {now}, commit `{git_commit()}`, torch "
             f"{torch.__version__}, {torch.get_num_threads()} CPU thread(s), {seconds:.0f} s. Every case was executed "
             "in a temporary folder; \"files damaged\" lists the files that existed before the case (a sentinel "
             "results tree, the input folder or the run folder) and were modified or removed (SHA-256 before/after). "
             "`tests/test_reliability.py` runs the same cases and asserts each expected outcome.", "",
             "| case | what was done | observed outcome | files damaged | as expected |",
             "|---|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {_md(o.case)} | {_md(o.action)} | {_md(o.observed)} | {_md(o.damaged)} | "
                     f"{'yes' if o.ok else 'NO (expected: ' + _md(o.expected) + ')'} |")
    lines += ["", f"{sum(o.ok for o in outcomes)}/{len(outcomes)} cases behave as expected.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "reliability.md"), help="Markdown file to write")
    ap.add_argument("--work", default=None, help="work folder (default: a fresh temporary folder, deleted after)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="reliability_") as tmp:
        outcomes = run_cases(Path(args.work or tmp))
    from lib import io
    io.write_text(args.out, markdown(outcomes, time.time() - t0))
    print(f"{sum(o.ok for o in outcomes)}/{len(outcomes)} as expected -> {args.out}", flush=True)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
