"""Sliced Wasserstein distance of Laplacian-pyramid patches (Karras et al. 2018, "Progressive Growing of
GANs", Sec. 5 / App. D: the multi-scale statistical similarity metric). No network weights involved.

Per level, fine -> coarse:
1. Images are uint8-quantised RGB in [0, 1]. The pyramid is scikit-image's: levels 0 .. L-2 are
   ``pyramid_laplacian`` band-pass layers (image minus its Gaussian-smoothed self, at 1, 1/2, 1/4 ...
   resolution); the coarsest level L-1 is the Gaussian low-pass image at that resolution
   (``pyramid_gaussian``), as in Karras et al., whose coarsest level is the low-pass residual.
   By default levels go down to the last resolution >= MIN_LEVEL_SIZE (32x32 images: 32, 16, 8).
2. ``patches_per_image`` 7x7x3 patches per image at uniform random positions (numpy generator seeded by
   (seed, level), so both sets use the same positions for the same image index); a level with no more
   positions than that (8x8: 4) contributes every position instead.
3. Each set's patches are normalised per channel by that set's own mean and std over all its patches of the
   level (Karras et al. normalise real and fake descriptors separately), then flattened to 147-d.
4. POT's ``ot.sliced_wasserstein_distance`` with p = 1 (the mean over projections of the 1-D W1, as Karras
   et al.) over ``n_projections`` random unit directions drawn with a fixed seed.
Values are raw (Karras et al.'s tables show them x 10^3). Finite samples put a floor under SWD (two
independent draws of one distribution give about 0.01-0.02 at the defaults), so compare values only at the
same image count, patches_per_image and n_projections. Defaults are sized for < 5 s on 500 vs 500 32x32
images on 2 CPU cores (Karras et al.: 128 patches, 512 projections, 16k images).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from lib.metrics.image import to_uint8_rgb

PATCH_SIZE = 7            # Side of the square neighbourhoods (Karras et al.: 7x7).
MIN_LEVEL_SIZE = 8        # Default: keep coarsening while the level is at least this many pixels wide.
IMAGE_CHUNK = 256         # Images per pyramid call (they are stacked along the channel axis).
PROJECTION_CHUNK = 128    # Projections per POT call (bounds memory to patches x chunk).


#----------------------------------------------------------------------------
# Pyramid and patches.

def default_levels(size: int, min_size: int = MIN_LEVEL_SIZE) -> int:
    """Number of pyramid levels for images of side ``size``: halve while the side stays >= min_size."""
    levels = 1
    while -(-size // 2 ** levels) >= min_size:
        levels += 1
    return levels


def pyramid_levels(images, levels: int) -> List[np.ndarray]:
    """Laplacian pyramid of an image set: ``levels`` arrays [N, h_l, w_l, 3] float64, fine -> coarse."""
    from skimage.transform import pyramid_gaussian, pyramid_laplacian
    x = to_uint8_rgb(images).astype(np.float64) / 255.0
    n, h, w, c = x.shape
    out: List[List[np.ndarray]] = [[] for _ in range(levels)]
    for start in range(0, n, IMAGE_CHUNK):
        # Stack images along the channel axis so one pyramid call serves the whole chunk.
        chunk = x[start:start + IMAGE_CHUNK]
        stack = chunk.transpose(1, 2, 0, 3).reshape(h, w, -1)
        kw = dict(max_layer=levels - 1, downscale=2, preserve_range=True, channel_axis=-1)
        bands = list(pyramid_laplacian(stack, **kw))[:levels - 1]
        lowpass = list(pyramid_gaussian(stack, **kw))[levels - 1]
        for level, layer in enumerate(bands + [lowpass]):
            hl, wl = layer.shape[:2]
            out[level].append(layer.reshape(hl, wl, len(chunk), c).transpose(2, 0, 1, 3))
    return [np.concatenate(parts) for parts in out]


def patch_positions(h: int, w: int, patches_per_image: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Top-left corners [N, P, 2] of the 7x7 patches: uniform random, or every position when there are
    no more positions than ``patches_per_image`` (coarse levels)."""
    ny, nx = h - PATCH_SIZE + 1, w - PATCH_SIZE + 1
    if ny * nx <= patches_per_image:
        grid = np.stack(np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij"), -1).reshape(-1, 2)
        return np.broadcast_to(grid, (n,) + grid.shape)
    return np.stack([rng.integers(0, ny, size=(n, patches_per_image)),
                     rng.integers(0, nx, size=(n, patches_per_image))], -1)


def sample_patches(level: np.ndarray, patches_per_image: int, rng: np.random.Generator) -> np.ndarray:
    """7x7 patches of a level [N, h, w, C], normalised per channel -> descriptors [N * P, C * 49] float32."""
    n, h, w, c = level.shape
    if min(h, w) < PATCH_SIZE:
        raise ValueError(f"pyramid level {h}x{w} is smaller than the {PATCH_SIZE}x{PATCH_SIZE} patch")
    corners = patch_positions(h, w, patches_per_image, n, rng)                 # [N, P, 2]
    # Flat indices into the [N, C, h, w] array: image, channel, then the 7x7 offsets from each corner.
    flat = np.ascontiguousarray(level.transpose(0, 3, 1, 2), dtype=np.float32).ravel()
    offsets = (np.arange(PATCH_SIZE)[:, None] * w + np.arange(PATCH_SIZE)[None, :]).ravel()     # [49]
    base = (np.arange(n)[:, None] * c * h * w + corners[..., 0] * w + corners[..., 1])          # [N, P]
    index = base[..., None, None] + (np.arange(c) * h * w)[:, None] + offsets                   # [N, P, C, 49]
    desc = flat[index].reshape(-1, c, PATCH_SIZE * PATCH_SIZE)
    desc = desc - desc.mean(axis=(0, 2), keepdims=True)
    desc = desc / np.maximum(desc.std(axis=(0, 2), keepdims=True), 1e-8)
    return desc.reshape(len(desc), -1)


#----------------------------------------------------------------------------
# The distance.

def sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_projections: int, seed: int) -> float:
    """Mean over ``n_projections`` seeded random directions of the 1-D W1 between point sets a and b (POT)."""
    import ot
    projections = ot.sliced.get_random_projections(a.shape[1], n_projections, seed=np.random.RandomState(seed))
    projections = projections.astype(a.dtype)
    total = 0.0
    for start in range(0, n_projections, PROJECTION_CHUNK):
        chunk = projections[:, start:start + PROJECTION_CHUNK]
        total += ot.sliced_wasserstein_distance(a, b, projections=chunk, p=1) * chunk.shape[1]
    return float(total / n_projections)


