"""IHDM: generative modelling with inverse heat dissipation (Rissanen, Heinonen, Solin, ICLR 2023).

Spec: baselines_spec.md §2 and §4.1.  The forward process is the heat equation solved in closed form in the
orthonormal 2-D DCT-II basis (Neumann boundaries, unit pixel spacing):

    A_k x = Vᵀ diag(exp(-λ t_k)) V x,   λ_jk = (πj/H)² + (πk/W)²,   t_k = σ_{B,k}² / 2,

so level k is a Gaussian blur of std σ_{B,k} pixels with half-sample reflecting boundaries; level 0 is the
identity.  Training (§2.3): u_k = A_k x + σ ε, target A_{k-1} x, prediction u_k + f_θ(u_k, k) (residual net),
loss summed over C·H·W.  Sampling (§2.4): u_K = A_K x_train (+ δ ε), then μ = u + f_θ(u, k); u = μ + δ z for
k = K..1, returning the last μ (no noise after the final step).

Index convention: ``t`` is the blur level k ∈ {0..K} (k = 0 is the clean image); ``num_steps`` = K.  Training
draws k ∈ {1..K-1} (the code's ``randint(1, K)``; quirk 1).  ``sampling_timesteps`` gives (k, k-1) for
k = K..1; the final step is (1, 0): ``t_prev = 0`` (the clean level) plays the role of DDPM's ``t_prev = -1``.
The network gets the raw level k as a float.

State space: IHDM works in [0, 1] (§2.1) so that σ and δ keep their paper meaning; ``from_image`` maps the
project's [-1, 1] images to [0, 1] and ``to_image`` maps back (clipped).

Quirks of the official code (§4.1) are config options; defaults follow the spec's [ours] lines:
    train_include_K      -- quirk 1: False = never train on k = K (code, fidelity; [ours] keeps it)
    prior_noise          -- quirk 2: True = add δ ε to the blurred prior ([ours], evaluate.py), False = previews
    unblurred_top_level  -- quirk 4: True = σ_{B,K} = 0 as afhq/img_size_64.py (a bug; [ours] False)
Quirk 3 (return μ of the last step) is the only behaviour; quirk 10 (DCT ≠ sampled Gaussian for σ_B < 1)
is inherent: the DCT form is used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from lib import rng as rng_lib
from lib.processes import register
from lib.processes.base import DiffusionProcess, StepOutput, as_time_tensor, mean_per_sample, sum_per_sample


# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IHDMConfig:
    K: int = 200                       # Blur levels = sampling steps (ffhq/img_size_128_maxblur128.py).
    sigma_blur_min: float = 0.5        # σ_{B,1}, pixels (every official config).
    sigma_blur_max: float = 128.0      # σ_{B,K}, pixels ([ours] for 128² faces/cats: the FFHQ-128 config).
    sigma: float = 0.01                # Training noise std σ, in [0, 1] units (model.sigma).
    delta: float = 0.0125              # Sampling noise std δ, [0, 1] units ([ours]; sample.py/evaluate.py: 0.01).
    train_include_K: bool = False      # Quirk 1: draw k ∈ {1..K} instead of the code's {1..K-1}.
    prior_noise: bool = True           # Quirk 2: u_K = A_K x_train + δ ε ([ours], evaluate.py); False: no noise.
    unblurred_top_level: bool = False  # Quirk 4: σ_{B,K} = 0 (afhq/img_size_64.py bug), for ablation only.
    loss_reduction: str = "sum"        # "sum" over C·H·W per sample (code) | "mean".

    def __post_init__(self):
        if self.K < 1:
            raise ValueError(f"K must be >= 1, got {self.K}")
        if not 0 < self.sigma_blur_min <= self.sigma_blur_max:
            raise ValueError(f"need 0 < sigma_blur_min <= sigma_blur_max, got {self.sigma_blur_min}, "
                             f"{self.sigma_blur_max}")
        if self.sigma < 0 or self.delta < 0:
            raise ValueError(f"sigma and delta must be >= 0, got {self.sigma}, {self.delta}")
        if self.loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")


def blur_schedule(K: int, sigma_min: float = 0.5, sigma_max: float = 128.0) -> np.ndarray:
    """σ_{B,k} for k = 0..K (float64): 0, then exp(linspace(log σ_min, log σ_max, K)) (§2.2)."""
    levels = np.exp(np.linspace(np.log(sigma_min), np.log(sigma_max), K, dtype=np.float64))
    return np.concatenate([[0.0], levels])


# ----------------------------------------------------------------------------------------------------------
# The orthonormal 2-D DCT-II and the heat-equation blur (IHDM's `DCTBlur`).

_DCT_CACHE: Dict[Tuple[int, str], torch.Tensor] = {}


def dct_matrix(n: int, device=None) -> torch.Tensor:
    """Orthonormal DCT-II matrix D [n, n] (float64): D[k, i] = √(2/n) c_k cos(π(2i+1)k / 2n), c_0 = 1/√2.

    ``D @ v`` equals ``scipy.fft.dct(v, norm='ortho')``; D is orthogonal, so its inverse is Dᵀ.
    """
    device = torch.device(device or "cpu")
    key = (int(n), str(device))
    if key not in _DCT_CACHE:
        k = torch.arange(n, dtype=torch.float64)[:, None]
        i = torch.arange(n, dtype=torch.float64)[None, :]
        D = math.sqrt(2.0 / n) * torch.cos(math.pi * (2.0 * i + 1.0) * k / (2.0 * n))
        D[0] /= math.sqrt(2.0)
        _DCT_CACHE[key] = D.to(device)
    return _DCT_CACHE[key]


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes (= ``scipy.fft.dctn(x, axes=(-2, -1), norm='ortho')``)."""
    Dh, Dw = dct_matrix(x.shape[-2], x.device).to(x.dtype), dct_matrix(x.shape[-1], x.device).to(x.dtype)
    return Dh @ x @ Dw.T


