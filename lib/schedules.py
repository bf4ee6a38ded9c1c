"""Pure schedule functions (float64 numpy), shared by the processes.

Committed schedules must never change silently: the tests pin their reference values
(epd_spec.md §8 U8, baselines_spec.md §5).
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np


# ----------------------------------------------------------------------------------------------------------
# DDPM noise schedule (Ho et al. 2020; epd_spec.md §0).

def linear_beta_schedule(T: int, beta_min: float = 1e-4, beta_max: float = 2e-2) -> np.ndarray:
    """β_t = linspace(β_min, β_max, T)[t] for t = 0..T-1, in float64."""
    if T < 2:
        raise ValueError(f"T must be >= 2, got {T}")
    return np.linspace(beta_min, beta_max, T, dtype=np.float64)


def matched_betas(T: int, ref_T: int = 500, beta_min: float = 1e-4, beta_max: float = 2e-2) -> dict:
    """β range scaled by ref_T/T so a shorter chain still ends near noise (ᾱ_{T-1} ≈ the T=500 value 6.4e-3).

    With the paper's unscaled range a short chain ends far from noise (T=200: ᾱ_{T-1} = 0.13, so √ᾱ = 0.36 of
    the image is left at the N(0, I) 'prior').  Used by the reduced profiles only; the paper profile keeps the
    paper's β range."""
    s = ref_T / T
    return {"beta_min": beta_min * s, "beta_max": beta_max * s}


def alpha_bar(betas: np.ndarray) -> np.ndarray:
    """ᾱ_t = Π_{i<=t} (1 - β_i); index 0 is already one noising step (epd_spec.md §0)."""
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def alpha_bar_prev(abar: np.ndarray) -> np.ndarray:
    """ᾱ_{t-1} with ᾱ_{-1} := 1."""
    return np.concatenate([[1.0], abar[:-1]])


# ----------------------------------------------------------------------------------------------------------
# EPD transition functions τ(t), all of u = t/(T-1) (epd_spec.md §1.4, quirks Q2/Q3).

def _tau_linear(u, t_phi, k):       # code's `linear_transition_scheme`: ramp u, jumps to 1 at t_Φ (Q3)
    return np.where(u < t_phi, u, 1.0)


def _tau_linear_ramp(u, t_phi, k):  # option: a ramp that reaches 1 at t_Φ
    return np.minimum(1.0, u / t_phi)


def _tau_cosine(u, t_phi, k):       # code's `cosine_transition_scheme`: ignores t_Φ (Q2)
    return (1.0 - np.cos(np.pi * u)) / 2.0


def _tau_sigmoid(u, t_phi, k):      # code's `exponential_transition_scheme`, the paper's "sigmoid" (Q2)
    return 1.0 / (1.0 + np.exp(-k * (u - t_phi)))


def _tau_one(u, t_phi, k):          # τ ≡ 1: the process is exactly DDPM (claim 22, check U1)
    return np.ones_like(u)


TRANSITIONS: Dict[str, Callable] = {
    "linear": _tau_linear,
    "linear_ramp": _tau_linear_ramp,
    "cosine": _tau_cosine,
    "sigmoid": _tau_sigmoid,
    "one": _tau_one,
}


def transition_schedule(name: str, T: int, t_phi: float = 0.5, k: float = 10.0) -> np.ndarray:
    """τ_t for t = 0..T-1 (float64)."""
    if name not in TRANSITIONS:
        raise ValueError(f"unknown transition function {name!r}; valid names: {sorted(TRANSITIONS)}")
    u = np.arange(T, dtype=np.float64) / (T - 1)
    return np.asarray(TRANSITIONS[name](u, t_phi, k), dtype=np.float64)


# ----------------------------------------------------------------------------------------------------------
# EPD edge sensitivity λ(t) (epd_spec.md §1.3, quirk Q6).

LAMBDA_SCHEDULES = ("linear", "clamp", "sigmoid", "constant")


def lambda_schedule(T: int, lambda_min: float = 1e-4, lambda_max: float = 1e-1, t_phi: float = 0.5,
                    mode: str = "linear", constant: float | None = None, k: float = 10.0) -> np.ndarray:
    """λ_t for t = 0..T-1 (float64).

    linear   -- the code's formula λ_t = (1-r)λ_min + r λ_max with r = t/(t_Φ·T), unclamped (Q6)
    clamp    -- the same, clamped to [λ_min, λ_max]
    sigmoid  -- λ_min + (λ_max-λ_min)·sigmoid(k(r - 1/2)), rescaled to hit λ_min at r=0 and λ_max at r=1
                (the paper tried a sigmoid λ(t) without giving it; this form is ours)
    constant -- λ_t = ``constant`` (the λ ablation)
    """
    t = np.arange(T, dtype=np.float64)
    r = t / (t_phi * T)
    if mode == "linear":
        return (1.0 - r) * lambda_min + r * lambda_max
    if mode == "clamp":
        return np.clip((1.0 - r) * lambda_min + r * lambda_max, lambda_min, lambda_max)
    if mode == "sigmoid":
        s = lambda v: 1.0 / (1.0 + np.exp(-k * (v - 0.5)))
        w = np.clip((s(np.minimum(r, 1.0)) - s(0.0)) / (s(1.0) - s(0.0)), 0.0, 1.0)
        return lambda_min + (lambda_max - lambda_min) * w
    if mode == "constant":
        if constant is None or constant <= 0:
            raise ValueError("lambda_schedule='constant' needs a positive lambda_constant")
        return np.full(T, float(constant))
    raise ValueError(f"unknown lambda schedule {mode!r}; valid names: {list(LAMBDA_SCHEDULES)}")
