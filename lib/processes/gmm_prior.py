"""The fitted generation prior of Cold Diffusion's generation variants (cold_spec §4.1): a Gaussian mixture
over per-image feature rows (blur: channel means; SR: low-resolution blocks), fitted with sklearn and sampled
through ``lib.rng`` so a draw depends only on the generator."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from lib import rng as rng_lib


class GaussianMixturePrior:
    """sklearn ``GaussianMixture`` (full covariance, tol 1e-3; Q11) on feature rows, sampled through lib.rng.

    A fitted prior is a *value*: ``to_dict()`` holds everything sampling needs (weights, means, covariances and
    ``feature_shape``, the per-image shape of a feature row: (C,) for blur's channel means, (C, h, w) for SR's
    low-resolution blocks), is saved with the checkpoint (``lib.cold_experiments.save_prior``) and rebuilt by
    ``from_dict``, so a reloaded model samples exactly as the one that was fitted (issue 15)."""

    def __init__(self, n_components: int = 1, seed: int = 0):
        self.n_components, self.seed = int(n_components), int(seed)
        self.weights = self.means = self.covariances = self.chol = None
        self.feature_shape: Optional[tuple] = None

    @property
    def fitted(self) -> bool:
        return self.means is not None

    def fit(self, feats: torch.Tensor, feature_shape: Optional[tuple] = None) -> "GaussianMixturePrior":
        from sklearn.mixture import GaussianMixture
        X = feats.detach().to(torch.float64).cpu().numpy()
        if X.shape[0] < self.n_components:
            raise ValueError(f"GMM with {self.n_components} components needs at least as many images, got {X.shape[0]}")
        gm = GaussianMixture(self.n_components, covariance_type="full", tol=1e-3, random_state=self.seed).fit(X)
        self.weights, self.means, self.covariances = gm.weights_, gm.means_, gm.covariances_
        self.chol = np.linalg.cholesky(self.covariances)
        self.feature_shape = tuple(int(v) for v in (feature_shape or (X.shape[1],)))
        return self

    def to_dict(self) -> dict:
        """Plain lists (JSON- and checkpoint-safe); float64 values are kept exactly."""
        if not self.fitted:
            raise RuntimeError("the generation prior is not fitted: nothing to save")
        return {"n_components": self.n_components, "seed": self.seed, "feature_shape": list(self.feature_shape),
                "weights": self.weights.tolist(), "means": self.means.tolist(),
                "covariances": self.covariances.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "GaussianMixturePrior":
        g = cls(d["n_components"], d["seed"])
        g.weights, g.means = np.asarray(d["weights"], np.float64), np.asarray(d["means"], np.float64)
        g.covariances = np.asarray(d["covariances"], np.float64)
        g.chol = np.linalg.cholesky(g.covariances)
        g.feature_shape = tuple(d["feature_shape"])
        return g

    def sample(self, n: int, generator, device) -> torch.Tensor:
        """[n, d] float64: mean_k + L_k ε with ε ~ N(0, I) and k ~ weights (one draw of each per row)."""
        if self.means is None:
            raise RuntimeError("the generation prior is not fitted: call process.fit_prior(training_images) first")
        d = self.means.shape[1]
        eps = rng_lib.randn((n, d), generator, device=device, dtype=torch.float64)
        k = torch.zeros(n, dtype=torch.long, device=device)
        if self.n_components > 1:
            u = rng_lib.rand((n,), generator, device=device, dtype=torch.float64)
            cum = torch.as_tensor(np.cumsum(self.weights), device=device)
            k = torch.searchsorted(cum, u, right=True).clamp(max=self.n_components - 1)
        means = torch.as_tensor(self.means, device=device)[k]
        chol = torch.as_tensor(self.chol, device=device)[k]
        return means + (chol @ eps.unsqueeze(-1)).squeeze(-1)
