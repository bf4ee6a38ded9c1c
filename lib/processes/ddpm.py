"""DDPM (Ho et al. 2020) as the EPD study uses it: linear β, ε-prediction, ancestral and DDIM samplers.

Spec: baselines_spec.md §1 and epd_spec.md §0.  Index convention: t ∈ {0..T-1}, ᾱ_{-1} := 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from lib import rng as rng_lib
from lib import schedules
from lib.processes import register
from lib.processes.base import DiffusionProcess, StepOutput, as_time_tensor, extract, mean_per_sample, sum_per_sample

FINAL_STEPS = ("code", "denoise")


# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DDPMConfig:
    T: int = 500                       # Diffusion steps (EPD study: 500; 750 for AFHQ-Cat 128²).
    beta_min: float = 1e-4             # β at index 0 (linear schedule).
    beta_max: float = 2e-2             # β at index T-1.
    posterior_variance: str = "small"  # "small": β̃_t (posterior); "large": β_t.
    final_step: str = "code"           # "code": stop at t=1→0 with noise (EPD repo, Q9); "denoise": also t=0→x̂0.
    clip_x0: bool = False              # Clip x̂0 to [-1, 1] inside the posterior (the EPD repo does not).
    loss_reduction: str = "sum"        # "sum" over C·H·W per sample (EPD repo) or "mean".

    def __post_init__(self):
        if self.posterior_variance not in ("small", "large"):
            raise ValueError(f"posterior_variance must be 'small' or 'large', got {self.posterior_variance!r}")
        if self.final_step not in FINAL_STEPS:
            raise ValueError(f"final_step must be one of {FINAL_STEPS}, got {self.final_step!r}")
        if self.loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")


# ----------------------------------------------------------------------------------------------------------

@register
class DDPM(DiffusionProcess):
    """Gaussian diffusion with a linear β schedule; the network predicts unit ε."""

    name = "ddpm"
    config_cls = DDPMConfig
    small_overrides = {"T": 20}
    steps_field = "T"
    follows_profile_T = True
    supports_ddim = True

    @classmethod
    def budget_overrides(cls, steps: int, resolution: int) -> dict:
        """T = ``steps``, with the β range rescaled so the chain still ends near noise (``matched_betas``)."""
        return {"T": int(steps), **schedules.matched_betas(int(steps))}

    def signal_level(self, t: int) -> float:
        return float(np.sqrt(self.alpha_bar[t]))          # x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε (Ho et al. Eq. 4)

    def __init__(self, config: Optional[DDPMConfig] = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.betas = schedules.linear_beta_schedule(c.T, c.beta_min, c.beta_max)
        self.alphas = 1.0 - self.betas
        self.alpha_bar = schedules.alpha_bar(self.betas)
        self.alpha_bar_prev = schedules.alpha_bar_prev(self.alpha_bar)
        # Posterior q(x_{t-1} | x_t, x0), Ho et al. Eq. 6-7 (β̃_0 = 0: the step from index 0 returns x0).
        self.posterior_var = self.betas * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)
        self.posterior_coef_x0 = np.sqrt(self.alpha_bar_prev) * self.betas / (1.0 - self.alpha_bar)
        self.posterior_coef_xt = np.sqrt(self.alphas) * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)

    @property
    def num_steps(self) -> int:
        return self.config.T

    # --- forward -------------------------------------------------------------------------------------
    def q_sample(self, x0, t, noise=None, generator=None):
        """x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε (Ho et al. Eq. 4)."""
        t = as_time_tensor(t, x0.shape[0], x0.device)
        if noise is None:
            noise = rng_lib.randn_like(x0, generator)
        return extract(np.sqrt(self.alpha_bar), t, x0) * x0 + extract(np.sqrt(1.0 - self.alpha_bar), t, x0) * noise

    def loss(self, net, x0, t=None, noise=None, generator=None):
        """‖ε - ε_θ(x_t, t)‖² per sample, summed (EPD repo) or averaged over C·H·W."""
        t = self.training_time(x0, t, generator)
        if noise is None:
            noise = rng_lib.randn_like(x0, generator)
        x_t = self.q_sample(x0, t, noise)
        err = (net(x_t, self.net_time(t)) - noise) ** 2
        return sum_per_sample(err) if self.config.loss_reduction == "sum" else mean_per_sample(err)

    # --- reverse -------------------------------------------------------------------------------------
    def predict_x0_from_eps(self, x_t, t, eps):
        """x̂0 = (x_t - √(1-ᾱ_t) ε̂) / √ᾱ_t."""
        t = as_time_tensor(t, x_t.shape[0], x_t.device)
        x0 = (x_t - extract(np.sqrt(1.0 - self.alpha_bar), t, x_t) * eps) / extract(np.sqrt(self.alpha_bar), t, x_t)
        return x0.clamp(-1, 1) if self.config.clip_x0 else x0

    def predict_x0(self, net, x_t, t):
        t = as_time_tensor(t, x_t.shape[0], x_t.device)
        return self.predict_x0_from_eps(x_t, t, net(x_t, self.net_time(t)))

    def posterior_mean_variance(self, x0, x_t, t):
        """Mean and variance of q(x_{t-1} | x_t, x0) (Ho et al. Eq. 7); variance per `posterior_variance`."""
        t = as_time_tensor(t, x_t.shape[0], x_t.device)
        assert x0.shape == x_t.shape
        mean = extract(self.posterior_coef_x0, t, x_t) * x0 + extract(self.posterior_coef_xt, t, x_t) * x_t
        var_arr = self.posterior_var if self.config.posterior_variance == "small" else self.betas
        return mean, extract(var_arr, t, x_t)

    def prior(self, shape, generator, x0=None, device=None):
        """x_{T-1} ~ N(0, I) (Q10: the official code ignores the √ᾱ_{T-1} residual signal)."""
        return rng_lib.randn(shape, generator, device=device or "cpu")

    def sampling_timesteps(self, start=None):
        top = self.config.T - 1 if start is None else int(start)
        last = 0 if self.config.final_step == "denoise" else 1
        return [(t, t - 1) for t in range(top, last - 1, -1)]

    def step(self, net, x_t, t, t_prev, generator):
        """Ancestral step t → t-1: x_{t-1} = μ + σ z from the posterior at x̂0; t_prev = -1 returns x̂0 (no noise).

        (EPD inherits this step: its posterior recomputes the edge map from x̂0, epd_spec §3.)"""
        if t_prev != t - 1:
            raise ValueError(f"{self.name} ancestral steps go from t to t-1, got {t} -> {t_prev}")
        x0_hat = self.predict_x0(net, x_t, t)
        if t_prev < 0:
            return StepOutput(x0_hat, x0_hat)
        mean, var = self.posterior_mean_variance(x0_hat, x_t, t)
        noise = rng_lib.randn_like(x_t, generator)
        return StepOutput(mean + var.sqrt() * noise, x0_hat)

    # --- DDIM (Song et al. 2021; baselines_spec.md §1.5) --------------------------------------------------
    def ddim_timesteps(self, num_steps: int, start: Optional[int] = None):
        """Uniform sub-sequence of {0..top} that starts at top, descending, ending with (t_min, -1): ᾱ_{-1} = 1."""
        top = self.config.T - 1 if start is None else int(start)
        ts = np.unique(np.round(np.linspace(top, 0, min(num_steps, top + 1))).astype(int))[::-1]
        return [(int(a), int(b)) for a, b in zip(ts, list(ts[1:]) + [-1])]

    def ddim_step(self, net, x_t, t, t_prev, generator=None, eta: float = 0.0):
        """x_s = √ᾱ_s x̂0 + √(1-ᾱ_s-σ²) ε̂ + σ z with σ = η √((1-ᾱ_s)/(1-ᾱ_t)) √(1-ᾱ_t/ᾱ_s)."""
        tt = as_time_tensor(t, x_t.shape[0], x_t.device)
        eps = net(x_t, self.net_time(tt))
        x0_hat = self.predict_x0_from_eps(x_t, tt, eps)
        abar_t = float(self.alpha_bar[t])
        abar_s = 1.0 if t_prev < 0 else float(self.alpha_bar[t_prev])
        sigma = eta * np.sqrt((1 - abar_s) / (1 - abar_t)) * np.sqrt(1 - abar_t / abar_s)
        x_s = np.sqrt(abar_s) * x0_hat + np.sqrt(max(1 - abar_s - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x_s = x_s + sigma * rng_lib.randn_like(x_t, generator)
        return StepOutput(x_s, x0_hat)
