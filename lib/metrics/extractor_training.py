"""Training of the project's classifier extractors (``mnistclf``, ``cifarclf``): ``train_classifier_extractor``
(a small CNN, fixed seed, one CPU thread, cached under ``cache/extractors``), and ``make_committed_weights`` /
``write_weights_record``, which made the committed ``lib/metrics/weights/<name>.pt`` and ``<name>.json``.

Loading and using the extractors stays in ``lib.metrics.features``, which re-exports these three functions; the
names taken from it are imported inside the functions here, since it imports this module.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.io import torch_save
from lib.metrics.image import to_uint8_rgb

if TYPE_CHECKING:
    from lib.metrics.features import ClassifierExtractor

#----------------------------------------------------------------------------
# Training data and held-out accuracy.

def _load_training_set(name: str, images_u8, labels, data_root) -> Tuple[object, object, str]:
    """(images, labels, source description) for a classifier: given arrays, or lib.data's dataset."""
    if images_u8 is not None:
        if labels is None:
            raise ValueError(f"{name}: images_u8 needs labels")
        return images_u8, labels, "images passed by the caller"
    from lib.data import load_dataset
    if name == "mnistclf":
        ds = load_dataset("mnist")
    elif name == "cifarclf":
        if data_root is None and not os.environ.get("DIFFUSION_DATA_ROOT"):
            raise ValueError("cifarclf trains on labelled CIFAR-10 images: pass images_u8= and labels=, or "
                             "data_root= (a folder with cifar10/train/<class>/*.png, see lib.data)")
        ds = load_dataset("cifar10", data_root=data_root, split="train")
    else:
        raise ValueError(f"{name}: pass images_u8= and labels= to train a classifier extractor on them")
    return ds.images, ds.labels, json.dumps(ds.info(), sort_keys=True)


def _heldout_split(labels: np.ndarray, seed: int, fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """Stratified (fit, heldout) indices: lib.data's seeded split, the one its 'heldout' split uses."""
    from lib.data import heldout_split
    fit, held = heldout_split(len(labels), torch.from_numpy(labels), seed=seed, fraction=fraction)
    return fit.numpy(), held.numpy()


def _accuracy(net: nn.Module, u8: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    from lib.metrics.features import _u8_to_input
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(_u8_to_input(u8[i:i + batch_size])).argmax(1) == labels[i:i + batch_size]).sum())
                      for i in range(0, len(u8), batch_size))
    return correct / max(len(u8), 1)


#----------------------------------------------------------------------------
# Training, and the committed weights it made.

