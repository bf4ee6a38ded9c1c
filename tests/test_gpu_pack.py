"""scripts/gpu_pack.py and scripts/gpu_run.py (no network, no GPU): packs read back as the folder's seeded max_images draw,
the 64 MiB budget counts the working tree, the wheel set is the closure of what the GPU image lacks, and the
runner on the GPU side resumes finished steps, stops at its deadline and returns only finished results."""
from __future__ import annotations

import io as _io
import json
import subprocess
import sys
import tarfile
import zipfile

import pytest
import torch
from PIL import Image

from lib import data
from scripts import gpu_pack, gpu_run


@pytest.fixture
def afhq_root(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_DATA_ROOT, raising=False)
    g = torch.Generator().manual_seed(0)
    folder = tmp_path / "src" / "afhq_cat" / "train"
    folder.mkdir(parents=True)
    for i in range(6):
        arr = torch.randint(0, 256, (20, 24, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"cat_{i:03d}.png")
    return tmp_path / "src"


def test_pack_reads_back_as_the_seeded_draw(afhq_root, tmp_path, capsys):
    out = tmp_path / "pack"
    assert gpu_pack.main(["--data-root", str(afhq_root), "--out", str(out), "--spec", "afhq_cat:16:4",
                          "--no-wheels"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["packs"][0]["images"] == 4 and manifest["packs"][0]["of"] == 6
    assert "python3 scripts/gpu_run.py --pack" in capsys.readouterr().out
    assert manifest["wheels"] == [] and manifest["extractor"] is None  # no cifar10/ beside the data
    assert [st["name"] for st in manifest["plan"]][:2] == ["bench32", "bench128"]
    # The pack holds the folder's own seeded max_images draw, and a smaller draw is a prefix of it.
    ref = data.load_dataset("afhq_cat", data_root=afhq_root, resolution=16, max_images=4, cache_dir=None)
    ds = data.load_dataset("afhq_cat", data_root=out, resolution=16)
    assert torch.equal(ds.images, ref.images) and ds.images.dtype == torch.uint8
    assert "packed subset: seeded random draw of 4 of 6" in ds.info()["note"]
    ref2 = data.load_dataset("afhq_cat", data_root=afhq_root, resolution=16, max_images=2, cache_dir=None)
    assert torch.equal(data.load_dataset("afhq_cat", data_root=out, resolution=16, max_images=2).images,
                       ref2.images)
    with pytest.raises(ValueError, match="holds the first 4 images"):
        data.load_dataset("afhq_cat", data_root=out, resolution=16, max_images=5)
    with pytest.raises(FileNotFoundError):  # no pack at this resolution: the usual not-found error
        data.load_dataset("afhq_cat", data_root=out, resolution=32)


def test_pack_over_budget_is_refused_before_writing(afhq_root, tmp_path):
    out = tmp_path / "pack"
    with pytest.raises(SystemExit, match="exceed"):
        gpu_pack.main(["--data-root", str(afhq_root), "--out", str(out), "--spec", "afhq_cat:64",
                       "--budget-mib", "0.01", "--no-wheels"])
    assert not out.exists()


def test_budget_counts_the_working_tree(afhq_root, tmp_path, monkeypatch):
    tree = gpu_pack.tree_bytes()
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=gpu_pack.ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    assert 0 < tree <= sum((gpu_pack.ROOT / p).stat().st_size for p in listed if (gpu_pack.ROOT / p).is_file())
    monkeypatch.setattr(gpu_pack, "tree_bytes", lambda root=None: 64 * gpu_pack.MIB - 1000)  # leaves 1000 bytes
    with pytest.raises(SystemExit, match="MiB of working tree > 64 MiB"):
        gpu_pack.main(["--data-root", str(afhq_root), "--out", str(tmp_path / "p"), "--spec", "afhq_cat:64:6",
                       "--no-wheels"])


def test_carried_requirements_are_what_the_gpu_image_lacks():
    carried = {r.split("==")[0] for r in gpu_pack.carried_requirements()}
    assert {"papermill", "nbconvert", "ipykernel", "mlxtend", "pot", "pytorch-fid"} <= carried
    assert not carried & {"torch", "torchvision", "numpy", "pandas", "scipy", "matplotlib", "jupyterlab", "pytest"}


def _fake_wheel(folder, name, version, requires=()):
    path = folder / f"{name}-{version}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + \
        "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_wheel_closure_skips_the_image_optional_and_marker_excluded(tmp_path, monkeypatch):
    cache = tmp_path / "wheels"
    cache.mkdir()
    _fake_wheel(cache, "papermill", "2.7.0", ["nbclient>=0.2", "requests", "ipython; extra == 'dev'"])
    _fake_wheel(cache, "nbclient", "0.11.0", ["traitlets>=5", "old_backport; python_version < '3.9'"])
    _fake_wheel(cache, "traitlets", "5.16.1")
    _fake_wheel(cache, "ipykernel", "7.4.0", ["debugpy>=1.6", "traitlets"])
    _fake_wheel(cache, "pot", "0.9.6.post1", ["numpy>=1.16"])
    monkeypatch.setattr(gpu_pack, "_download", lambda *a: pytest.fail(f"download attempted: {a}"))
    wheels = gpu_pack.resolve_wheels(["papermill==2.7.0", "ipykernel==7.4.0", "pot==0.9.7.post1"], cache, "3.12")
    names = sorted(w.name.split("-")[0] for w in wheels)
    # requests/numpy: in the image; debugpy: optional at run time; old_backport: marker false; ipython: extra
    assert names == ["ipykernel", "nbclient", "papermill", "pot", "traitlets"]
    assert any(w.name.startswith("pot-0.9.6.post1") for w in wheels)  # the small substitute, not 0.9.7's 33 MiB


# --- gpu_run: the GPU side, with stand-in steps ---------------------------------------------------------------

def _plan(pack, steps):
    pack.mkdir(parents=True, exist_ok=True)
    (pack / "manifest.json").write_text(json.dumps({"plan": steps, "commit": "abc123"}))


def _step(name, code, results=(), env=None):
    return {"name": name, "argv": ["{python}", "-c", code], "results": list(results), **({"env": env} if env else {})}


def test_gpu_run_resumes_stops_at_the_deadline_and_returns_finished_results(tmp_path):
    root, pack, out, state = tmp_path / "repo", tmp_path / "repo" / "pack", tmp_path / "out", tmp_path / "state"
    write = ("import os, pathlib; p = pathlib.Path('results/nb/gpu_x'); p.mkdir(parents=True, exist_ok=True); "
             "(p / 'metrics.json').write_text('{\"commit\": \"unknown\", \"v\": ' + os.environ['V'] + '}')")
    steps = [_step("ok", write, ["results/nb/gpu_x"], env={"V": "7"}),
             _step("fails", "raise SystemExit(3)", ["results/nb/gpu_fail"]),
             _step("slow", "import time; time.sleep(60)", ["results/nb/gpu_slow"])]
    _plan(pack, steps)
    kw = dict(state_dir=state, site=tmp_path / "site", root=root, min_start_s=0, grace_s=5)
    assert gpu_run.run_plan(pack, 4.0, out, **kw) == 1  # a failed step: non-zero
    got = json.loads((out / "gpu_state.json").read_text())
    assert got["steps"] == {"ok": "done", "fails": "failed (rc 3)", "slow": "stopped at deadline"}
    assert got["commit"] == "abc123" and got["seconds"] < 30
    with tarfile.open(out / gpu_run.ARCHIVE) as tar:
        assert sorted(tar.getnames()) == ["results/nb/gpu_x", "results/nb/gpu_x/metrics.json"]
    # the next call on the same machine skips the finished step and still returns its results
    steps[1] = _step("fails", "pass", ["results/nb/gpu_fail"])  # a changed step is run again
    _plan(pack, steps[:2])
    assert gpu_run.run_plan(pack, 30.0, out, **kw) == 0
    assert json.loads((out / "gpu_state.json").read_text())["steps"] == {"ok": "done earlier", "fails": "done"}
    # back here: the folder replaces the old one whole and the pack's commit fills in "unknown"
    here = tmp_path / "here"
    (here / "results" / "nb" / "gpu_x").mkdir(parents=True)
    (here / "results" / "nb" / "gpu_x" / "stale.png").write_text("old")
    assert gpu_run.unpack(out / gpu_run.ARCHIVE, root=here, commit="abc123") == ["results/nb/gpu_x"]
    assert sorted(p.name for p in (here / "results" / "nb" / "gpu_x").iterdir()) == ["metrics.json"]
    got = json.loads((here / "results" / "nb" / "gpu_x" / "metrics.json").read_text())
    assert got["v"] == 7 and got["commit"] == "abc123" and "no .git" in got["commit_source"]


def test_gpu_run_budget_spent_leaves_steps_unstarted(tmp_path):
    pack = tmp_path / "pack"
    _plan(pack, [_step("a", "pass")])
    assert gpu_run.run_plan(pack, 5.0, tmp_path / "out", state_dir=tmp_path / "s", site=tmp_path / "site",
                            root=tmp_path, min_start_s=60) == 0
    assert json.loads((tmp_path / "out" / "gpu_state.json").read_text())["steps"] == {"a": "not started (budget spent)"}


def test_unpack_refuses_paths_outside_results(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data_ = b"x"
        info = tarfile.TarInfo("results/../../evil.txt")
        info.size = len(data_)
        tar.addfile(info, _io.BytesIO(data_))
    with pytest.raises(SystemExit, match="not a plain path under results/"):
        gpu_run.unpack(archive, root=tmp_path / "here")
    assert not (tmp_path / "evil.txt").exists()


def test_gpu_run_installs_the_pack_wheels_offline(tmp_path):
    """A real wheel (built here from a one-module project) is installed with --no-index and importable by steps."""
    proj = tmp_path / "proj"
    (proj / "gpupacktoy").mkdir(parents=True)
    (proj / "gpupacktoy" / "__init__.py").write_text("VALUE = 42\n")
    (proj / "pyproject.toml").write_text('[project]\nname = "gpupacktoy"\nversion = "1.0"\n'
                                         '[build-system]\nrequires = ["setuptools"]\n'
                                         'build-backend = "setuptools.build_meta"\n')
    pack = tmp_path / "pack"
    (pack / "wheels").mkdir(parents=True)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(pack / "wheels"), str(proj)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel offline here: {build.stderr[-300:]}")
    _plan(pack, [_step("imp", "import gpupacktoy, os; assert gpupacktoy.VALUE == 42; "
                              "assert os.environ['JUPYTER_PATH'].startswith(os.environ['SITE_DIR'])",
                       env={"SITE_DIR": str(tmp_path / "site")})])
    assert gpu_run.run_plan(pack, 120.0, tmp_path / "out", state_dir=tmp_path / "s", site=tmp_path / "site",
                            root=tmp_path, min_start_s=0) == 0
    assert (tmp_path / "site" / "gpupacktoy" / "__init__.py").is_file()
