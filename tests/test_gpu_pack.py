"""scripts/gpu_pack.py and the packed-dataset hook of lib.data: a pack reads back as the folder's first n images."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from lib import data
from scripts import gpu_pack


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


def test_pack_reads_back_as_the_first_images(afhq_root, tmp_path, capsys):
    out = tmp_path / "pack"
    assert gpu_pack.main(["--data-root", str(afhq_root), "--out", str(out), "--spec", "afhq_cat:16:4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["packs"][0]["images"] == 4 and manifest["packs"][0]["of"] == 6
    assert "--data-root" in capsys.readouterr().out
    ref = data.load_dataset("afhq_cat", data_root=afhq_root, resolution=16, cache_dir=None)
    ds = data.load_dataset("afhq_cat", data_root=out, resolution=16)
    assert torch.equal(ds.images, ref.images[:4]) and ds.images.dtype == torch.uint8
    assert "packed subset: first 4 of 6" in ds.info()["note"]
    assert torch.equal(data.load_dataset("afhq_cat", data_root=out, resolution=16, max_images=2).images,
                       ref.images[:2])
    with pytest.raises(ValueError, match="holds the first 4 images"):
        data.load_dataset("afhq_cat", data_root=out, resolution=16, max_images=5)
    with pytest.raises(FileNotFoundError):  # no pack at this resolution: the usual not-found error
        data.load_dataset("afhq_cat", data_root=out, resolution=32)


def test_pack_over_budget_is_refused_before_writing(afhq_root, tmp_path):
    out = tmp_path / "pack"
    with pytest.raises(SystemExit, match="exceed"):
        gpu_pack.main(["--data-root", str(afhq_root), "--out", str(out), "--spec", "afhq_cat:64",
                       "--budget-mib", "0.01"])
    assert not out.exists()
