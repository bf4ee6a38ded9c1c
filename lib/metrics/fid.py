"""Fréchet distance between Gaussian fits of two feature sets (the FID formula, any backbone).

The distance itself is pytorch-fid's ``calculate_frechet_distance``; this module only fits the statistics
and keeps the call a pure function of them (as EDM's ``calculate_fid_from_inception_stats``). Which features
go in decides the column name: ``FID_inception`` for pytorch-fid's Inception, ``FD_<extractor>`` otherwise.
"""
from __future__ import annotations

import warnings
from typing import Tuple

import numpy as np

Stats = Tuple[np.ndarray, np.ndarray]


#----------------------------------------------------------------------------

def feature_stats(features: np.ndarray) -> Stats:
    """Mean [D] and covariance [D, D] (float64, unbiased, as pytorch-fid) of features [N, D]."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"expected features [N >= 2, D], got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(stats_a: Stats, stats_b: Stats) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), by pytorch-fid's ``calculate_frechet_distance``."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    (mu_a, sigma_a), (mu_b, sigma_b) = stats_a, stats_b
    with warnings.catch_warnings():
        # pytorch-fid 0.3.0 passes scipy's deprecated ``disp`` flag to sqrtm; the result is unaffected.
        warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
        return float(calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussian fits of two feature sets [N, D] and [M, D]."""
    return frechet_distance(feature_stats(features_a), feature_stats(features_b))