def write_weights_record(ext: ClassifierExtractor, weights_dir=None, command: str = "") -> Path:
    """Copy ``ext``'s weights file to ``<weights_dir>/<name>.pt`` and write ``<name>.json`` (sha256, held-out
    accuracy and counts, training config, data hash, the command that made it)."""
    from lib.metrics.features import WEIGHTS_DIR, _file_sha256
    weights_dir = Path(weights_dir or WEIGHTS_DIR)
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / f"{ext.key}.pt"
    if Path(ext.path).resolve() != target.resolve():
        target.write_bytes(Path(ext.path).read_bytes())
    m = ext.meta
    record = dict(name=ext.key, column=ext.name, file=target.name, sha256=_file_sha256(target),
                  bytes=target.stat().st_size, heldout_accuracy=m["heldout_accuracy"],
                  heldout_count=m["heldout_count"], train_count=m["train_count"], train_data_hash=m["data_hash"],
                  train_data=m["data_source"], resolution=m["resolution"], feature_dim=ext.dim, config=m["config"],
                  run_hash=m["run_hash"], train_seconds=round(float(m["train_seconds"]), 1),
                  torch_version=m.get("torch_version"),
                  made_by="lib.metrics.features.train_classifier_extractor (fixed seed, 1 CPU thread)",
                  made_on=f"{time.strftime('%Y-%m-%d', time.gmtime(Path(ext.path).stat().st_mtime))}, "
                          f"{platform.machine()} CPU",
                  command=command or f"python -c \"from lib.metrics.features import make_committed_weights as m; "
                                     f"m('{ext.key}')\"")
    (weights_dir / f"{ext.key}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return target


def make_committed_weights(name: str = "mnistclf", weights_dir=None, data_root=None, **train_kwargs) -> Path:
    """How the committed weights were made: train ``name`` from scratch (``train_classifier_extractor``, its
    defaults: seed 0, one CPU thread) and write ``<weights_dir>/<name>.pt`` + ``<name>.json``.  Run once::

        OMP_NUM_THREADS=1 python -c "from lib.metrics.features import make_committed_weights as m; m('mnistclf')"
        OMP_NUM_THREADS=1 python -c "from lib.metrics.features import make_committed_weights as m; \\
            m('cifarclf', data_root='../shared/assets')"      # ~30 min on one core

    Another machine gives other weights (and other FD values): commit the result, never retrain it per run."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        ext = train_classifier_extractor(name, cache_dir=tmp, data_root=data_root, force=True, **train_kwargs)
        return write_weights_record(ext, weights_dir)


def train_classifier_extractor(
    name: str = "mnistclf",               # Extractor name; column FD_<name>.
    images_u8=None,                       # Training images [N, C, H, W] (uint8 or [-1, 1]); None: lib.data's set for name.
    labels=None,                          # Class indices [N].
    seed: int = 0,                        # Seeds the split, the initialisation and the batch order.
    heldout_fraction: float = 0.1,        # Share held out (stratified) to measure accuracy.
    epochs: Optional[int] = None,         # None: CLASSIFIERS[name] (mnistclf: 5).
    width: Optional[int] = None,          # Base width w; features are 8w-d (mnistclf: 16 -> 128-d).
    hflip: Optional[bool] = None,         # Random horizontal flips (natural images only).
    batch_size: int = 64,
    lr: float = 3e-3,                     # Peak learning rate of the one-cycle schedule (AdamW).
    cache_dir=None,                       # Default: <repo>/cache/extractors.
    data_root=None,                       # For cifarclf without images_u8: lib.data's CIFAR-10 root.
    force: bool = False,                  # Retrain even when the cache has this run.
    num_threads: Optional[int] = 1,       # Torch threads while training and extracting (None: unchanged).
    device: str = "cpu",
    verbose: bool = True,
) -> ClassifierExtractor:
    """Train (or load from cache) a small CNN classifier whose penultimate layer is a feature extractor.

    Augmentation: a random shift of up to 2 px per batch (zero padding), plus flips when ``hflip``.
    Cache file ``<cache_dir>/<name>_<hash>.pt``, hash over the training data (uint8 RGB and labels) and the
    training config, so any change gives a new file; it stores the weights, held-out accuracy, data hash
    and counts.
    """
    from lib.metrics.features import (CLASSIFIER_ARCH, CLASSIFIERS, EXTRACTOR_CACHE_DIR, ClassifierExtractor,
                                      SmallConvNet, _u8_to_input, content_hash, load_classifier_extractor,
                                      torch_threads)
    defaults = CLASSIFIERS.get(name, CLASSIFIERS["cifarclf"])
    epochs = int(epochs if epochs is not None else defaults["epochs"])
    width = int(width if width is not None else defaults["width"])
    hflip = bool(hflip if hflip is not None else defaults["hflip"])
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    images, labels, source = _load_training_set(name, images_u8, labels, data_root)
    u8 = to_uint8_rgb(images)                                         # [N, H, W, 3]
    labels = np.asarray(torch.as_tensor(labels), dtype=np.int64)
    if len(labels) != len(u8):
        raise ValueError(f"{len(u8)} images but {len(labels)} labels")
    data_hash = content_hash(u8, labels)
    config = dict(arch=CLASSIFIER_ARCH, seed=seed, heldout_fraction=heldout_fraction, epochs=epochs,
                  width=width, hflip=hflip, batch_size=batch_size, lr=lr, max_shift=2)
    run_hash = hashlib.sha256(json.dumps([data_hash, config], sort_keys=True).encode()).hexdigest()[:12]
    path = Path(cache_dir or EXTRACTOR_CACHE_DIR) / f"{name}_{run_hash}.pt"

    if path.is_file() and not force:
        return load_classifier_extractor(path, device, num_threads, verbose)

    n_classes = int(labels.max()) + 1
    fit, held = _heldout_split(labels, seed, heldout_fraction)
    x_all = torch.from_numpy(u8).permute(0, 3, 1, 2).contiguous()    # uint8 [N, 3, H, W]
    y_all = torch.from_numpy(labels)
    x_fit, y_fit = x_all[fit], y_all[fit]
    steps_per_epoch = -(-len(fit) // batch_size)
    gen = torch.Generator().manual_seed(seed)
    start = time.time()
    with torch_threads(num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SmallConvNet(n_classes, width).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
        for epoch in range(epochs):
            net.train()
            perm = torch.randperm(len(fit), generator=gen)
            for i in range(0, len(fit), batch_size):
                idx = perm[i:i + batch_size]
                xb = F.pad(x_fit[idx], (2, 2, 2, 2))                      # Random shift by up to 2 px.
                dy, dx = torch.randint(0, 5, (2,), generator=gen).tolist()
                xb = xb[:, :, dy:dy + x_fit.shape[2], dx:dx + x_fit.shape[3]]
                if hflip:
                    flip = torch.rand(len(xb), generator=gen) < 0.5
                    xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
                loss = F.cross_entropy(net(_u8_to_input(xb).to(device)), y_fit[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if verbose:
                print(f"[{name}] epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}  ({time.time() - start:.1f} s)")
        accuracy = _accuracy(net, x_all[held].to(device), y_all[held].to(device))
    seconds = time.time() - start
    meta = dict(n_classes=n_classes, config=config, run_hash=run_hash, heldout_accuracy=accuracy,
                heldout_count=len(held), train_count=len(fit), data_hash=data_hash, data_count=len(u8),
                data_source=source, resolution=list(u8.shape[1:3]), train_seconds=seconds,
                torch_version=str(torch.__version__))
    net = net.cpu().eval()
    torch_save(dict(state_dict=net.state_dict(), meta=meta), path)
    if verbose:
        print(f"[{name}] trained in {seconds:.1f} s: held-out accuracy {accuracy:.4f} "
              f"({len(held)} images); saved {path}")
    return ClassifierExtractor(name, net, meta, path, False, device, num_threads)
