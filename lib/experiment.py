"""What every notebook records: where its outputs go, and the provenance of each number.

    run = Run("epd_table1_unconditional", profile="quick", seeds=[0, 1])
    run.save_table(df, "table")          # table.csv + table.md
    run.save_figure(fig, "samples")      # samples.png
    run.save_metrics({...})              # metrics.json with provenance (profile, device, seeds, commit, versions)
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import torch

from lib import io

REPO_ROOT = Path(__file__).resolve().parents[1]
# Overridable so tests (and users) can redirect outputs; run_all.sh leaves the defaults.
RESULTS_DIR = Path(os.environ.get("DIFFUSION_RESULTS_DIR", REPO_ROOT / "results"))
RUNS_DIR = Path(os.environ.get("DIFFUSION_RUNS_DIR", REPO_ROOT / "cache" / "runs"))


# The modules that define what a trained model is (process maths, network, training loop, randomness):
# trained models are keyed by these only, so adding a notebook helper elsewhere in lib/ does not retrain.
MODEL_CODE = ("lib/processes", "lib/unet.py", "lib/train.py", "lib/schedules.py", "lib/rng.py",
              "lib/bluenoise.py", "lib/degradations.py", "lib/precision.py")


def code_hash(parts=None) -> str:
    """Hash of the library code (all of lib/, or only ``parts``, paths relative to the repo root)."""
    h = hashlib.sha256()
    files = sorted((REPO_ROOT / "lib").rglob("*.py")) if parts is None else sorted(
        f for part in parts for f in ((REPO_ROOT / part).rglob("*.py") if (REPO_ROOT / part).is_dir()
                                      else [REPO_ROOT / part]))
    for f in files:
        h.update(f.relative_to(REPO_ROOT).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def git_commit() -> str:
    """HEAD commit, with '-dirty' when lib/ or notebooks/ have uncommitted changes; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "notebooks"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device: Any) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def library_versions() -> Dict[str, str]:
    import numpy, scipy, sklearn, skimage  # noqa: E401
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "scikit-image": skimage.__version__}


def provenance(profile: str, seeds: Iterable[int], device: Any) -> Dict[str, Any]:
    return {"profile": profile, "seeds": list(seeds), "device": device_name(device),
            "precision": profile_precision(profile, device), "commit": git_commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions()}


def profile_precision(profile: str, device: Any) -> Optional[str]:
    """The precision ("bf16" | "fp32") the study code trains and samples in under ``profile`` on ``device``
    (``Profile.precision`` resolved by ``lib.precision``); ``profile`` may be a tagged results folder
    (``result_folder``: ``quick_afhq_cat`` is the quick profile); None for a name that is no profile."""
    from lib import precision
    from lib.profiles import PROFILES
    profile = next((p for p in PROFILES if profile == p or profile.startswith(f"{p}_")), None)
    if profile is None:
        return None
    try:
        return precision.resolve(PROFILES[profile].precision, device)
    except (RuntimeError, ValueError):
        return None


def used_artefacts() -> Dict[str, Any]:
    """The feature extractors (name, weights sha256, held-out accuracy) and datasets (with class histograms) this
    process used, for every metrics.json; read only from modules already imported, so nothing is loaded here."""
    import sys
    out: Dict[str, Any] = {}
    feats, data = sys.modules.get("lib.metrics.features"), sys.modules.get("lib.data")
    if feats is not None and feats.used_extractors():
        out["extractors"] = feats.used_extractors()
    if data is not None and data.loaded_datasets():
        out["datasets"] = data.loaded_datasets()
    return out


def result_folder(profile: str, tag: str = "") -> str:
    """Results sub-folder of a run: ``<profile>``, or ``<profile>_<tag>`` with a tag (e.g. quick_afhq_cat).
    The notebooks and the runner (which stages and publishes that folder) both name it here."""
    return f"{profile}_{tag}" if tag else profile


