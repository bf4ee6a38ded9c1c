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
              "lib/bluenoise.py", "lib/degradations.py")


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
    return {"profile": profile, "seeds": list(seeds), "device": device_name(device), "commit": git_commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions()}


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

    def save_figure(self, fig, name: str) -> Path:
        p = self.path(f"{name}.png")
        io.savefig(fig, p)
        return p

    def save_table(self, df, name: str = "table", floatfmt: str = ".4g") -> Path:
        io.write_text(self.path(f"{name}.csv"), df.to_csv(index=False))
        io.write_text(self.path(f"{name}.md"), df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
        return self.path(f"{name}.csv")

    def save_metrics(self, metrics: Dict[str, Any], name: str = "metrics.json") -> Path:
        body = {"notebook": self.notebook, **provenance(self.profile, self.seeds, self.device),
                "code_hash": code_hash(), **metrics}
        io.write_json(self.path(name), body)
        return self.path(name)
