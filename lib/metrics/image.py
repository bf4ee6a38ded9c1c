"""Per-image comparison metrics (SSIM, RMSE) and the one quantisation every metric goes through.

Images in this project are float tensors in [-1, 1], shape [N, C, H, W] with C = 1 or 3. Every metric first
calls ``to_uint8_rgb`` (evaluation.md: "Images enter every metric as uint8-quantised RGB, grayscale repeated
to 3 channels").
"""
from __future__ import annotations

import numpy as np
import torch

SSIM_DATA_RANGE = 255   # SSIM is computed on uint8 images with this fixed data_range.


#----------------------------------------------------------------------------
# The single quantisation used by all metrics.

def to_uint8_rgb(images) -> np.ndarray:
    """[N, C, H, W] images -> uint8 RGB array [N, H, W, 3].

    Float input is taken to be in [-1, 1] and quantised as ``round((x + 1) * 127.5)`` after clamping; uint8
    input (tensor or array) is taken as already quantised. C = 1 is repeated to 3 channels.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images [N, C, H, W] with C in (1, 3), got shape {tuple(images.shape)}")
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        u8 = images
    elif images.is_floating_point():
        u8 = ((images.double().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    else:
        raise TypeError(f"expected float images in [-1, 1] or uint8 images, got dtype {images.dtype}")
    if u8.shape[1] == 1:
        u8 = u8.expand(-1, 3, -1, -1)
    return np.ascontiguousarray(u8.permute(0, 2, 3, 1).numpy())


def _pair(a, b):
    a, b = to_uint8_rgb(a), to_uint8_rgb(b)
    if a.shape != b.shape:
        raise ValueError(f"image sets differ in shape: {a.shape} vs {b.shape}")
    return a, b


#----------------------------------------------------------------------------
# SSIM and RMSE, one value per image pair.

def ssim(a, b) -> np.ndarray:
    """Per-image SSIM [N] of two image sets (paired by index).

    scikit-image ``structural_similarity`` on the uint8 RGB images with ``data_range=255`` and
    ``channel_axis=-1`` (its defaults otherwise: 7x7 uniform window, K1 = 0.01, K2 = 0.03); the value is
    the mean SSIM over the image and its channels.
    """
    from skimage.metrics import structural_similarity
    a, b = _pair(a, b)
    return np.array([structural_similarity(x, y, data_range=SSIM_DATA_RANGE, channel_axis=-1)
                     for x, y in zip(a, b)], dtype=np.float64)


def rmse(a, b) -> np.ndarray:
    """Per-image root-mean-square error [N] in [0, 1] pixel units, on the uint8-quantised RGB images."""
    a, b = _pair(a, b)
    diff = (a.astype(np.float64) - b.astype(np.float64)) / 255.0
    return np.sqrt((diff ** 2).reshape(len(diff), -1).mean(axis=1))
