"""Feature extractors for Fréchet distance and precision/recall, and the reference-feature cache.

Two kinds (evaluation.md, "Metrics"):

- ``InceptionExtractor``: pytorch-fid's ``InceptionV3`` pool3 (2048-d), column ``FID_inception``. Its weights
  (``pt_inception-2015-12-05-6726825d.pth``) are looked up locally, never silently replaced, and downloaded
  only when allowed (``offline=False`` or env ``FID_ALLOW_DOWNLOAD=1``).
- ``ClassifierExtractor``: a small CNN that project code trained with a fixed seed on labelled images
  (``mnistclf``: the embedded MNIST digits; ``cifarclf``: CIFAR-10), column ``FD_<name>``. Features are the
  global-average-pooled last conv block (the layer before the linear classifier, as Inception's pool3).
  The weights are a fixed artefact, as Inception's are for FID: ``lib/metrics/weights/<name>.pt`` is committed
  beside ``<name>.json`` (its sha256, held-out accuracy and the command that made it), and
  ``get_extractor(name)`` loads that file, checking the hash, instead of training (training on another CPU gives
  other weights, hence other FD values of the very same images).  Without a committed file (``cifarclf`` until
  one is committed) ``get_extractor`` trains once into ``cache/extractors/<name>_<hash>.pt`` and warns (the
  training code: ``lib.metrics.extractor_training``, re-exported here).
  Every extractor's ``info()`` names its weights' sha256; feature caches are keyed by it (``cache_id``).

Every extractor: ``.name`` (table column), ``.key`` (short name), ``.dim``, ``.features(images)`` -> float32
[N, dim] from images [N, C, H, W] in [-1, 1] (or uint8), which first go through ``to_uint8_rgb``;
``.info()`` -> dict for results; ``.cache_id`` names its reference-feature files.

    >>> ext = get_extractor("mnistclf")            # loads lib/metrics/weights/mnistclf.pt (sha256 checked)
    >>> mu, sigma = reference_stats(ext, real, key="mnist-train-5000")
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from lib import distributed
from lib.io import atomic_path
from lib.metrics.extractor_training import (make_committed_weights,  # noqa: F401
                                          train_classifier_extractor, write_weights_record)
from lib.metrics.fid import Stats, feature_stats
from lib.metrics.image import to_uint8_rgb

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTRACTOR_CACHE_DIR = REPO_ROOT / "cache" / "extractors"     # Classifiers trained here (git-ignored).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"     # Committed classifier weights + their JSON records.
STATS_CACHE_DIR = REPO_ROOT / "cache" / "fid_stats"          # Reference features and statistics.
PROGRESS_MIN_IMAGES = 2000                                   # Show a progress bar from this many images.

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256_PREFIX = "6726825d"                        # As in the file name (torch hub convention).
ENV_WEIGHTS = "FID_INCEPTION_WEIGHTS"
ENV_ALLOW_DOWNLOAD = "FID_ALLOW_DOWNLOAD"


class MissingWeightsError(FileNotFoundError):
    """A metric's network weights are not on disk (and downloading is not allowed)."""


def content_hash(*arrays) -> str:
    """12-hex-digit SHA-256 of arrays' dtype, shape and bytes (content addressing for caches)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.numpy() if isinstance(a, torch.Tensor) else a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:12]


@contextlib.contextmanager
def torch_threads(n: Optional[int]):
    """Temporarily set torch's intra-op thread count (None: leave it)."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

#----------------------------------------------------------------------------
# Common feature loop.