def swd(real, fake,
        levels: Optional[int] = None,      # Pyramid levels; None: down to the last level >= MIN_LEVEL_SIZE.
        patches_per_image: int = 32,       # 7x7 patches per image and level (Karras et al.: 128).
        n_projections: int = 128,          # Random directions (Karras et al.: 512).
        seed: int = 0,                     # Seeds patch positions and projections.
        ) -> Dict:
    """Per-level SWD (fine -> coarse) between two image sets [N, C, H, W] in [-1, 1], and the mean."""
    if tuple(real.shape[2:]) != tuple(fake.shape[2:]):
        raise ValueError(f"image sizes differ: {tuple(real.shape[2:])} vs {tuple(fake.shape[2:])}")
    if levels is None:
        levels = default_levels(min(real.shape[2:]))
    pyr_real, pyr_fake = pyramid_levels(real, levels), pyramid_levels(fake, levels)
    per_level = []
    for level, (lr, lf) in enumerate(zip(pyr_real, pyr_fake)):
        desc_real = sample_patches(lr, patches_per_image, np.random.default_rng([seed, level]))
        desc_fake = sample_patches(lf, patches_per_image, np.random.default_rng([seed, level]))
        per_level.append(sliced_wasserstein(desc_real, desc_fake, n_projections, seed=seed * 1000 + level))
    return dict(per_level=per_level, mean=float(np.mean(per_level)),
                sizes=[int(p.shape[1]) for p in pyr_real],
                patches_per_image=patches_per_image, n_projections=n_projections, seed=seed)
