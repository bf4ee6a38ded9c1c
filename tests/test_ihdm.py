"""IHDM checks (baselines_spec.md §5 "IHDM", §2, §4.1): DCT blur, schedule, loss and sampler with oracles."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import torch

from lib.processes import make_process
from lib.processes.ihdm import IHDM, IHDMConfig, blur_schedule, dct2, dct_blur, dct_matrix, heat_frequencies, idct2
from lib.sampling import generate, sample
from tests.conftest import OracleNet, smooth_images, tiny_unet_losses


def _uniform(shape, seed=0, dtype=torch.float64):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)



# ----------------------------------------------------------------------------------------------------------
# The DCT and the heat-equation blur.

def test_dct_matches_scipy_and_inverts():
    x = _uniform((2, 3, 16, 24))
    ref = scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(dct2(x).numpy(), ref, atol=1e-12)
    torch.testing.assert_close(idct2(dct2(x)), x, rtol=0, atol=1e-12)
    D = dct_matrix(16)
    torch.testing.assert_close(D @ D.T, torch.eye(16, dtype=torch.float64), rtol=0, atol=1e-12)


def test_blur_level_zero_is_identity():
    x = _uniform((2, 3, 32, 32), dtype=torch.float32)
    assert (dct_blur(x, 0.0) - x).abs().max() < 1e-6
    proc = IHDM()
    assert (proc.blur(x, 0) - x).abs().max() < 1e-6
    assert dct_blur(x, 0.0).dtype == torch.float32


def test_blur_keeps_the_channel_mean_at_every_level():
    proc = IHDM()          # K = 200, σ_B up to 128 on a 64×64 image
    x = _uniform((1, 3, 64, 64))
    mean = x.mean(dim=(-2, -1))
    levels = torch.arange(0, proc.config.K + 1)
    out = proc.blur(x.expand(len(levels), -1, -1, -1), levels)
    assert (out.mean(dim=(-2, -1)) - mean).abs().max() < 1e-12
    flat = dct_blur(x, 1e6)                                  # σ_B → ∞: the constant mean image
    assert (flat - mean[..., None, None]).abs().max() < 1e-12


@pytest.mark.parametrize("sigma, tol", [(2.0, 1e-6), (3.0, 1e-6), (5.5, 1e-6), (1.0, 2e-3)])
def test_blur_equals_reflect_gaussian_filter(sigma, tol):
    x = _uniform((64, 64), seed=1)
    ref = scipy.ndimage.gaussian_filter(x.numpy(), sigma, mode="reflect", truncate=12)
    assert np.abs(dct_blur(x, sigma).numpy() - ref).max() < tol


def test_blur_differs_from_sampled_gaussian_below_one_pixel():
    # Quirk 10: the DCT multiplier is the continuous kernel's transform; at σ = 0.5 it is not the sampled kernel.
    x = _uniform((64, 64), seed=1)
    ref = scipy.ndimage.gaussian_filter(x.numpy(), 0.5, mode="reflect", truncate=12)
    assert np.abs(dct_blur(x, 0.5).numpy() - ref).max() > 1e-2


def test_semigroup():
    x = _uniform((2, 1, 32, 32), seed=2)
    s1, s2 = 1.3, 2.7                                       # t = σ²/2 adds: σ² adds
    two_steps = dct_blur(dct_blur(x, s1), s2)
    torch.testing.assert_close(two_steps, dct_blur(x, math.sqrt(s1 ** 2 + s2 ** 2)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("j, k", [(0, 0), (1, 0), (0, 5), (3, 7), (15, 23)])
def test_dct_basis_images_are_eigenfunctions(j, k):
    H, W, sigma = 16, 24, 1.7
    coef = torch.zeros(H, W, dtype=torch.float64)
    coef[j, k] = 1.0
    basis = idct2(coef)
    lam = (math.pi * j / H) ** 2 + (math.pi * k / W) ** 2
    assert heat_frequencies(H, W)[j, k].item() == pytest.approx(lam)
    torch.testing.assert_close(dct_blur(basis, sigma), math.exp(-lam * sigma ** 2 / 2) * basis, rtol=0, atol=1e-12)


def test_per_sample_sigmas():
    x = _uniform((3, 2, 16, 16), seed=3)
    sig = torch.tensor([0.0, 1.0, 4.0])
    out = dct_blur(x, sig)
    for i in range(3):
        torch.testing.assert_close(out[i], dct_blur(x[i], float(sig[i])), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Schedule, config, time indices.

def test_schedule_values():
    s = IHDM().sigma_blur
    K = 200
    assert len(s) == K + 1 and s[0] == 0
    assert s[1] == pytest.approx(0.5, rel=1e-12) and s[K] == pytest.approx(128.0, rel=1e-12)
    ratios = s[2:] / s[1:-1]
    np.testing.assert_allclose(ratios, (128 / 0.5) ** (1 / (K - 1)), rtol=1e-12)
    assert ratios[0] == pytest.approx(1.028, abs=5e-4)          # §2.5: 1.028 for K = 200, σ_max = 128
    np.testing.assert_allclose(blur_schedule(200, 0.5, 24.0)[2] / blur_schedule(200, 0.5, 24.0)[1], 1.020, atol=5e-4)
    assert IHDM(unblurred_top_level=True).sigma_blur[-1] == 0   # quirk 4 (afhq-64), off by default


def test_config_defaults_and_validation():
    c = IHDMConfig()
    assert (c.K, c.sigma_blur_min, c.sigma_blur_max, c.sigma, c.delta) == (200, 0.5, 128.0, 0.01, 0.0125)
    assert not c.train_include_K and c.prior_noise and not c.unblurred_top_level
    with pytest.raises(ValueError):
        IHDMConfig(loss_reduction="max")
    with pytest.raises(ValueError):
        IHDMConfig(sigma_blur_min=2.0, sigma_blur_max=1.0)


def test_training_levels_never_zero_or_K():
    proc = make_process("ihdm", K=10)
    t = proc.sample_t(5000, torch.Generator().manual_seed(0), "cpu")
    assert set(t.tolist()) == set(range(1, 10))                # {1..K-1}: the code's randint(1, K)
    t = make_process("ihdm", K=10, train_include_K=True).sample_t(5000, torch.Generator().manual_seed(0), "cpu")
    assert set(t.tolist()) == set(range(1, 11))


def test_state_space_and_net_time():
    proc = IHDM()
    x0 = smooth_images(2, 3, 16)
    u = proc.from_image(x0)
    assert u.min() >= 0 and u.max() <= 1
    torch.testing.assert_close(proc.to_image(u), x0)
    torch.testing.assert_close(proc.q_sample(x0, 0, noise=torch.zeros_like(x0)), u)
    assert torch.equal(proc.net_time(torch.tensor([1, 7, 200])), torch.tensor([1.0, 7.0, 200.0]))
    steps = make_process("ihdm", K=5).sampling_timesteps()
    assert steps == [(5, 4), (4, 3), (3, 2), (2, 1), (1, 0)]
    with pytest.raises(ValueError, match="k-1"):
        proc.step(lambda x, t: x, u, 5, 3, None)


# ----------------------------------------------------------------------------------------------------------
# Loss and sampler with oracle networks.

def _oracle_residual(proc, x_state):
    """f(u, k) = A_{k-1} x - u: the exact residual for the clean images ``x_state``."""
    return OracleNet(lambda u, t: proc.blur(x_state, t.round().long() - 1) - u)


def test_loss_with_oracle_residual_is_zero_and_zero_net_matches_formula():
    proc = make_process("ihdm", K=10, sigma_blur_max=8.0)
    x0 = smooth_images(4, 3, 16).double()
    x = proc.from_image(x0)
    g = torch.Generator().manual_seed(0)
    loss = proc.loss(_oracle_residual(proc, x), x0, generator=g)
    assert loss.shape == (4,) and loss.abs().max() < 1e-20
    t = torch.tensor([1, 3, 5, 9])
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    zero = OracleNet(lambda u, k: torch.zeros_like(u))
    expected = ((proc.blur(x, t - 1) - proc.blur(x, t) - 0.01 * noise) ** 2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(proc.loss(zero, x0, t=t, noise=noise), expected)
    mean_proc = make_process("ihdm", K=10, sigma_blur_max=8.0, loss_reduction="mean")
    torch.testing.assert_close(mean_proc.loss(zero, x0, t=t, noise=noise), expected / (3 * 16 * 16))


@pytest.mark.parametrize("delta", [0.0, 0.0125])
def test_oracle_sampler_recovers_the_image(delta):
    # With δ = 0 the whole chain is exact; with δ > 0 it still is, because the last step returns μ = A_0 x
    # (no noise after the final step): this checks that the sampler returns μ and not u.
    proc = make_process("ihdm", K=10, sigma_blur_max=8.0, delta=delta)
    x0 = smooth_images(3, 3, 16)
    net = _oracle_residual(proc, proc.from_image(x0))
    img = sample(proc, net, x0.shape, torch.Generator().manual_seed(0), prior_data=x0, progress=False)
    assert (img - x0.clamp(-1, 1)).abs().max() < 1e-5


def test_prior_blurs_training_images_and_adds_delta_noise():
    proc = make_process("ihdm", K=10, sigma_blur_max=8.0)
    x0 = smooth_images(4, 3, 16)
    with pytest.raises(ValueError, match="training images"):
        proc.prior((4, 3, 16, 16), torch.Generator().manual_seed(0))
    blurred = proc.blur(proc.from_image(x0), 10)
    clean = make_process("ihdm", K=10, sigma_blur_max=8.0, prior_noise=False)
    torch.testing.assert_close(clean.prior((4, 3, 16, 16), None, x0=x0), blurred)
    noisy = proc.prior((4, 3, 16, 16), torch.Generator().manual_seed(0), x0=x0)
    assert (noisy - blurred).std().item() == pytest.approx(proc.config.delta, rel=0.1)
    # N != B training images: B of them are drawn with the generator.
    drawn = clean.prior((6, 3, 16, 16), torch.Generator().manual_seed(1), x0=x0)
    for i in range(6):
        assert min((drawn[i] - blurred[j]).abs().max().item() for j in range(4)) < 1e-6
    with pytest.raises(ValueError, match="shape"):
        proc.prior((4, 3, 8, 8), None, x0=x0)


def test_generate_is_seed_addressed_with_prior_data():
    proc = make_process("ihdm", K=4, sigma_blur_max=4.0)
    x0 = smooth_images(3, 3, 16)
    net = OracleNet(lambda u, t: 0.1 * (0.5 - u))
    a = generate(proc, net, 3, (3, 16, 16), seed=5, batch_size=3, prior_data=x0, progress=False)
    b = generate(proc, net, 3, (3, 16, 16), seed=5, batch_size=2, prior_data=x0, progress=False)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# A tiny U-Net learns (the loss falls on one fixed batch).

def test_tiny_unet_loss_falls():
    losses = tiny_unet_losses(make_process("ihdm", **IHDM.small_overrides))
    first, last = np.mean(losses[:2]), np.mean(losses[-3:])   # windows of 20 and 30 steps
    assert last < first / 3, losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_blur_matches_cpu_under_autocast():
    x = _uniform((2, 3, 32, 32), dtype=torch.float32)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = dct_blur(x.cuda(), torch.tensor([0.0, 3.0], device="cuda"))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.cpu(), dct_blur(x, torch.tensor([0.0, 3.0])), rtol=1e-5, atol=1e-5)