class FeatureExtractor:
    """Base: quantise to uint8 RGB, run ``_forward`` in eval mode and no-grad over batches."""
    key: str = ""            # Short name ("inception", "mnistclf").
    name: str = ""           # Table column ("FID_inception", "FD_mnistclf").
    dim: int = 0
    batch_size: int = 250
    num_threads: Optional[int] = None
    cache_id: str = ""       # Identifies the exact network (weights) in cache file names.

    def features(self, images, batch_size: Optional[int] = None, progress: Optional[bool] = None,
                 split: Optional[bool] = None) -> np.ndarray:
        """Features float32 [N, dim] of images [N, C, H, W] (float in [-1, 1] or uint8).

        split -- under a multi-process group (``lib.distributed``; default: split whenever one is active)
                 each rank extracts a contiguous share of the images and the shares are gathered in order,
                 so every rank returns the features of all N images, as a single process would.
        """
        if split is None:
            split = distributed.is_distributed()
        if split and distributed.is_distributed():
            lo, hi = distributed.shard(len(images))
            part = self.features(images[lo:hi], batch_size, progress=progress if distributed.is_main() else False,
                                 split=False)
            return distributed.all_gather_cat(torch.from_numpy(part)).numpy()
        _USED[self.cache_id] = self.summary()
        u8 = to_uint8_rgb(images)
        bs = int(batch_size or self.batch_size)
        show = len(u8) >= PROGRESS_MIN_IMAGES if progress is None else progress
        self.net.eval()
        out = []
        with torch.no_grad(), torch_threads(self.num_threads):
            for start in tqdm(range(0, len(u8), bs), desc=self.name, unit="batch", disable=not show):
                x = torch.from_numpy(u8[start:start + bs]).permute(0, 3, 1, 2).to(self.device)
                out.append(self._forward(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _forward(self, x_u8: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def info(self) -> dict:
        raise NotImplementedError

    def summary(self) -> dict:
        """What every metrics.json records of the extractor behind its FD column (``used_extractors``)."""
        i = self.info()
        return {k: i.get(k) for k in ("name", "column", "weights_sha256", "weights_origin", "heldout_accuracy",
                                      "heldout_count")}


_USED: Dict[str, dict] = {}     # cache_id -> summary() of every extractor whose features this process computed.


def used_extractors() -> List[dict]:
    """Summaries (name, column, weights sha256, origin, held-out accuracy) of the extractors used in this
    process, in first-use order; ``lib.experiment.Run.save_metrics`` writes them into metrics.json."""
    return list(_USED.values())

#----------------------------------------------------------------------------
# pytorch-fid's Inception, built from a local weights file.

def inception_weight_candidates(weights_path=None) -> List[Tuple[str, Optional[Path]]]:
    """Where the FID Inception weights are looked for, in order: (description, path or None)."""
    env = os.environ.get(ENV_WEIGHTS)
    return [("weights_path argument", Path(weights_path).expanduser() if weights_path else None),
            (f"${ENV_WEIGHTS}", Path(env).expanduser() if env else None),
            ("torch hub cache", Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILENAME)]


def find_inception_weights(weights_path=None) -> Optional[Path]:
    """First existing file among ``inception_weight_candidates``, or None."""
    for _, path in inception_weight_candidates(weights_path):
        if path is not None and path.is_file():
            return path
    return None


def inception_available(weights_path=None) -> bool:
    """True when the FID Inception weights are on disk (no network access, nothing built)."""
    return find_inception_weights(weights_path) is not None


def _missing_weights_message(weights_path) -> str:
    lines = [f"FID Inception weights ({FID_WEIGHTS_FILENAME}) not found; looked for:"]
    for i, (what, path) in enumerate(inception_weight_candidates(weights_path), 1):
        lines.append(f"  ({i}) {what}: " + (f"{path} (missing)" if path is not None else "not set"))
    lines += [f"Get them by running once online with {ENV_ALLOW_DOWNLOAD}=1 (pytorch-fid downloads "
              f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILENAME} "
              f"into the torch hub cache), or copy that file here and set {ENV_WEIGHTS}=/path/to/it.",
              "No other backbone is substituted: report an FD_<classifier> column (e.g. get_extractor('mnistclf')) "
              "instead of FID_inception."]
    return "\n".join(lines)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_fid_inception(weights_file: Optional[Path]) -> nn.Module:
    """pytorch-fid's ``InceptionV3`` returning pool3 (2048-d), its weights read from ``weights_file``.

    pytorch-fid's ``fid_inception_v3()`` builds the patched torchvision Inception and fills it with
    ``load_state_dict_from_url(FID_WEIGHTS_URL)``; that one call is redirected to the local file, so the
    network is exactly pytorch-fid's. ``weights_file=None`` lets pytorch-fid download (online only).
    """
    from pytorch_fid import inception as pfi
    assert pfi.FID_WEIGHTS_URL.endswith("/" + FID_WEIGHTS_FILENAME), pfi.FID_WEIGHTS_URL
    blocks = [pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]
    if weights_file is None:
        return pfi.InceptionV3(blocks)

    def load_local(url, *args, **kwargs):
        return torch.load(weights_file, map_location="cpu", weights_only=True)

    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = load_local
    try:
        return pfi.InceptionV3(blocks)     # resize_input=True, normalize_input=True: 299x299, [0,1] -> [-1,1]
    finally:
        pfi.load_state_dict_from_url = original


class InceptionExtractor(FeatureExtractor):
    """pytorch-fid Inception-v3 pool3 features (2048-d) for ``FID_inception``.

    Input: uint8 RGB / 255 in [0, 1]; pytorch-fid resizes to 299x299 (bilinear) and rescales to [-1, 1].
    """
    key, name, dim, batch_size = "inception", "FID_inception", 2048, 50

    def __init__(self,
                 weights_path: Optional[str] = None,   # Local weights; else $FID_INCEPTION_WEIGHTS, else torch hub cache.
                 device: str = "cpu",
                 offline: Optional[bool] = None,       # Never download; None: True unless $FID_ALLOW_DOWNLOAD=1.
                 ):
        if offline is None:
            offline = os.environ.get(ENV_ALLOW_DOWNLOAD, "") != "1"
        path = find_inception_weights(weights_path)
        if path is None and offline:
            raise MissingWeightsError(_missing_weights_message(weights_path))
        self.device = torch.device(device)
        self.net = build_fid_inception(path).to(self.device).eval()
        self.weights_path = path or inception_weight_candidates()[-1][1]
        self.weights_sha256 = _file_sha256(self.weights_path) if self.weights_path.is_file() else ""
        self.weights_verified = self.weights_sha256.startswith(FID_WEIGHTS_SHA256_PREFIX)
        if not self.weights_verified:
            warnings.warn(f"{self.weights_path} is not pytorch-fid's released file (sha256 "
                          f"{self.weights_sha256[:8]}... != {FID_WEIGHTS_SHA256_PREFIX}...): FID_inception values "
                          "from it are not comparable with published FIDs")
        self.cache_id = f"inception-{self.weights_sha256[:8]}"

    def _forward(self, x_u8):
        return self.net(x_u8.float() / 255.0)[0].flatten(1)

    def info(self) -> dict:
        return dict(name=self.key, column=self.name, dim=self.dim, heldout_accuracy=None, train_data_hash=None,
                    train_count=None, weights=str(self.weights_path), weights_sha256=self.weights_sha256,
                    weights_verified=self.weights_verified, weights_origin="pytorch-fid release")

#----------------------------------------------------------------------------
# Project-trained classifiers.

CLASSIFIER_ARCH = "smallconv-v1"    # Bump when SmallConvNet or the training loop changes: new cache files.

CLASSIFIERS: Dict[str, dict] = {    # Training defaults per extractor name.
    "mnistclf": dict(epochs=5, width=16, hflip=False),     # Embedded MNIST digits (lib.data "mnist").
    "cifarclf": dict(epochs=15, width=32, hflip=True),     # CIFAR-10 images with labels.
}


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SmallConvNet(nn.Module):
    """Four conv-BN-ReLU blocks (width w, 2w, 4w, 8w) with 2x max-pooling between them, global average
    pooling -> features [B, 8w], then a linear classifier. Input: RGB in [-1, 1]."""

    def __init__(self, n_classes: int, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(_conv_block(3, w), nn.MaxPool2d(2), _conv_block(w, 2 * w), nn.MaxPool2d(2),
                                  _conv_block(2 * w, 4 * w), nn.MaxPool2d(2), _conv_block(4 * w, 8 * w),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8 * w, n_classes)
        self.dim = 8 * w

    def forward(self, x):
        return self.head(self.body(x))


def _u8_to_input(x_u8: torch.Tensor) -> torch.Tensor:
    return x_u8.float() / 127.5 - 1


class ClassifierExtractor(FeatureExtractor):
    """Penultimate-layer features of a ``SmallConvNet`` trained by ``train_classifier_extractor``.

    Images whose size differs from the training resolution are resized to it (bilinear, antialiased).
    Runs on ``num_threads`` torch threads (default 1: a net this small gains little from more, and one
    thread cannot be slowed down by oversubscribed cores).
    """

    def __init__(self, key: str, net: SmallConvNet, meta: dict, path: Optional[Path] = None,
                 loaded_from_cache: bool = False, device: str = "cpu", num_threads: Optional[int] = 1,
                 origin: str = "trained here"):
        self.key, self.name, self.dim = key, f"FD_{key}", net.dim
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.meta, self.path, self.loaded_from_cache = meta, path, loaded_from_cache
        self.num_threads = num_threads
        self.heldout_accuracy = meta["heldout_accuracy"]
        self.resolution = tuple(meta["resolution"])
        self.origin = origin                   # "committed" (lib/metrics/weights) | "trained here" | "loaded file"
        self.weights_sha256 = _file_sha256(path) if path is not None and Path(path).is_file() else ""
        # Feature caches are keyed by the weights themselves: other weights never read stale features.
        self.cache_id = f"{key}-{self.weights_sha256[:12] or meta['run_hash']}"

    def _forward(self, x_u8):
        x = _u8_to_input(x_u8)
        if tuple(x.shape[2:]) != self.resolution:
            x = F.interpolate(x, size=self.resolution, mode="bilinear", align_corners=False, antialias=True)
        return self.net.body(x)

    def info(self) -> dict:
        m = self.meta
        # A classifier built in code (tests, a user's own net) may carry only the metadata it needs; the
        # training facts are then None rather than an error.
        return dict(name=self.key, column=self.name, dim=self.dim, heldout_accuracy=self.heldout_accuracy,
                    heldout_count=m.get("heldout_count"), train_data_hash=m.get("data_hash"),
                    train_count=m.get("train_count"), train_data=m.get("data_source"),
                    resolution=list(self.resolution), config=m.get("config"),
                    train_seconds=m.get("train_seconds"), weights=str(self.path) if self.path else None,
                    weights_sha256=self.weights_sha256, weights_origin=self.origin)


def _from_checkpoint(path: Path, name: str, device: str, num_threads: Optional[int], origin: str,
                     verbose: bool) -> ClassifierExtractor:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    meta = ckpt["meta"]
    net = SmallConvNet(meta["n_classes"], meta["config"]["width"])
    net.load_state_dict(ckpt["state_dict"])
    ext = ClassifierExtractor(name, net, meta, path, True, device, num_threads, origin)
    if verbose:
        print(f"[{name}] loaded {path.name} ({origin}, sha256 {ext.weights_sha256[:12]}): held-out accuracy "
              f"{ext.heldout_accuracy:.4f}")
    return ext


def load_classifier_extractor(path, device: str = "cpu", num_threads: Optional[int] = 1,
                              verbose: bool = True) -> ClassifierExtractor:
    """A trained classifier extractor from its file ``<name>_<run_hash>.pt`` (what ``train_classifier_extractor``
    writes), without its training data: how a run on another machine (``scripts/gpu_pack.py``) uses the very
    network trained here.  Same weights, same column and ``cache_id`` as where it was trained."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no classifier extractor file {path}: train it with lib.metrics.get_extractor(name, "
                                f"data_root=...) (it lands in {EXTRACTOR_CACHE_DIR}) and copy that file here")
    meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    if meta.get("run_hash") and not path.stem.endswith(meta["run_hash"]):
        raise ValueError(f"{path.name} does not match its own run hash {meta['run_hash']}: renamed or corrupt")
    return _from_checkpoint(path, path.stem.rsplit("_", 1)[0], device, num_threads, "loaded file", verbose)


def committed_record(name: str, weights_dir=None) -> Optional[dict]:
    """The JSON record of ``name``'s committed weights (``<weights_dir>/<name>.json``), or None when none is."""
    path = Path(weights_dir or WEIGHTS_DIR) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_committed_extractor(name: str, weights_dir=None, device: str = "cpu", num_threads: Optional[int] = 1,
                             verbose: bool = False) -> ClassifierExtractor:
    """The committed classifier ``name``: ``<weights_dir>/<name>.pt``, its sha256 checked against ``<name>.json``.

    A missing file raises ``MissingWeightsError`` and a changed one ``ValueError``; neither ever falls back to
    training (that would give other weights, hence other FD values, on every machine)."""
    weights_dir = Path(weights_dir or WEIGHTS_DIR)
    record = committed_record(name, weights_dir)
    if record is None:
        raise MissingWeightsError(f"no committed weights record {weights_dir / (name + '.json')}")
    path = weights_dir / record["file"]
    if not path.is_file():
        raise MissingWeightsError(f"{name}: committed weights {path} are missing (recorded sha256 "
                                  f"{record['sha256'][:12]}...); restore them from git, or remake them with: "
                                  f"{record.get('command', 'make_committed_weights(name)')}")
    sha = _file_sha256(path)
    if sha != record["sha256"]:
        raise ValueError(f"{path} has sha256 {sha[:12]}..., but {name}.json records {record['sha256'][:12]}...: "
                         f"the weights changed; restore them from git (FD_{name} values are only comparable with "
                         f"the recorded weights)")
    ext = _from_checkpoint(path, name, device, num_threads, "committed", verbose)
    ext.record = record
    return ext

#----------------------------------------------------------------------------
# Registry.

EXTRACTORS = ("inception",) + tuple(CLASSIFIERS)


LOAD_KWARGS = ("device", "num_threads", "verbose", "data_root")   # Kwargs that do not ask for training.


def get_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Extractor by name: "inception" (kwargs: weights_path, device, offline) or a classifier name
    ("mnistclf", "cifarclf").

    A classifier with committed weights (``lib/metrics/weights/<name>.json``) is loaded from them, sha256 checked
    (``load_committed_extractor``; ``data_root`` is then not needed).  Any training kwarg of
    ``train_classifier_extractor`` (seed, epochs, cache_dir, force, images_u8, ...) trains (or loads its cache)
    instead, as does a classifier without committed weights, with a warning."""
    if name == "inception":
        return InceptionExtractor(**kwargs)
    if name in CLASSIFIERS:
        training = set(kwargs) - set(LOAD_KWARGS)
        if not training and committed_record(name) is not None:
            return load_committed_extractor(name, **{k: v for k, v in kwargs.items() if k != "data_root"})
        if not training:
            warnings.warn(f"{name}: no committed weights in {WEIGHTS_DIR}; training on first use. FD_{name} from "
                          f"weights trained here is not comparable with other machines' (make_committed_weights)")
        return train_classifier_extractor(name, **kwargs)
    raise ValueError(f"unknown extractor {name!r}; valid names: {list(EXTRACTORS)}")

#----------------------------------------------------------------------------
# Reference features and statistics, cached by content hash.

def reference_path(extractor: FeatureExtractor, images, key: str, cache_dir=None) -> Path:
    """``<cache_dir>/<extractor.cache_id>_<key>-<hash of the uint8 RGB images>.npz``."""
    safe = re.sub(r"[^A-Za-z0-9.+-]+", "-", key).strip("-") or "ref"
    return Path(cache_dir or STATS_CACHE_DIR) / f"{extractor.cache_id}_{safe}-{content_hash(to_uint8_rgb(images))}.npz"


def reference_features(extractor: FeatureExtractor, images, key: str, cache_dir=None) -> np.ndarray:
    """Features of a reference image set, computed once and cached (with their mean and covariance).

    ``key`` describes the set (e.g. "mnist-train-5000"); the file name adds a hash of the images, so a
    changed set never hits a stale cache.
    """
    path = reference_path(extractor, images, key, cache_dir)
    if path.is_file():
        with np.load(path) as z:
            return z["features"]
    feats = extractor.features(images)  # split over the ranks under a process group
    if distributed.is_main():
        mu, sigma = feature_stats(feats)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, features=feats, mu=mu, sigma=sigma, n=len(feats), column=extractor.name, key=key)
    distributed.barrier()  # the file exists on every rank's return (reference_stats reads it)
    return feats


def reference_stats(extractor: FeatureExtractor, images, key: str, cache_dir=None) -> Stats:
    """(mu, sigma) of a reference image set's features, cached as ``reference_features``."""
    path = reference_path(extractor, images, key, cache_dir)
    if not path.is_file():
        reference_features(extractor, images, key, cache_dir)
    with np.load(path) as z:
        return z["mu"], z["sigma"]
