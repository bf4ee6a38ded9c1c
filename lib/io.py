"""Atomic file writes: a result or checkpoint is either complete on disk or absent, never half-written."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsync'ed and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def torch_save(obj: Any, path) -> None:
    """``torch.save`` through a temporary file and an atomic rename."""
    with atomic_path(path, suffix=".pt.tmp") as tmp:
        torch.save(obj, tmp)


def cache_key(*inputs: Any, code: tuple = ()) -> str:
    """The one cache rule: a key over the inputs (JSON, sorted keys) and the source of the code that turns them
    into the cached value (``code``: paths relative to the repo root, hashed by ``lib.experiment.code_hash``)."""
    import hashlib
    from lib.experiment import code_hash
    blob = json.dumps([list(inputs), code_hash(code) if code else ""], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached_torch(path, compute) -> Any:
    """``torch.load(path)`` if it exists, else ``compute()`` written atomically to ``path`` (``torch_save``)."""
    path = Path(path)
    if path.exists():
        return torch.load(path, weights_only=False)
    value = compute()
    torch_save(value, path)
    return value


def savefig(fig, path, **kwargs) -> None:
    """Save a matplotlib figure atomically (format from the target's extension)."""
    path = Path(path)
    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
