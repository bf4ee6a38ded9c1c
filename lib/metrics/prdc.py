"""Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models"), on any feature space.

Each set's manifold is the union of balls around its points, the radius of a point being the distance to its
k-th nearest neighbour within the same set (k = 3 as in the paper). Precision is the fraction of fake points
inside the real manifold; recall is the fraction of real points inside the fake manifold. Euclidean distances
on the raw features (no normalisation).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

BATCH_ROWS = 1024   # Query rows per distance block (memory: BATCH_ROWS x N float64).


#----------------------------------------------------------------------------

def knn_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Distance [N] from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    from sklearn.neighbors import NearestNeighbors
    if len(features) <= k:
        raise ValueError(f"need more than k={k} points, got {len(features)}")
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return dist[:, k]   # column 0 is the point itself


def manifold_coverage(queries: np.ndarray, support: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``queries`` within ``radii[j]`` of some ``support[j]``."""
    from scipy.spatial.distance import cdist
    inside = [(cdist(queries[i:i + BATCH_ROWS], support) <= radii[None, :]).any(axis=1)
              for i in range(0, len(queries), BATCH_ROWS)]
    return float(np.concatenate(inside).mean())


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3) -> Dict[str, float]:
    """Improved precision and recall of ``fake_feats`` [M, D] against ``real_feats`` [N, D]."""
    real = np.asarray(real_feats, dtype=np.float64)
    fake = np.asarray(fake_feats, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected features [N, D] and [M, D], got {real.shape} and {fake.shape}")
    return dict(precision=manifold_coverage(fake, real, knn_radii(real, k)),
                recall=manifold_coverage(real, fake, knn_radii(fake, k)))
