"""Gaussian blue noise for BNDM (Huang et al. 2024; baselines_spec.md §3.1, §3.2, §3.7).

Blue noise here is a zero-mean Gaussian random field b ~ N(0, Σ) with unit per-pixel variance and a power
spectrum that vanishes near DC.  It is always made *from* a white draw w ~ N(0, I), and BNDM mixes
γ w + (1 - γ) b with the **same** w, so every generator returns the pair (b, w).

Two methods:

* ``"cholesky"`` (the official method, with our spectrum since the authors' matrix is not public, §3.7):
  Σ over a 64×64 tile is the autocovariance of a radial high-pass spectrum P evaluated on a 128×128 grid
  (so the tile is a non-periodic window), L = cholesky(Σ + jitter·I) and b = L w per channel and per tile
  (raster-flattened).  Image sizes: a multiple of 64 is covered by independent 64×64 tiles (seams, as the
  official 128² code; the official code places the tiles transposed, which changes nothing statistically);
  a size below 64 uses the covariance of the top-left window of a 64×64 tile (see ``cholesky_factor``).
  L is cached in memory (per Python process and device) and on disk under ``<repo>/cache/bluenoise/``.
* ``"fft"`` (ablation, any size, periodic): b = Re(IFFT2(√P · FFT2(w))) with P on the image's own grid.
  Same marginal law of b, different joint law of (w, b) (Cov(w, b) is the constant mean(√P)).

    >>> b, w = blue_noise((8, 3, 64, 64), torch.Generator().manual_seed(0))
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from scipy.special import expit

from lib import io
from lib import rng as rng_lib

METHODS = ("cholesky", "fft")
SPECTRA = ("logistic", "gaussian")
TILE = 64                 # Side of the Cholesky tile (official: 64).
GRID = 128                # Frequency grid the tile covariance is built on (§3.7 step 2: 2× the tile).
JITTER = 1e-6             # Added to the diagonal of Σ before the Cholesky factorisation.
CACHE_DIR = Path(__file__).resolve().parents[1] / "cache" / "bluenoise"
_FORMAT_VERSION = 1       # Bump when the construction of Σ changes (part of the disk-cache key).

_MEMORY: Dict[tuple, torch.Tensor] = {}


# ----------------------------------------------------------------------------------------------------------
# The spectrum and the covariance it implies.

def radial_frequency(h: int, w: Optional[int] = None) -> np.ndarray:
    """ρ = √(f_y² + f_x²) in cycles/pixel on an h×w FFT grid (``np.fft.fftfreq`` layout; Nyquist = 0.5)."""
    w = h if w is None else w
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    return np.sqrt(fy * fy + fx * fx)


def blue_noise_spectrum(h: int = GRID, w: Optional[int] = None, kind: str = "logistic", center: float = 0.20,
                        width: float = 0.03) -> np.ndarray:
    """Radial power spectrum P on an h×w FFT grid, float64, with P(0) = 0 and mean(P) = 1 (§3.7 steps 1-2).

    logistic -- P ∝ 1 / (1 + exp(-(ρ - center)/width))   (default: ≈ 0 below 0.12, plateau above 0.3)
    gaussian -- P ∝ 1 - exp(-ρ² / (2 width²))              (the alternative; ``center`` unused, use width=0.12)

    mean(P) = 1 makes the autocovariance Re(IFFT2(P)) equal 1 at lag 0 (unit per-pixel variance).
    """
    rho = radial_frequency(h, w)
    if kind == "logistic":
        P = expit((rho - center) / width)
    elif kind == "gaussian":
        P = -np.expm1(-rho * rho / (2.0 * width * width))
    else:
        raise ValueError(f"unknown blue-noise spectrum {kind!r}; valid names: {list(SPECTRA)}")
    P[0, 0] = 0.0
    return P / P.mean()


def autocovariance(P: np.ndarray) -> np.ndarray:
    """C(Δ) = Re(IFFT2(P)): the (periodic) autocovariance of the stationary field with spectrum P."""
    return np.fft.ifft2(P).real


def covariance_matrix(tile: Tuple[int, int] = (TILE, TILE), grid: int = GRID, kind: str = "logistic",
                      center: float = 0.20, width: float = 0.03) -> np.ndarray:
    """Σ_ij = C((p_i - p_j) mod grid) over the pixels of an h×w window, raster order (§3.7 step 3), float64."""
    h, w = tile
    if h > grid or w > grid:
        raise ValueError(f"tile {tile} is larger than the frequency grid {grid}")
    C = autocovariance(blue_noise_spectrum(grid, grid, kind, center, width))
    ys, xs = np.divmod(np.arange(h * w, dtype=np.int32), w)
    dy = (ys[:, None] - ys[None, :]) % grid
    dx = (xs[:, None] - xs[None, :]) % grid
    return C[dy, dx]


# ----------------------------------------------------------------------------------------------------------
# The Cholesky factor, cached in memory and on disk.

def _params(tile, grid, kind, center, width, jitter) -> dict:
    return {"tile": [int(tile[0]), int(tile[1])], "grid": int(grid), "kind": str(kind), "center": float(center),
            "width": float(width), "jitter": float(jitter), "version": _FORMAT_VERSION}


def cache_path(params: dict, cache_dir=CACHE_DIR) -> Path:
    """Disk location of the factor for ``params`` (readable prefix + hash of every parameter)."""
    key = hashlib.blake2b(json.dumps(params, sort_keys=True).encode(), digest_size=6).hexdigest()
    h, w = params["tile"]
    return Path(cache_dir) / f"L_{params['kind']}_{h}x{w}_g{params['grid']}_{key}.pt"


def cholesky_factor(tile: Tuple[int, int] = (TILE, TILE), grid: int = GRID, kind: str = "logistic",
                    center: float = 0.20, width: float = 0.03, jitter: float = JITTER, device="cpu",
                    cache_dir=CACHE_DIR) -> torch.Tensor:
    """Lower-triangular L (float32, [h·w, h·w]) with L Lᵀ = Σ + jitter·I for an h×w window (§3.7 step 4).

    For (64, 64) this is the official-size factor (64 MiB).  A smaller window (h, w) uses Σ restricted to the
    top-left h×w pixels of a 64×64 tile, i.e. b has exactly the law of a top-left crop of a full tile; its
    joint law with w differs from cropping L·w_full (that would need white noise outside the image).
    Cached in memory per (parameters, device) and on disk (atomic write) unless ``cache_dir`` is None.
    """
    params = _params(tile, grid, kind, center, width, jitter)
    device = torch.device(device)
    mem_key = (json.dumps(params, sort_keys=True), str(device))
    if mem_key in _MEMORY:
        return _MEMORY[mem_key]
    cpu_key = (mem_key[0], "cpu")
    L = _MEMORY.get(cpu_key)
    if L is None:
        path = cache_path(params, cache_dir) if cache_dir is not None else None
        if path is not None and path.exists():
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
                if blob["params"] == params:
                    L = blob["L"]
            except Exception:  # a damaged cache file is rebuilt below
                L = None
        if L is None:
            sigma = torch.from_numpy(covariance_matrix(tuple(tile), grid, kind, center, width))
            sigma.diagonal().add_(jitter)
            L = torch.linalg.cholesky(sigma).to(torch.float32).contiguous()
            if path is not None:
                io.torch_save({"params": params, "L": L}, path)
        _MEMORY[cpu_key] = L
    if device.type != "cpu":
        L = L.to(device)
        _MEMORY[mem_key] = L
    return L


def clear_memory_cache() -> None:
    """Drop the in-memory factors (the disk cache is kept)."""
    _MEMORY.clear()


# ----------------------------------------------------------------------------------------------------------
# Generators.

def tiling(h: int, w: int, tile: int = TILE) -> Tuple[int, int]:
    """Tile (th, tw) used for an h×w image: each side ≤ ``tile`` (one cropped tile) or a multiple of it."""
    out = []
    for n in (h, w):
        if n <= tile:
            out.append(n)
        elif n % tile == 0:
            out.append(tile)
        else:
            raise ValueError(f"Cholesky blue noise needs sides <= {tile} or multiples of {tile}, got {h}x{w}; "
                             f"use method='fft' for other sizes")
    return out[0], out[1]


def _to_tiles(x: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, nH, nW, th·tw] (raster order inside each tile)."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // th, th, W // tw, tw).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(B, C, H // th, W // tw, th * tw)


def _from_tiles(x: torch.Tensor, H: int, W: int, th: int, tw: int) -> torch.Tensor:
    B, C = x.shape[:2]
    x = x.reshape(B, C, H // th, W // tw, th, tw).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(B, C, H, W)


def _apply_per_row(x: torch.Tensor, LT: torch.Tensor) -> torch.Tensor:
    """x @ Lᵀ computed one batch row at a time, each row a fresh (aligned) copy: row i of the result depends
    only on row i of x, bit for bit, whatever the batch size.

    One matmul over the whole batch is not batch-independent: BLAS (MKL here) picks its kernel, blocking and
    hence the order of the sum over the tile's pixels from the matrix shape (the number of rows), so the same
    row rounds differently in a batch of 1 and of 3 (seen on an AVX-512 EPYC).  Every per-row call has the
    same shape [C·tiles, th·tw] and an input at the allocator's 64-byte alignment, so it takes the same path.
    Cost (1 thread, B = 64, C = 3): 16² 3 ms (batched 4.5 ms), 32² 38 ms (9 ms), 64² 1.8 s (0.2 s: each row
    re-reads the 64 MiB factor).  Across CPUs / BLAS builds the bits may still differ (float32 sum order).
    """
    return torch.stack([row.clone() @ LT for row in x]) if x.shape[0] else x @ LT


def blue_noise(shape, generator, method: str = "cholesky", white: Optional[torch.Tensor] = None, *,
               kind: str = "logistic", center: float = 0.20, width: float = 0.03, grid: int = GRID,
               tile: int = TILE, jitter: float = JITTER, device=None, cache_dir=CACHE_DIR,
               batch_independent: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Blue noise b of ``shape`` [B, C, H, W] and the white noise w it was made from: returns (b, w).

    ``white`` -- use this w (shape ``shape``) instead of drawing it from ``generator``.
    Channels and tiles get independent white noise and the same spatial covariance (§3.2).
    Row i of b depends only on row i of w (bit for bit on a given machine, any batch size; ``_apply_per_row``).
    ``batch_independent=False`` -- one matmul over the batch instead: the same values to float32 rounding
    (~1e-7), 2-9× faster for 32²-64² tiles, for callers that only need the statistics of a large draw.
    """
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"blue_noise expects a [B, C, H, W] shape, got {shape}")
    if white is None:
        w = rng_lib.randn(shape, generator, device=device or "cpu")
    else:
        if tuple(white.shape) != shape:
            raise ValueError(f"white noise of shape {tuple(white.shape)} does not match {shape}")
        w = white
    H, W = shape[2:]
    with torch.autocast(device_type=w.device.type, enabled=False):
        if method == "cholesky":
            th, tw = tiling(H, W, tile)
            L = cholesky_factor((th, tw), grid, kind, center, width, jitter, w.device, cache_dir).to(w.dtype)
            tiles = _to_tiles(w, th, tw)
            bt = _apply_per_row(tiles, L.T) if batch_independent else tiles @ L.T
            b = _from_tiles(bt, H, W, th, tw)                                        # b = L w on every tile
        elif method == "fft":
            P = torch.as_tensor(blue_noise_spectrum(H, W, kind, center, width), device=w.device)
            b = torch.fft.ifft2(torch.fft.fft2(w.to(torch.float64)) * P.sqrt()).real.to(w.dtype)
        else:
            raise ValueError(f"unknown blue-noise method {method!r}; valid names: {list(METHODS)}")
    return b, w