def in_notebook() -> bool:
    """True inside an IPython kernel (a papermill run or Jupyter), False in scripts and tests."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_png(path) -> bool:
    """Display a saved PNG inline when running in a notebook kernel (no-op elsewhere); True when displayed."""
    if not in_notebook():
        return False
    from IPython.display import Image, display
    display(Image(filename=str(path)))
    return True


class Run:
    """Output folder ``results/<notebook>/<profile>/`` and its artifact writers (all writes are atomic)."""

    def __init__(self, notebook: str, profile: str, seeds: Iterable[int], device: Any = "cpu",
                 results_dir: Optional[Path] = None):
        self.notebook = notebook
        self.profile = profile
        self.seeds = list(seeds)
        self.device = device
        self.dir = Path(results_dir or RESULTS_DIR) / notebook / profile
        self.dir.mkdir(parents=True, exist_ok=True)
        # Model checkpoints of this notebook (git-ignored); keyed by the lib code so a code change retrains.
        self.cache_dir = RUNS_DIR / notebook / profile / code_hash()

    def path(self, name: str) -> Path:
        return self.dir / name

    def save_figure(self, fig, name: str, show: bool = True) -> Path:
        """``<name>.png``; inside a notebook kernel (papermill, Jupyter) the saved PNG is also displayed inline,
        so the report shows every figure the run wrote (``show=False`` leaves that to ``lib.reports.report.show_figure``)."""
        p = self.path(f"{name}.png")
        io.savefig(fig, p)
        if in_notebook():
            import matplotlib.pyplot as plt
            plt.close(fig)  # shown once, as saved (an inline backend would show it again at the cell's end)
            if show:
                show_png(p)
        return p

    def save_table(self, df, name: str = "table", floatfmt: str = ".4g") -> Path:
        io.write_text(self.path(f"{name}.csv"), df.to_csv(index=False))
        io.write_text(self.path(f"{name}.md"), df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
        return self.path(f"{name}.csv")

    def save_metrics(self, metrics: Dict[str, Any], name: str = "metrics.json") -> Path:
        body = {"notebook": self.notebook, **provenance(self.profile, self.seeds, self.device),
                "code_hash": code_hash(), **used_artefacts(), **metrics}
        io.write_json(self.path(name), body)
        return self.path(name)


# ----------------------------------------------------------------------------------------------------------
# Notebook parameters: the names and types a notebook's parameters cell declares (``name: type = value  # help``).

class ParameterError(ValueError):
    """A parameter that the notebook does not declare, or a value of the wrong type."""


_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list, tuple),
          "tuple": (list, tuple), "dict": (dict,)}


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_value(text: str) -> Any:
    """A command-line value (``-p NAME=VALUE``, ``--set KEY=VALUE``) read as YAML: ``0.5``, ``true``,
    ``[0, 1]``, ``afhq_cat``; plus ``1e-3``, which YAML 1.1 leaves a string, read as a float.  An empty
    value is the empty string."""
    import yaml
    if not text.strip():
        return ""
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return float(v) if isinstance(v, str) and _FLOAT.fullmatch(v.strip()) else v


def notebook_parameters(notebook) -> Dict[str, dict]:
    """{name: {"inferred_type_name", "default", "help"}} of a notebook's parameters cell (papermill's inspector)."""
    import papermill as pm
    return dict(pm.inspect_notebook(str(notebook)))


def validate_parameters(notebook, params: Dict[str, Any], declared: Optional[Dict[str, dict]] = None,
                        ignore_unknown: Iterable[str] = ()) -> Dict[str, Any]:
    """Check ``params`` against the notebook's parameters cell before it runs; return them (a number given for a
    ``str`` parameter becomes its text, as YAML-parsed command-line values are ambiguous).

    Raises ``ParameterError`` naming every unknown parameter (with the valid names) and every value whose type
    differs from the declared one (an int is accepted for a float).  Names in ``ignore_unknown`` may be absent
    from the notebook.  Usable at the top of a notebook too::

        experiment.validate_parameters("notebooks/epd_table1_unconditional.ipynb", dict(resolution=resolution))
    """
    declared = notebook_parameters(notebook) if declared is None else declared
    name = Path(str(notebook)).stem
    problems, out = [], dict(params)
    unknown = [k for k in params if k not in declared and k not in set(ignore_unknown)]
    for k in unknown:
        problems.append(f"unknown parameter {k!r}")
    for k, v in params.items():
        if k not in declared:
            continue
        type_name = str(declared[k].get("inferred_type_name") or "None")
        base = type_name.replace("typing.", "")
        optional = base.startswith("Optional[") or base.endswith("| None") or declared[k].get("default") == "None"
        base = base[len("Optional["):-1] if base.startswith("Optional[") else base.split("|")[0].strip()
        base = base.split("[")[0].strip().lower()
        ok_types = _TYPES.get(base)
        if ok_types is None or (v is None and optional):
            continue  # undeclared / unusual annotation: nothing to check
        if base == "str" and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = str(v)
            continue
        bad_bool = isinstance(v, bool) and base in ("int", "float")
        if bad_bool or not isinstance(v, ok_types):
            problems.append(f"parameter {k!r} must be {type_name} (default {declared[k].get('default')}), "
                            f"got {v!r} ({type(v).__name__})")
    if problems:
        valid = ", ".join(f"{k}: {d.get('inferred_type_name')}" for k, d in declared.items())
        raise ParameterError(
            f"notebook {name}: " + "; ".join(problems) + f".\n  valid parameters: {valid}.\n  fix: correct the "
            f"name or value (-p NAME=VALUE is read as YAML: -p seeds=[0,1], -p resolution=32); "
            f"`papermill --help-notebook {notebook}` documents each parameter")
    return out
