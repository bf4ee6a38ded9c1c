"""Radially averaged power spectrum of image sets, and the share of power at high spatial frequency.

Definition (one place for all notebooks). Images are uint8-quantised RGB (``to_uint8_rgb``) scaled to [0, 1].
For each image and channel x [H, W]: subtract its mean, take P = |FFT2(x)|^2 / (H W)^2, so that by Parseval
P sums to the pixel variance. P is averaged over images and channels. The radial frequency of bin (ky, kx) is
f = sqrt(fy^2 + fx^2) in cycles/pixel (fy, fx from ``np.fft.fftfreq``). The radial profile bins f by the
integer radius r = round(f * min(H, W)) for r = 0 .. min(H, W) // 2 (the corners beyond Nyquist are not in
the profile) and reports the mean power per bin, at frequency r / min(H, W).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from lib.metrics.image import to_uint8_rgb


#----------------------------------------------------------------------------

def power_spectrum_2d(images) -> Tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum P [H, W] (unshifted FFT layout) and radial frequency f [H, W] in cycles/pixel."""
    x = to_uint8_rgb(images).astype(np.float64) / 255.0           # [N, H, W, 3]
    x = x - x.mean(axis=(1, 2), keepdims=True)
    h, w = x.shape[1:3]
    power = (np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2).mean(axis=(0, 3)) / (h * w) ** 2
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    freq = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return power, freq


def radial_power_spectrum(images) -> Tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum: (freqs [R] in cycles/pixel, mean power [R]), R = min(H, W) // 2 + 1."""
    power, freq = power_spectrum_2d(images)
    n = min(power.shape)
    radius = np.rint(freq * n).astype(np.int64).ravel()
    keep = radius <= n // 2
    total = np.bincount(radius[keep], weights=power.ravel()[keep], minlength=n // 2 + 1)
    count = np.bincount(radius[keep], minlength=n // 2 + 1)
    return np.arange(n // 2 + 1) / n, total / np.maximum(count, 1)


def high_frequency_power(images, cutoff: float = 0.25) -> float:
    """Fraction of the (mean-subtracted) power at radial frequency > ``cutoff`` cycles/pixel.

    Summed over the whole 2-D spectrum (corners included) and over all images and channels, then divided by
    the total power. Low values mean flat, "cartoon-like" images; white noise gives 1 - pi c^2 (c <= 0.5).
    """
    power, freq = power_spectrum_2d(images)
    total = power.sum()
    return float(power[freq > cutoff].sum() / total) if total > 0 else 0.0