def blue_noise_moments(h: int, w: int, method: str = "cholesky", *, kind: str = "logistic", center: float = 0.20,
                       width: float = 0.03, grid: int = GRID, tile: int = TILE, jitter: float = JITTER,
                       device="cpu", cache_dir=CACHE_DIR) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel Var(b) and Cov(w, b) maps [h, w] (float64) for the generator of ``blue_noise``.

    Cholesky: Var(b_i) = Σ_ii + jitter = Σ_j L_ij², Cov(w_i, b_i) = L_ii (tiled like the noise).
    FFT: Var(b) = mean(P) = 1 and Cov(w, b) = mean(√P) everywhere.
    The mix γw + (1-γ)b then has variance γ² + (1-γ)² Var(b) + 2γ(1-γ) Cov(w, b) (§4.3.1).
    """
    if method == "cholesky":
        th, tw = tiling(h, w, tile)
        L = cholesky_factor((th, tw), grid, kind, center, width, jitter, "cpu", cache_dir).to(torch.float64)
        var = (L * L).sum(dim=1).reshape(th, tw).repeat(h // th, w // tw)
        cov = L.diagonal().reshape(th, tw).repeat(h // th, w // tw)
    elif method == "fft":
        P = blue_noise_spectrum(h, w, kind, center, width)
        var = torch.full((h, w), float(P.mean()), dtype=torch.float64)
        cov = torch.full((h, w), float(np.sqrt(P).mean()), dtype=torch.float64)
    else:
        raise ValueError(f"unknown blue-noise method {method!r}; valid names: {list(METHODS)}")
    return var.to(device), cov.to(device)
