"""BNDM: blue noise for diffusion models (Huang et al., SIGGRAPH 2024), with IADB as its white-noise special case.

Spec: baselines_spec.md §3 and §4.3.  Deterministic interpolation (IADB) between data and a noise that moves
from white (noise end) to blue (data end), with the **same** white draw w inside b = L w (``lib.bluenoise``):

    ε_t = γ_t w + (1 - γ_t) b,        x_t = α_t ε_t + (1 - α_t) x,        α_t = t / T,  γ_t = γ(t / T).

The spec's α = 1 is noise and α = 0 is data.  Index convention here: ``t`` ∈ {0..T} with α = t/T everywhere
(training, ``q_sample``, ``step``): t = 0 is the data, t = T is (white) noise, ``num_steps`` = T.  Training
draws t ∈ {1..T} (antithetic pairs t, T+1-t).  Sampling walks the S-step grid expressed in the same indices:
t_j = round(j·T/S), j = S..0, i.e. the pairs (t_j, t_{j-1}); with S | T (the official 1000/250) α_j = j/S
exactly as in ``sample_iadb``; otherwise the grid is α rounded to multiples of 1/T.  The final pair ends at
t_prev = 0 (α = 0, the data), which plays the role of DDPM's t_prev = -1.  The network gets α_t
(× ``time_scale``) as its time input.

Targets (§3.4), with Δα = 1/T and Δγ = γ_t - γ_{t-1}:
    6 channels: d1* = x - ε_t,  d2* = α_{t-1} (b - w),  loss = Σ‖d1 - d1*‖² + (Δγ/Δα) Σ‖d2 - d2*‖²
    3 channels: d* = d1* + (Δγ/Δα) d2*  (= x - ε_t + α_{t-1}(b - w), the official target when Δγ = Δα)
    white noise (IADB): b = w, so d* = x - w
Sampler (§3.5): x ← x + (α_s - α_e) d1 + (γ_s - γ_e) d2 (3 channels: x ← x + (α_s - α_e) d); no noise.

Quirks (§4.3) as config options; defaults are the faithful behaviour:
    normalize_mix  -- 4.3.1: False = the code's unnormalised mix; True = divide ε_t by its analytic per-pixel
                      std (ablation; d2* then becomes α_{t-1}(ε_{t-1} - ε_t)/Δγ, the exact finite difference)
    time_scale     -- 4.3.4: 1.0 = α fed raw (code); 1000 = a deviation
    loss_reduction -- 4.3.5: "sum" over C·H·W per sample (the code also sums over the batch; the training loop
                      takes the batch mean, a constant factor)
    white_pairing  -- 4.3.10: "same" = the w in γw is the w that made b (§3.3, default); "official_128" = the
                      official 128-px code's pairing: per 64-px tile, w is replaced by
                      w.reshape(n,C,4096).transpose(1,2).reshape(n,C,64,64) in ε and in d2* (a pixel/channel-
                      shuffled copy, nearly uncorrelated with b; the identity for one channel)
    4.3.3 (d2* trained with α_s - 1/T, sampled with α_s - 1/S) is inherent and kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch
from scipy.special import expit

from lib import bluenoise
from lib import rng as rng_lib
from lib.processes import register
from lib.processes.base import DiffusionProcess, StepOutput, as_time_tensor, mean_per_sample, sum_per_sample

NOISE_TYPES = ("blue", "white")
WHITE_PAIRINGS = ("same", "official_128")
OFFICIAL_TILE = 64         # Side of the official blue-noise tiles (§4.3 item 7).
GAMMA_SCHEDULES = ("linear", "sigmoid")
GAMMA_CLIP = 1e-9          # The code clamps (v(1) - v(u)) / (v(1) - v(0)) to [1e-9, 1].


# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BNDMConfig:
    T: int = 1000                      # Training steps: t ∈ {1..T}, α_t = t/T.
    S: int = 250                       # Sampling steps (network calls), S <= T (all official scripts: 250).
    noise: str = "blue"                # "blue" (BNDM, gaussianBN) | "white" (IADB baseline: ε = w).
    gamma_schedule: str = "sigmoid"    # γ(u), u = t/T: "sigmoid" (τ, s, e) | "linear" (γ = u).
    gamma_tau: float = 0.2             # Sigmoid temperature τ (128²: 0.2; AFHQ/Church 64²: 1000 ≈ linear).
    gamma_s: float = 0.0               # Sigmoid start s.
    gamma_e: float = 3.0               # Sigmoid end e.
    split_output: bool = True          # 6-channel head (d1, d2) (128², sigmoid γ); False: 3-channel d (Δγ = Δα only).
    bluenoise_method: str = "cholesky" # "cholesky" (official method, §3.7 recipe) | "fft" (periodic; ablation).
    spectrum: str = "logistic"         # Blue-noise power spectrum: "logistic" | "gaussian" (§3.7 step 1).
    spectrum_center: float = 0.20      # Logistic midpoint ρ0 (cycles/pixel).
    spectrum_width: float = 0.03       # Logistic width (for "gaussian": its σ, use 0.12).
    cholesky_grid: int = 128           # Frequency grid the tile covariance is built on.
    cholesky_tile: int = 64            # Tile side (official: 64; 128² = 2×2 independent tiles).
    cholesky_jitter: float = 1e-6      # Diagonal jitter before the Cholesky factorisation.
    normalize_mix: bool = False        # Quirk 4.3.1: False = unnormalised mix (code); True = unit variance.
    antithetic: bool = True            # Training t: half the batch uniform, the other half T + 1 - t (code).
    time_scale: float = 1.0            # Network time input = time_scale · α (quirk 4.3.4: 1 = code; 1000 deviates).
    loss_reduction: str = "sum"        # "sum" over C·H·W per sample (code, quirk 4.3.5) | "mean".
    white_pairing: str = "same"        # Quirk 4.3.10: "same" w in γw and b = Lw | "official_128" (shuffled w).

    def __post_init__(self):
        checks = {"noise": (self.noise, NOISE_TYPES), "gamma_schedule": (self.gamma_schedule, GAMMA_SCHEDULES),
                  "white_pairing": (self.white_pairing, WHITE_PAIRINGS),
                  "bluenoise_method": (self.bluenoise_method, bluenoise.METHODS),
                  "spectrum": (self.spectrum, bluenoise.SPECTRA), "loss_reduction": (self.loss_reduction, ("sum", "mean"))}
        for field, (value, valid) in checks.items():
            if value not in valid:
                raise ValueError(f"BNDMConfig.{field} = {value!r} is not one of {list(valid)}")
        if self.T < 1 or not 1 <= self.S <= self.T:
            raise ValueError(f"need T >= 1 and 1 <= S <= T, got T={self.T}, S={self.S}")
        if self.gamma_tau <= 0 or self.gamma_e == self.gamma_s:
            raise ValueError(f"need gamma_tau > 0 and gamma_e != gamma_s, got {self.gamma_tau}, {self.gamma_s}, "
                             f"{self.gamma_e}")
        if not self.split_output and self.noise == "blue" and self.gamma_schedule != "linear":
            raise ValueError("the 3-channel target is exact only when Δγ = Δα (quirk 4.3.2): use "
                             "gamma_schedule='linear' or split_output=True")


# Official settings (§3.6) as overrides of the defaults (the defaults are the 128² runs).
PRESETS: Dict[str, dict] = {
    "bndm_128": {},                                                      # AFHQ-Cat / CelebA 128².
    "bndm_64": {"gamma_tau": 1000.0},                                    # AFHQ-Cat / LSUN-Church 64².
    "bndm_celeba64": {"gamma_schedule": "linear", "split_output": False},
    "iadb": {"noise": "white", "gamma_schedule": "linear", "split_output": False},
}


def gamma_schedule(u, name: str = "sigmoid", tau: float = 0.2, s: float = 0.0, e: float = 3.0) -> np.ndarray:
    """γ(u) for u ∈ [0, 1] (float64, §3.3): linear γ = u; sigmoid γ = 1 - clip((v(1)-v(u))/(v(1)-v(0)), 1e-9, 1)
    with v(u) = sigmoid((s + u(e - s))/τ).  γ(0) = 0; γ(1) = 1 - 1e-9 for the sigmoid."""
    u = np.asarray(u, dtype=np.float64)
    if name == "linear":
        return u.copy()
    if name == "sigmoid":
        v = lambda z: expit((s + z * (e - s)) / tau)  # noqa: E731
        return 1.0 - np.clip((v(1.0) - v(u)) / (v(1.0) - v(0.0)), GAMMA_CLIP, 1.0)
    raise ValueError(f"unknown gamma schedule {name!r}; valid names: {list(GAMMA_SCHEDULES)}")


def official_128_white(w: torch.Tensor, tile: int = OFFICIAL_TILE) -> torch.Tensor:
    """The white noise the official 128-px code pairs with b = Lw (§4.3 item 10): per ``tile``² tile,
    w.reshape(n, C, tile²).transpose(1, 2).reshape(n, C, tile, tile) — [pixel, channel] memory read as
    [channel, pixel].  H and W must be multiples of ``tile``."""
    n, C, H, W = w.shape
    if H % tile or W % tile:
        raise ValueError(f"white_pairing='official_128' needs H, W multiples of {tile}, got {H}x{W}")
    t = w.reshape(n, C, H // tile, tile, W // tile, tile).permute(0, 2, 4, 1, 3, 5)     # n, i, j, C, tile, tile
    t = t.reshape(n, H // tile, W // tile, C, tile * tile).transpose(-1, -2).reshape(n, H // tile, W // tile, C,
                                                                                    tile, tile)
    return t.permute(0, 3, 1, 4, 2, 5).reshape(n, C, H, W)


def _col(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape(-1, *([1] * (ndim - 1)))


# ----------------------------------------------------------------------------------------------------------

@register
class BNDM(DiffusionProcess):
    """IADB-style deterministic interpolation with time-varying (white → blue) Gaussian noise."""

    name = "bndm"
    config_cls = BNDMConfig
    small_overrides = {"T": 20, "S": 10}
    steps_field = "S"
    training_defaults = dict(optimizer="adamw", lr=1e-4, weight_decay=0.01, grad_clip=1.0)

    @classmethod
    def budget_overrides(cls, steps: int, resolution: int) -> dict:
        """S = ``steps`` sampling steps (at most the T training levels)."""
        return {"S": min(int(steps), cls.config_cls().T)}

    @property
    def sdedit_top(self) -> int:
        return self.num_steps                              # α = t/T runs to 1 (pure noise) at t = T

    def signal_level(self, t: int) -> float:
        return 1.0 - t / self.num_steps                    # x_α = (1-α) x0 + α·noise

    def __init__(self, config: Optional[BNDMConfig] = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.alpha = np.arange(c.T + 1, dtype=np.float64) / c.T
        self.gamma = gamma_schedule(self.alpha, c.gamma_schedule, c.gamma_tau, c.gamma_s, c.gamma_e)
        self._moments: Dict[tuple, tuple] = {}

    @property
    def num_steps(self) -> int:
        return self.config.T

    def out_channels(self, data_channels: int) -> int:
        return 2 * data_channels if self.config.split_output else data_channels

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """α_t = t/T (× time_scale) as a float [B] (quirk 4.3.4)."""
        return (t.to(torch.float64) / self.config.T * self.config.time_scale).float()

    # --- noise ---------------------------------------------------------------------------------------------
    def _bn_kwargs(self) -> dict:
        c = self.config
        return dict(kind=c.spectrum, center=c.spectrum_center, width=c.spectrum_width, grid=c.cholesky_grid,
                    tile=c.cholesky_tile, jitter=c.cholesky_jitter)

    def blue(self, w: torch.Tensor) -> torch.Tensor:
        """b made from the white noise w (b = w for the white-noise IADB baseline)."""
        if self.config.noise == "white":
            return w
        return bluenoise.blue_noise(w.shape, None, self.config.bluenoise_method, white=w, **self._bn_kwargs())[0]

    def paired_white(self, w: torch.Tensor) -> torch.Tensor:
        """The white noise of the γw term: w itself, or its official 128-px shuffle (``white_pairing``)."""
        if self.config.white_pairing == "same" or self.config.noise == "white":
            return w
        return official_128_white(w)

    def mix_std(self, gamma: torch.Tensor, h: int, w: int, device) -> torch.Tensor:
        """Analytic per-pixel std of γw + (1-γ)b [B, 1, h, w] (float64) for γ [B] (§4.3.1)."""
        key = (h, w, str(device))
        if key not in self._moments:
            self._moments[key] = bluenoise.blue_noise_moments(h, w, self.config.bluenoise_method, device=device,
                                                              **self._bn_kwargs())
        var_b, cov_wb = self._moments[key]
        g = _col(gamma.to(torch.float64), 4)
        return (g * g + (1 - g) ** 2 * var_b + 2 * g * (1 - g) * cov_wb).sqrt()

    def _mix64(self, w, b, gamma):
        """ε(γ) in float64, normalised when ``normalize_mix``; γ [B] float64."""
        g = _col(gamma, 4)
        eps = g * w.double() + (1 - g) * b.double()
        if self.config.normalize_mix:
            eps = eps / self.mix_std(gamma, w.shape[-2], w.shape[-1], w.device)
        return eps

    def mix(self, w: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
        """ε_t = γ_t w + (1 - γ_t) b (divided by its std with ``normalize_mix``); ε = w for white noise."""
        if self.config.noise == "white":
            return w
        t = as_time_tensor(t, w.shape[0], w.device)
        gamma = torch.as_tensor(self.gamma, dtype=torch.float64, device=w.device)[t]
        if not self.config.normalize_mix:
            g = _col(gamma, w.ndim).to(w.dtype)
            return g * w + (1 - g) * b
        return self._mix64(w, b, gamma).to(w.dtype)

    # --- forward and training --------------------------------------------------------------------------------
    def _check_t(self, t: torch.Tensor, low: int = 0):
        if (t < low).any() or (t > self.config.T).any():
            raise ValueError(f"BNDM time indices must be in {low}..{self.config.T}, got {t.tolist()}")

    def sample_t(self, batch: int, generator, device) -> torch.Tensor:
        """t ~ U{1..T}; with ``antithetic`` the last ⌊B/2⌋ entries are T + 1 - (the first ⌊B/2⌋) (§3.4)."""
        T = self.config.T
        t = rng_lib.randint(1, T + 1, (batch,), generator, device)
        if self.config.antithetic and batch > 1:
            h = batch // 2
            t = torch.cat([t[:batch - h], T + 1 - t[:h]])
        return t

    def q_sample(self, x0, t, noise=None, generator=None):
        """x_t = α_t ε_t + (1 - α_t) x0, ε_t from the white draw ``noise`` = w (§3.3)."""
        t = as_time_tensor(t, x0.shape[0], x0.device)
        self._check_t(t)
        w = rng_lib.randn_like(x0, generator) if noise is None else noise
        eps = self.mix(self.paired_white(w), self.blue(w), t)
        a = _col(t.to(torch.float64) / self.config.T, x0.ndim).to(x0.dtype)
        return a * eps + (1 - a) * x0

    def targets(self, x0, t, w, b=None):
        """(x_t, d1*, d2*, Δγ/Δα [B]) for indices t >= 1 (§3.4); d2* is 0 for white noise."""
        T = self.config.T
        b = self.blue(w) if b is None else b
        w = self.paired_white(w)      # the w of γw and of d2* (quirk 4.3.10; w itself by default)
        gam = torch.as_tensor(self.gamma, dtype=torch.float64, device=x0.device)
        g_t, g_p = gam[t], gam[t - 1]
        a_t = _col(t.to(torch.float64) / T, x0.ndim).to(x0.dtype)
        a_p = _col((t - 1).to(torch.float64) / T, x0.ndim)
        eps = self.mix(w, b, t)
        x_t = a_t * eps + (1 - a_t) * x0
        d1 = x0 - eps
        if self.config.noise == "white":
            d2 = torch.zeros_like(x0)
        elif not self.config.normalize_mix:
            d2 = a_p.to(x0.dtype) * (b - w)
        else:   # exact finite difference α_{t-1}(ε_{t-1} - ε_t)/Δγ, in float64
            dg = _col(g_t - g_p, x0.ndim)
            diff = self._mix64(w, b, g_p) - self._mix64(w, b, g_t)
            fallback = (b - w).double() / self.mix_std(g_t, x0.shape[-2], x0.shape[-1], x0.device)
            d2 = (a_p * torch.where(dg > 0, diff / dg.clamp(min=1e-300), fallback)).to(x0.dtype)
        return x_t, d1, d2, (g_t - g_p) * T

    def loss(self, net, x0, t=None, noise=None, generator=None):
        """Σ‖d1 - d1*‖² + (Δγ/Δα) Σ‖d2 - d2*‖² per sample (6 channels), or Σ‖d - d*‖² (3 channels)."""
        C = x0.shape[1]
        t = self.training_time(x0, t, generator)
        self._check_t(t, low=1)
        w = rng_lib.randn_like(x0, generator) if noise is None else noise
        x_t, d1_star, d2_star, weight = self.targets(x0, t, w)
        reduce = sum_per_sample if self.config.loss_reduction == "sum" else mean_per_sample
        out = net(x_t, self.net_time(t))
        weight = weight.to(x0.dtype)
        if self.config.split_output:
            d1, d2 = out[:, :C], out[:, C:]
            return reduce((d1 - d1_star) ** 2) + weight * reduce((d2 - d2_star) ** 2)
        return reduce((out - (d1_star + _col(weight, x0.ndim).to(x0.dtype) * d2_star)) ** 2)

    # --- reverse -------------------------------------------------------------------------------------------
    def _d1(self, out: torch.Tensor, C: int) -> torch.Tensor:
        return out[:, :C] if self.config.split_output else out

    def predict_x0(self, net, x_t, t):
        """x̂0 = x_t + α_t d1 (exact for d1 = x - ε_t; for the 3-channel d it ignores the small (b - w) term)."""
        t = as_time_tensor(t, x_t.shape[0], x_t.device)
        out = net(x_t, self.net_time(t))
        return x_t + _col(t.to(x_t.dtype) / self.config.T, x_t.ndim) * self._d1(out, x_t.shape[1])

    def prior(self, shape, generator, x0=None, device=None):
        """x_T = ε_T = w ~ N(0, I) (γ_T ≈ 1: white)."""
        return rng_lib.randn(shape, generator, device=device or "cpu")

    def sampling_grid(self) -> np.ndarray:
        """Indices round(j·T/S), j = 0..S (ascending; exact α = j/S when S divides T)."""
        c = self.config
        return np.unique(np.round(np.linspace(0, c.T, c.S + 1)).astype(np.int64))

    def sampling_timesteps(self, start=None):
        """(t_j, t_{j-1}) down the S-step grid; ``start`` (an index <= T) replaces the top of the grid."""
        grid = [int(v) for v in self.sampling_grid()[::-1]]
        if start is not None:
            start = int(start)
            if not 1 <= start <= self.config.T:
                raise ValueError(f"BNDM start index must be in 1..{self.config.T}, got {start}")
            grid = [start] + [v for v in grid if v < start]
        return list(zip(grid[:-1], grid[1:]))

    def step(self, net, x_t, t, t_prev, generator=None):
        """x ← x + (α_s - α_e) d1 + (γ_s - γ_e) d2, α_s = t/T, α_e = t_prev/T (§3.5; deterministic)."""
        T = self.config.T
        if not 0 <= t_prev < t <= T:
            raise ValueError(f"BNDM steps need 0 <= t_prev < t <= {T}, got {t} -> {t_prev}")
        C = x_t.shape[1]
        tt = as_time_tensor(t, x_t.shape[0], x_t.device)
        out = net(x_t, self.net_time(tt))
        a_s, a_e = t / T, t_prev / T
        d1 = self._d1(out, C)
        x_prev = x_t + (a_s - a_e) * d1
        if self.config.split_output:
            x_prev = x_prev + float(self.gamma[t] - self.gamma[t_prev]) * out[:, C:]
        return StepOutput(x_prev, x_t + a_s * d1)