def idct2(X: torch.Tensor) -> torch.Tensor:
    """Inverse of ``dct2`` (orthonormal DCT-III over the last two axes)."""
    Dh, Dw = dct_matrix(X.shape[-2], X.device).to(X.dtype), dct_matrix(X.shape[-1], X.device).to(X.dtype)
    return Dh.T @ X @ Dw


def heat_frequencies(h: int, w: int, device=None) -> torch.Tensor:
    """λ_jk = (πj/h)² + (πk/w)² [h, w] (float64): the Neumann Laplacian's eigenvalues in the DCT basis."""
    fj = (math.pi * torch.arange(h, dtype=torch.float64, device=device) / h) ** 2
    fk = (math.pi * torch.arange(w, dtype=torch.float64, device=device) / w) ** 2
    return fj[:, None] + fk[None, :]


def dct_blur(x: torch.Tensor, sigma_blur) -> torch.Tensor:
    """Gaussian blur of std ``sigma_blur`` pixels with reflecting boundaries, via the heat equation in DCT space.

    x           -- [..., H, W] (typically [B, C, H, W]); any float dtype, any device
    sigma_blur  -- a number, or a tensor [B] (one σ per leading-axis entry); 0 is the identity
    Computes in float64 (autocast off) and returns x's dtype: u = Vᵀ (exp(-λ σ²/2) ⊙ V x).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        xd = x.to(torch.float64)
        s = torch.as_tensor(sigma_blur, dtype=torch.float64, device=x.device)
        if s.ndim == 1:
            s = s.reshape(-1, *([1] * (x.ndim - 1)))
        lam = heat_frequencies(x.shape[-2], x.shape[-1], x.device)
        out = idct2(torch.exp(-lam * (s * s / 2.0)) * dct2(xd))
    return out.to(x.dtype)


# ----------------------------------------------------------------------------------------------------------

@register
class IHDM(DiffusionProcess):
    """Inverse heat dissipation: deterministic DCT blur forward, residual deblurring network, noisy sampler."""

    name = "ihdm"
    config_cls = IHDMConfig
    small_overrides = {"K": 10, "sigma_blur_max": 8.0}
    steps_field = "K"
    training_defaults = dict(optimizer="adam", lr=1e-4, warmup_steps=5000, grad_clip=1.0, ema_warmup=True)

    @classmethod
    def budget_overrides(cls, steps: int, resolution: int) -> dict:
        """K = ``steps`` blur levels; the largest blur σ_{B,K} scaled to the image (the 128-px config uses
        σ = 128 = the image size, so at ``resolution`` px: σ = resolution)."""
        return {"K": int(steps), "sigma_blur_max": float(resolution)}

    def __init__(self, config: Optional[IHDMConfig] = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.sigma_blur = blur_schedule(c.K, c.sigma_blur_min, c.sigma_blur_max)
        if c.unblurred_top_level:
            self.sigma_blur[-1] = 0.0

    @property
    def num_steps(self) -> int:
        return self.config.K

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """The raw blur level k as a float (sinusoidal embedding of the integer, §2.3)."""
        return t.float()

    # --- state space: [0, 1] (§2.1) ----------------------------------------------------------------------
    def from_image(self, image: torch.Tensor) -> torch.Tensor:
        return (image + 1.0) / 2.0

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        return (2.0 * x - 1.0).clamp(-1.0, 1.0)

    # --- forward ---------------------------------------------------------------------------------------------
    def blur(self, u: torch.Tensor, t) -> torch.Tensor:
        """A_k u for state-space u and levels t (int or [B])."""
        t = as_time_tensor(t, u.shape[0], u.device)
        if (t < 0).any() or (t > self.config.K).any():
            raise ValueError(f"IHDM blur levels are 0..{self.config.K}, got {t.tolist()}")
        sig = torch.as_tensor(self.sigma_blur, dtype=torch.float64, device=u.device)[t]
        return dct_blur(u, sig)

    def sample_t(self, batch: int, generator, device) -> torch.Tensor:
        """k ~ U{1..K-1} (code's ``randint(1, K)``, quirk 1) or U{1..K} with ``train_include_K``."""
        high = self.config.K + 1 if self.config.train_include_K else self.config.K
        if high <= 1:
            raise ValueError("IHDM with K = 1 has no training level unless train_include_K=True")
        return rng_lib.randint(1, high, (batch,), generator, device)

    def q_sample(self, x0, t, noise=None, generator=None):
        """u_k = A_k x + σ ε in state space ([0, 1]), x = from_image(x0) (§2.2)."""
        x = self.from_image(x0)
        if noise is None:
            noise = rng_lib.randn_like(x, generator)
        return self.blur(x, t) + self.config.sigma * noise

    def loss(self, net, x0, t=None, noise=None, generator=None):
        """Σ_{C,H,W} (A_{k-1}x - u_k - f_θ(u_k, k))² per sample (§2.3)."""
        t = self.training_time(x0, t, generator)
        if (t < 1).any():
            raise ValueError(f"IHDM training levels start at 1, got {t.tolist()}")
        x = self.from_image(x0)
        if noise is None:
            noise = rng_lib.randn_like(x, generator)
        u = self.blur(x, t) + self.config.sigma * noise
        target = self.blur(x, t - 1)
        err = (target - (u + net(u, self.net_time(t)))) ** 2
        return sum_per_sample(err) if self.config.loss_reduction == "sum" else mean_per_sample(err)

    # --- reverse -------------------------------------------------------------------------------------------
    def predict_x0(self, net, x_t, t):
        """μ = u + f_θ(u, k): the network's estimate of A_{k-1} x (IHDM never predicts x directly)."""
        t = as_time_tensor(t, x_t.shape[0], x_t.device)
        return x_t + net(x_t, self.net_time(t))

    def prior(self, shape, generator, x0=None, device=None):
        """u_K = A_K x_train (+ δ ε with ``prior_noise``), x_train = training images in [-1, 1] (§2.4).

        ``x0`` holds the training images: with exactly B = shape[0] rows, row i seeds sample i (the convention
        of ``lib.sampling.generate``, which slices one image per sample); otherwise B rows are drawn uniformly
        with ``generator``.
        """
        if x0 is None:
            raise ValueError("IHDM's prior needs training images: pass x0 (prior_data=...) with images in [-1, 1] "
                             "to blur to level K")
        device = torch.device(device) if device is not None else x0.device
        B = shape[0]
        if tuple(x0.shape[1:]) != tuple(shape[1:]):
            raise ValueError(f"prior images have shape {tuple(x0.shape[1:])}, need {tuple(shape[1:])}")
        x0 = x0.to(device)
        if not x0.is_floating_point():
            raise TypeError(f"IHDM prior images must be float tensors in [-1, 1], got {x0.dtype}")
        if x0.shape[0] != B:
            idx = rng_lib.randint(0, x0.shape[0], (B,), generator, device)
            x0 = x0[idx]
        u = self.blur(self.from_image(x0), self.config.K)
        if self.config.prior_noise and self.config.delta > 0:
            u = u + self.config.delta * rng_lib.randn_like(u, generator)
        return u

    def sampling_timesteps(self, start=None):
        """(k, k-1) for k = start..1 (start defaults to K); no step skipping (official sampler)."""
        top = self.config.K if start is None else int(start)
        if not 1 <= top <= self.config.K:
            raise ValueError(f"IHDM start level must be in 1..{self.config.K}, got {top}")
        return [(k, k - 1) for k in range(top, 0, -1)]

    def step(self, net, x_t, t, t_prev, generator):
        """μ = u + f_θ(u, k); u_{k-1} = μ + δ z, except the final step (k_prev = 0), which returns μ (§2.4)."""
        if t_prev != t - 1 or t < 1:
            raise ValueError(f"IHDM steps go from level k to k-1 (k >= 1), got {t} -> {t_prev}")
        mean = self.predict_x0(net, x_t, t)
        if t_prev == 0 or self.config.delta == 0:
            return StepOutput(mean, mean)
        return StepOutput(mean + self.config.delta * rng_lib.randn_like(mean, generator), mean)
