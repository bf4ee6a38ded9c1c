"""Analytic checks of the DDPM process (baselines_spec.md §5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.processes import make_process
from lib.sampling import sample, sample_ddim
from tests.conftest import OracleNet, smooth_images


@pytest.mark.parametrize("T,expected", [(500, 6.3527e-3), (750, 5.0634e-4), (1000, 4.0358e-5)])
def test_alpha_bar_terminal_values(T, expected):
    p = make_process("ddpm", T=T)
    assert p.alpha_bar.dtype == np.float64
    assert p.alpha_bar[-1] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("t", [1, 250, 499])
def test_posterior_matches_gaussian_conditioning(t):
    """q(x_{t-1}|x_t,x0) against direct conditioning of the joint Gaussian (x_{t-1}, x_t | x0)."""
    p = make_process("ddpm", T=500)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    xt = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    ab, ab_prev, a = p.alpha_bar[t], p.alpha_bar[t - 1], p.alphas[t]
    cov = np.sqrt(a) * (1 - ab_prev)                       # Cov(x_{t-1}, x_t | x0)
    mean_direct = np.sqrt(ab_prev) * x0 + cov / (1 - ab) * (xt - np.sqrt(ab) * x0)
    var_direct = (1 - ab_prev) - cov ** 2 / (1 - ab)
    mean, var = p.posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(mean, mean_direct, rtol=0, atol=1e-10)
    assert float(var.flatten()[0]) == pytest.approx(var_direct, abs=1e-10)


def test_posterior_variance_is_zero_at_index_zero_and_mean_is_x0():
    p = make_process("ddpm", T=500)
    x0 = smooth_images(2, 3, 8).double()
    xt = torch.randn_like(x0)
    mean, var = p.posterior_mean_variance(x0, xt, 0)
    assert float(var.max()) == 0.0
    torch.testing.assert_close(mean, x0, rtol=0, atol=1e-12)


def test_eps_form_of_the_mean_equals_x0_form():
    p = make_process("ddpm", T=500)
    g = torch.Generator().manual_seed(1)
    xt = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    for t in (1, 100, 499):
        x0 = p.predict_x0_from_eps(xt, t, eps)
        mean, _ = p.posterior_mean_variance(x0, xt, t)
        mean_eps = (xt - p.betas[t] * eps / np.sqrt(1 - p.alpha_bar[t])) / np.sqrt(p.alphas[t])
        torch.testing.assert_close(mean, mean_eps, rtol=0, atol=1e-6)


def test_forward_variance_empirical():
    p = make_process("ddpm", T=500)
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(20000, 1, 1, 1, generator=g) * 2 - 1
    t = 200
    xt = p.q_sample(x0, t, generator=g)
    expected = p.alpha_bar[t] * x0.var().item() + 1 - p.alpha_bar[t]
    assert xt.var().item() == pytest.approx(expected, rel=0.03)


def _eps_oracle(p, x0):
    ab = torch.as_tensor(p.alpha_bar, dtype=torch.float32)

    def fn(x, t):
        a = ab[t.long()].view(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()
    return OracleNet(fn)


@pytest.mark.parametrize("steps", [1, 10, 50, 500])
def test_ddim_with_oracle_recovers_x0(steps):
    p = make_process("ddpm", T=500)
    x0 = smooth_images(3, 3, 16)
    xT = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    out = sample_ddim(p, _eps_oracle(p, x0), xT, steps, progress=False)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-4)


def test_ancestral_with_oracle_denoise_returns_x0_and_code_mode_keeps_step_noise():
    x0 = smooth_images(3, 3, 16)
    p = make_process("ddpm", T=100, final_step="denoise")
    out = sample(p, _eps_oracle(p, x0), x0.shape, torch.Generator().manual_seed(0), progress=False)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-4)
    # The official loop stops at t=1 → 0 and adds posterior noise (Q9): with an exact x̂0 the chain is the exact
    # posterior chain, so the returned state is distributed as q(x_0 | x0) = N(√ᾱ_0 x0, 1 - ᾱ_0).
    q = make_process("ddpm", T=100, final_step="code")
    errs = torch.cat([(sample(q, _eps_oracle(q, x0), x0.shape, torch.Generator().manual_seed(s), progress=False)
                       - np.sqrt(q.alpha_bar[0]) * x0).flatten() for s in range(4)])
    keep = (x0.abs() < 0.95).flatten().repeat(4)  # away from the clip
    assert errs[keep].std().item() == pytest.approx(np.sqrt(1 - q.alpha_bar[0]), rel=0.1)


def test_sdedit_start_index_and_ddim_subsequence():
    p = make_process("ddpm", T=500)
    steps = p.ddim_timesteps(10, start=275)
    assert steps[0][0] == 275 and steps[-1][1] == -1
    assert [t for t, _ in steps] == sorted({t for t, _ in steps}, reverse=True)
    assert p.sampling_timesteps(start=275)[0] == (275, 274)
