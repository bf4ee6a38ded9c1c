"""Edge-preserving diffusion (EPD; Vandersanden et al. 2024): noise damped on edges of x0.

Spec: epd_spec.md.  Forward (Eq. 11):  x_t = √ᾱ_t x0 + σ_t(x0) ⊙ ε,
    σ_t(x0) = √(1-ᾱ_t) / D_t(x0),   D_t = (1 - τ_t) √(1 + G(x0)/λ_t) + τ_t,
with G the normalised squared Sobel magnitude of x0 (§1.2), λ_t the edge sensitivity (§1.3) and τ_t the
transition function (§1.4).  The network regresses the scaled noise σ_t ⊙ ε (Eq. 15); sampling uses the
per-pixel Gaussian posterior (Eqs. 13-14) with G recomputed from x̂0 at every step (§3).

Every quirk of the official code (§5) is a config option; the defaults follow the spec's "Default:" lines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from lib import rng as rng_lib
from lib import schedules
from lib.processes import register
from lib.processes.base import as_time_tensor, extract, mean_per_sample, sum_per_sample
from lib.processes.ddpm import DDPM, FINAL_STEPS

EDGE_NORMS = ("batch", "image", "none")
EDGE_MAGNITUDES = ("squared", "abs")
EDGE_CHANNELS = ("sum", "mean", "per_channel")
EDGE_PADDINGS = ("zeros", "replicate", "reflect")


# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EPDConfig:
    T: int = 500                       # Diffusion steps (500; 750 for AFHQ-Cat 128²).
    beta_min: float = 1e-4             # Linear β schedule, as DDPM.
    beta_max: float = 2e-2             #
    lambda_min: float = 1e-4           # Edge sensitivity at t=0 (pixel space; latent space uses 1e-5).
    lambda_max: float = 1e-1           # Edge sensitivity at t = t_phi·T.
    lambda_schedule: str = "linear"    # "linear" (code, unclamped, Q6) | "clamp" | "sigmoid" | "constant".
    lambda_constant: Optional[float] = None  # λ for lambda_schedule="constant" (the λ ablation).
    tau: str = "linear"                # Transition function τ(t): linear | linear_ramp | cosine | sigmoid | one.
    tau_sample: Optional[str] = None   # τ used by the sampler; None = same as `tau` (Q1). "linear" with
                                       # tau="cosine" reproduces the official scripts' mismatch.
    t_phi: float = 0.5                 # Transition point (fraction of T); inert for cosine τ (Q2).
    k: float = 10.0                    # Steepness of the sigmoid τ (and of the sigmoid λ).
    edge_norm: str = "batch"           # Normalise the Sobel map by the batch max (code, Q4) | per image | none.
    edge_eps: float = 0.0              # ε added to the normaliser (0 in the code).
    edge_magnitude: str = "squared"    # Gx²+Gy² (code) | "abs": √(Gx²+Gy²) (the paper's ‖∇x0‖).
    edge_channels: str = "sum"         # Sobel of the channel sum (code) | "mean" | "per_channel".
    edge_padding: str = "zeros"        # Zero 'same' padding (code, Q5) | "replicate" | "reflect".
    sampler_lambda: str = "t"          # λ inside σ²_s during sampling: "t" (code, Q7) | "s" (exact).
    final_step: str = "code"           # "code": stop at t=1→0, noise added (Q9) | "denoise": return x̂0 at t=0.
    target: str = "scaled_noise"       # Regress σ_t ⊙ ε (paper/code) | "unit_eps" (only with tau="one", Q11).
    loss_reduction: str = "sum"        # Sum over C·H·W per sample (code) | "mean".
    posterior_dtype: str = "float64"   # Sampler posterior (Eqs. 13-14) in float64 (exact) | "float32": the
                                       # official code's float32 schedules and arithmetic (Q18).

    def __post_init__(self):
        checks = {
            "lambda_schedule": (self.lambda_schedule, schedules.LAMBDA_SCHEDULES),
            "tau": (self.tau, tuple(schedules.TRANSITIONS)),
            "tau_sample": (self.tau_sample, tuple(schedules.TRANSITIONS) + (None,)),
            "edge_norm": (self.edge_norm, EDGE_NORMS),
            "edge_magnitude": (self.edge_magnitude, EDGE_MAGNITUDES),
            "edge_channels": (self.edge_channels, EDGE_CHANNELS),
            "edge_padding": (self.edge_padding, EDGE_PADDINGS),
            "sampler_lambda": (self.sampler_lambda, ("t", "s")),
            "final_step": (self.final_step, FINAL_STEPS),
            "target": (self.target, ("scaled_noise", "unit_eps")),
            "loss_reduction": (self.loss_reduction, ("sum", "mean")),
            "posterior_dtype": (self.posterior_dtype, ("float64", "float32")),
        }
        for field, (value, valid) in checks.items():
            if value not in valid:
                raise ValueError(f"EPDConfig.{field} = {value!r} is not one of {list(valid)}")
        if self.target == "unit_eps" and (self.tau != "one" or self.tau_sample not in (None, "one")):
            raise ValueError("target='unit_eps' is only defined for tau='one' (x̂0 needs σ_t, which needs G(x0))")
        if not 0.0 < self.t_phi <= 1.0:
            raise ValueError(f"t_phi must be in (0, 1], got {self.t_phi}")


# ----------------------------------------------------------------------------------------------------------

_SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
_SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


def sobel(x: torch.Tensor, padding: str = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
    """(G_x, G_y) of every channel of x [B,C,H,W] with the 3×3 kernels ``_SOBEL_X``/``_SOBEL_Y`` (cross-
    correlation, as F.conv2d), by shifted slices of the 1-padded image instead of a convolution.

    padding -- "zeros" (F.conv2d's padding=1: the official code) or an F.pad mode ("replicate", "reflect").
    Bit-identical in float64 to the grouped F.conv2d it replaces (tested): the taps are ±1, ±2 (exact
    products) and are summed left to right in kernel raster order, the order of the conv's im2col dot
    product; the conv went through ``aten::_slow_conv2d_forward`` (4-7 ms at N=64, 32²; slices ≈ 1.5 ms).
    """
    xp = F.pad(x, (1, 1, 1, 1)) if padding == "zeros" else F.pad(x, (1, 1, 1, 1), mode=padding)
    H, W = x.shape[-2:]

    def s(dy: int, dx: int) -> torch.Tensor:     # xp shifted so that s(dy, dx)[i, j] = x[i + dy - 1, j + dx - 1]
        return xp[..., dy:dy + H, dx:dx + W]

    # G_x = Σ K_x[dy,dx] s(dy,dx), K_x rows (1, 0, -1), (2, 0, -2), (1, 0, -1)
    gx = s(0, 0) - s(0, 2) + 2.0 * s(1, 0) - 2.0 * s(1, 2) + s(2, 0) - s(2, 2)
    # G_y = Σ K_y[dy,dx] s(dy,dx), K_y rows (1, 2, 1), (0, 0, 0), (-1, -2, -1)
    gy = s(0, 0) + 2.0 * s(0, 1) + s(0, 2) - s(2, 0) - 2.0 * s(2, 1) - s(2, 2)
    return gx, gy


def edge_map(x: torch.Tensor, norm: str = "batch", magnitude: str = "squared", channels: str = "sum",
             padding: str = "zeros", eps: float = 0.0) -> torch.Tensor:
    """G(x) of epd_spec.md §1.2, in float64: [B,1,H,W] (or [B,C,H,W] for channels='per_channel')."""
    x = x.to(torch.float64)
    B, C, H, W = x.shape
    if channels == "sum":            # one kernel over all C channels == Sobel of the channel sum
        x = x.sum(dim=1, keepdim=True)
    elif channels == "mean":
        x = x.mean(dim=1, keepdim=True)
    gx, gy = sobel(x, padding)
    m = gx * gx + gy * gy
    if magnitude == "abs":
        m = m.sqrt()
    if norm == "batch":              # max over the whole batch tensor (Q4: couples the images of a batch)
        m = m / (m.amax() + eps)
    elif norm == "image":
        m = m / (m.amax(dim=(1, 2, 3), keepdim=True) + eps)
    return m


# ----------------------------------------------------------------------------------------------------------

@register
class EdgePreserving(DDPM):
    """EPD: DDPM's signal coefficient with a per-pixel, edge-damped noise coefficient.

    Subclasses DDPM (same β/ᾱ schedules, prior, time steps and ancestral ``step``) and overrides the noise
    scale: ``q_sample``, ``loss``, ``predict_x0`` and the per-pixel ``posterior_mean_variance``.
    """

    name = "edge_preserving"
    config_cls = EPDConfig
    small_overrides = {"T": 20}
    # DDIM is derived for the isotropic process only; EPD samples with its own posterior (``step``).
    supports_ddim = False

    def __init__(self, config: Optional[EPDConfig] = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.tau = schedules.transition_schedule(c.tau, c.T, c.t_phi, c.k)
        self.tau_sample = schedules.transition_schedule(c.tau_sample or c.tau, c.T, c.t_phi, c.k)
        self.lam = schedules.lambda_schedule(c.T, c.lambda_min, c.lambda_max, c.t_phi, c.lambda_schedule,
                                             c.lambda_constant, c.k)

    @property
    def batch_independent(self) -> bool:
        """With the code's batch-max normalisation an image's noise depends on its batch (Q4, U7)."""
        return self.config.edge_norm != "batch"

    # --- the edge-dependent noise scale --------------------------------------------------------------------
    def edge_map(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        return edge_map(x, c.edge_norm, c.edge_magnitude, c.edge_channels, c.edge_padding, c.edge_eps)

    def sigma(self, G: torch.Tensor, t: torch.Tensor, tau: Optional[np.ndarray] = None,
              lam_t: Optional[torch.Tensor] = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """σ_t = √(1-ᾱ_t) / [(1-τ_t)√(1+G/λ_t) + τ_t] (Eq. 11) in ``dtype``; t is a [B] index tensor (t = -1: 0).

        float64: 1-ᾱ_t from the float64 schedule.  float32 (Q18): the official arithmetic, ᾱ, τ, λ cast to
        float32 first and 1-ᾱ_t computed in float32 (about three significant digits at t = 0)."""
        tau = self.tau if tau is None else tau
        ok = t >= 0
        tc = t.clamp(min=0)
        shape = (-1,) + (1,) * (G.ndim - 1)
        G = G.to(dtype)
        tau_t = torch.as_tensor(tau, device=G.device).to(dtype)[tc].reshape(shape)
        if lam_t is None:
            lam_t = torch.as_tensor(self.lam, device=G.device).to(dtype)[tc].reshape(shape)
        if dtype == torch.float64:
            one_minus_abar = torch.as_tensor(1.0 - self.alpha_bar, dtype=dtype, device=G.device)[tc].reshape(shape)
        else:
            one_minus_abar = 1.0 - torch.as_tensor(self.alpha_bar, device=G.device).to(dtype)[tc].reshape(shape)
        D = (1.0 - tau_t) * torch.sqrt(1.0 + G / lam_t) + tau_t
        return torch.where(ok.reshape(shape), one_minus_abar.sqrt() / D, torch.zeros_like(D))

    def noise_scale(self, x0: torch.Tensor, t) -> torch.Tensor:
        """σ_t(x0) for images x0 (float64, broadcastable over channels)."""
        t = as_time_tensor(t, x0.shape[0], x0.device)
        return self.sigma(self.edge_map(x0), t)

    # --- forward and loss ------------------------------------------------------------------------------------
    def q_sample(self, x0, t, noise=None, generator=None):
        """x_t = √ᾱ_t x0 + σ_t(x0) ⊙ ε (Eq. 11)."""
        t = as_time_tensor(t, x0.shape[0], x0.device)
        if noise is None:
            noise = rng_lib.randn_like(x0, generator)
        return extract(np.sqrt(self.alpha_bar), t, x0) * x0 + (self.noise_scale(x0, t).to(x0.dtype) * noise)

    def loss(self, net, x0, t=None, noise=None, generator=None):
        """‖f_θ(x_t, t) - σ_t ⊙ ε‖² summed over C·H·W (Eq. 15, code); 'unit_eps' regresses ε (τ ≡ 1 only)."""
        t = self.training_time(x0, t, generator)
        if noise is None:
            noise = rng_lib.randn_like(x0, generator)
        scaled = self.noise_scale(x0, t).to(x0.dtype) * noise
        x_t = extract(np.sqrt(self.alpha_bar), t, x0) * x0 + scaled
        target = scaled if self.config.target == "scaled_noise" else noise
        err = (net(x_t, self.net_time(t)) - target) ** 2
        return sum_per_sample(err) if self.config.loss_reduction == "sum" else mean_per_sample(err)

    # --- reverse -------------------------------------------------------------------------------------------
    def predict_x0(self, net, x_t, t):
        """x̂0 = (x_t - f_θ)/√ᾱ_t: f already carries σ_t (§3 step 2); not clipped."""
        t = as_time_tensor(t, x_t.shape[0], x_t.device)
        f = net(x_t, self.net_time(t))
        if self.config.target == "unit_eps":
            f = extract(np.sqrt(1.0 - self.alpha_bar), t, x_t) * f
        return (x_t - f) / extract(np.sqrt(self.alpha_bar), t, x_t)

    def posterior_mean_variance(self, x0, x_t, t, G: Optional[torch.Tensor] = None):
        """Per-pixel mean and variance of the reverse step t → s = t-1 given x0 (Eqs. 13-14, §3 steps 3-5).

        ``G`` defaults to the edge map of ``x0``; the sampler passes G(x̂0).  λ inside σ²_s follows
        ``sampler_lambda`` (Q7); the arithmetic follows ``posterior_dtype`` (Q18).  Returned in x_t's dtype.
        """
        dt = torch.float64 if self.config.posterior_dtype == "float64" else torch.float32
        t = as_time_tensor(t, x_t.shape[0], x_t.device)
        s = t - 1
        G = self.edge_map(x0) if G is None else G
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        lam = torch.as_tensor(self.lam, device=x_t.device).to(dt)
        lam_for_s = lam[t].reshape(shape) if self.config.sampler_lambda == "t" else lam[s.clamp(min=0)].reshape(shape)
        var_t = self.sigma(G, t, self.tau_sample, dtype=dt) ** 2
        var_s = self.sigma(G, s, self.tau_sample, lam_t=lam_for_s, dtype=dt) ** 2
        abar = torch.as_tensor(self.alpha_bar, device=x_t.device).to(dt)
        abar_t = abar[t].reshape(shape)
        abar_s = abar[s.clamp(min=0)].reshape(shape)
        a2_ts = abar_t / abar_s                                   # α²_{t|s}
        var_ts = var_t - a2_ts * var_s                            # σ²_{t|s}
        var_post = 1.0 / (1.0 / var_s + a2_ts / var_ts)           # Eq. 14 (1/σ²_s, not the paper's 1/σ²_t: Q8)
        mean = var_post * (a2_ts.sqrt() / var_ts * x_t.to(dt) + abar_s.sqrt() / var_s * x0.to(dt))  # Eq. 13
        return mean.to(x_t.dtype), var_post.to(x_t.dtype)
