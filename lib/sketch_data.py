"""Sketches for ``lib.data``'s "sketch" dataset: its folder layout (TU-Berlin PNG class folders or Quick, Draw!
``*.ndjson``), reading Quick, Draw! drawings, rasterising their strokes, and loading (and caching) such a split.

``lib.data.load_dataset("sketch", ...)`` stays the entry point, and ``lib.data`` re-exports ``rasterize_strokes``
and ``QUICKDRAW_NOTE``.  What the folder datasets share (the stratified draw, the cache key and file,
``ImageDataset``) stays in ``lib.data`` and is imported inside the functions here, so imports point one way.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from lib.data import ImageDataset

QUICKDRAW_NOTE = ("Quick, Draw! strokes (rasterised here) used as a stand-in for the TU-Berlin "
                  "Human-Sketch set of the EPD paper")

#----------------------------------------------------------------------------
# Folder layout and loading.

def _sketch_folder(folder: Path) -> Tuple[Path, List[Path]]:
    """(folder, its sorted ``*.ndjson`` files) of a sketch split; [] when it holds TU-Berlin PNG class folders."""
    if (folder / "png").is_dir():    # TU-Berlin's archive: sketches/png/<class>/.
        folder = folder / "png"
    return folder, sorted(p for p in folder.iterdir() if p.suffix.lower() == ".ndjson")


def _load_quickdraw(name, folder, files, split, resolution, channels, max_images, cache_dir, seed=0) -> ImageDataset:
    """A Quick, Draw! split from its ``*.ndjson`` ``files``; the cache key covers whole files (the draw is of lines)."""
    from lib.data import ImageDataset, _cache_path, _cached, _folder_key, _map_to_array, _size_mtime
    stats = [[p.name, *_size_mtime(p)] for p in files]
    key = _folder_key(stats, resolution, channels, max_images, seed)
    cache = _cache_path(cache_dir, name, split, resolution, channels, key)

    def build():
        drawings, words, names, sub = _read_ndjson(files, max_images, seed)
        u8 = _map_to_array(lambda d: _rasterize(d, resolution, channels), drawings,
                           (channels, resolution, resolution), f"{name}: rasterising")
        return dict(images=u8, labels=torch.tensor([names.index(w) for w in words], dtype=torch.int64),
                    class_names=names, subset=sub)

    payload = _cached(cache, key, build)
    images = payload["images"]
    return ImageDataset(images, payload["labels"], name, str(folder), int(images.shape[-1]), channels,
                        split, payload["class_names"], QUICKDRAW_NOTE, payload.get("subset", ""))

#----------------------------------------------------------------------------
# Reading and rasterising (module-level functions, so tests can replace them).

def _read_ndjson(files: Sequence[Path], max_images: Optional[int] = None,
                 seed: int = 0) -> Tuple[list, List[str], List[str], str]:
    """Quick, Draw! records: (drawings, words, class names, subset note), files in sorted order, lines in file
    order; with ``max_images`` a seeded draw stratified by file (one file per class), in draw order."""
    from lib.data import _draw, _subset_note
    lines = []                                   # (file index, file, line number, text) of non-empty lines
    for k, f in enumerate(files):
        with open(f, encoding="utf-8") as fh:
            lines += [(k, f, lineno, line) for lineno, line in enumerate(fh, 1) if line.strip()]
    idx = _draw([k for k, *_ in lines], len(lines), max_images, seed)
    chosen = lines if idx is None else [lines[i] for i in idx]
    drawings, words, first = [], [], {}
    for k, f, lineno, line in chosen:
        rec = _ndjson_record(f, lineno, line)
        drawings.append(rec["drawing"])
        words.append(str(rec.get("word", f.stem)))
    for k, f, lineno, line in lines:             # every file's class, drawn or not (the histogram shows all)
        if k not in first:
            first[k] = str(_ndjson_record(f, lineno, line).get("word", f.stem))
    names = sorted(set(words) | set(first.values()))
    return drawings, words, names, _subset_note(True, len(lines), idx, seed)


def _ndjson_record(f: Path, lineno: int, line: str) -> dict:
    try:
        rec = json.loads(line)
        rec["drawing"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read Quick, Draw! record {f}:{lineno} "
                         f"(expected a JSON object with a 'drawing' field): {e}") from e
    return rec


def rasterize_strokes(drawing, resolution: int, supersample: int = 4, centre: bool = True) -> np.ndarray:
    """Quick, Draw! strokes [[x...], [y...], ...] in a 256x256 space -> uint8 [resolution, resolution].

    Black lines on white, drawn at ``supersample`` x the resolution and LANCZOS-downsampled (antialiasing).
    The line width is 6/256 of the side, at least 1.5 px (3 px at 128, 1.5 px at 64 and at 32); a margin
    of one line width keeps strokes on the border whole.  ``centre``: move the bounding box to the middle
    (the simplified Quick, Draw! data is stored top-left aligned; TU-Berlin sketches are centred).
    Drawings outside 0..255 (raw, unsimplified data) are first scaled to fit by their bounding box.
    """
    from lib.data import RESAMPLE
    size = resolution * supersample
    width = int(round(max(1.5 * supersample, size * 6 / 256)))
    pts = [np.asarray(s[:2], dtype=np.float64) for s in drawing if len(s) >= 2 and len(s[0])]
    scale, shift = 1.0, np.zeros((2, 1))                     # Drawing space -> 0..255.
    if pts:
        allp = np.concatenate(pts, axis=1)
        lo, hi = allp.min(axis=1, keepdims=True), allp.max(axis=1, keepdims=True)
        if lo.min() < 0 or hi.max() > 255:
            scale = 255 / max(float((hi - lo).max()), 1.0)
            shift = -lo * scale
        if centre:
            shift = shift + (255 - (hi - lo) * scale) / 2 - (lo * scale + shift)
    to_canvas = (size - 1 - 2 * width) / 255
    canvas = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(canvas)
    for s in pts:
        c = width + (s * scale + shift) * to_canvas
        xy = list(zip(c[0].tolist(), c[1].tolist()))
        if len(xy) == 1:
            (x, y), r = xy[0], width / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
        else:
            draw.line(xy, fill=0, width=width, joint="curve")
    return np.asarray(canvas.resize((resolution, resolution), RESAMPLE))


def _rasterize(drawing, resolution: int, channels: int) -> np.ndarray:
    arr = rasterize_strokes(drawing, resolution)[None]
    return np.repeat(arr, channels, axis=0)
