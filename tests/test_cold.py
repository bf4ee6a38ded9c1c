"""Cold Diffusion: degradation operators (cold_spec.md §3, unit checks §9 U1-U15), Algorithms 1 and 2, priors.

The contract suite (test_contract.py) already runs every cold_* process through the shared interface."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib import degradations as deg
from lib.processes import PROCESSES, make_process, process_from_dict
from lib.processes.cold import (ColdBlurConfig, ColdInpaintConfig, ColdNoiseConfig, ColdProcess, ColdSRConfig,
                                GaussianMixturePrior, run_generator)
from lib.sampling import generate
from tests.conftest import OracleNet, TinyNet, smooth_images

COLD = sorted(n for n in PROCESSES if n.startswith("cold_"))

# Restoration configs (prior = D(x0, T)) of every family, small enough for 16×16 images.
RESTORATION = {
    "blur_special6": ("cold_blur", dict(T=6)),
    "blur_exp_circular": ("cold_blur", dict(T=5, blur_routine="exponential", blur_size=5, blur_std=0.3)),
    "blur_exp_reflect": ("cold_blur", dict(T=5, blur_routine="exponential_reflect", blur_size=7, blur_std=0.3)),
    "blur_constant_discrete": ("cold_blur", dict(T=4, blur_routine="constant", blur_size=5, blur_std=2.0,
                                                 discrete=True)),
    "inpaint_random": ("cold_inpaint", dict(T=5, kernel_std=0.5, discrete=False)),
    "inpaint_centred": ("cold_inpaint", dict(T=5, kernel_std=0.5, mask_routine="centred", initial_mask=1)),
    "inpaint_random_discrete": ("cold_inpaint", dict(T=5, kernel_std=0.5)),
    "sr_bicubic": ("cold_sr", dict(T=3)),
    "sr_area": ("cold_sr", dict(T=3, sr_downsample="area")),
    "snow_random": ("cold_snow", dict(T=5)),
    "snow_fixed": ("cold_snow", dict(T=5, random_snow=False, snow_level=4, fix_brightness=False)),
    "desaturate": ("cold_desaturate", dict(T=5)),
    "noise_fixed": ("cold_noise", dict(T=5, generation=False, noise_mode="fixed")),
    "noise_estimated": ("cold_noise", dict(T=5, generation=False, noise_mode="estimated")),
    "inpaint_gen": ("cold_inpaint_gen", dict(T=5, kernel_std=2.0, generation=False)),
}
CUMULATIVE = ["blur_special6", "blur_exp_circular", "blur_exp_reflect", "blur_constant_discrete",
              "inpaint_random", "inpaint_centred", "sr_bicubic", "sr_area", "desaturate"]


def build(key, **kw):
    name, over = RESTORATION[key]
    return make_process(name, **{**over, **kw})


def x_images(b=4, c=3, n=16, seed=0, dtype=torch.float64):
    return smooth_images(b, c, n, seed=seed).to(dtype)


def oracle(x0, delta=None):
    """R(x_s, s) := x0 (+ a fixed perturbation δ)."""
    return OracleNet(lambda x, t: x0 if delta is None else x0 + delta)


def reverse(proc, net, x, g, start=None, callback=None):
    """The generic loop of lib.sampling.sample without its final clamp (so errors stay visible)."""
    for t, tp in proc.sampling_timesteps(start):
        out = proc.step(net, x, t, tp, g)
        x = out.x_prev
        if callback is not None:
            callback(t, tp, x, out.x0_hat)
    return x


def latent(proc, x0, seed):
    return proc.run_latent(x0.shape, torch.Generator().manual_seed(seed), x0.device)


# ----------------------------------------------------------------------------------------------------------
# U1, U2: identity at zero, index shift, cumulative structure.

@pytest.mark.parametrize("key", sorted(RESTORATION))
def test_identity_at_zero_bit_exact(key):
    proc = build(key)
    x0 = x_images()
    z = latent(proc, x0, 0)
    assert torch.equal(proc.degrade(x0, 0, z), x0)
    assert torch.equal(proc.q_sample(x0, 0, generator=torch.Generator().manual_seed(0)), x0)
    s = torch.tensor([0, 1, 0, proc.config.T])          # per-sample severities: the s = 0 rows stay untouched
    y = proc.degrade(x0, s, z)
    assert torch.equal(y[0], x0[0]) and torch.equal(y[2], x0[2])


@pytest.mark.parametrize("key", CUMULATIVE)
def test_cumulative_step_structure(key):
    """U2: D(x, s) == op[s-1](D(x, s-1)) exactly, and per-sample severities equal per-severity calls."""
    proc = build(key)
    x0 = x_images()
    z = latent(proc, x0, 1)
    for s in range(1, proc.config.T + 1):
        assert torch.equal(proc.degrade(x0, s, z), proc.D.step_op(proc.degrade(x0, s - 1, z), s - 1, z))
    s = torch.tensor([3, 0, 1, 2]).clamp(max=proc.config.T)
    batched = proc.degrade(x0, s, z)
    for i in range(4):
        torch.testing.assert_close(batched[i], proc.degrade(x0, int(s[i]), z)[i], rtol=0, atol=1e-12)


def test_training_index_shift_and_loss():
    """U2/U14: the net sees D(x0, k+1) with time input k = s-1; the loss is mean |R - x0|, 0 for an oracle."""
    proc = build("blur_special6")
    x0 = x_images()
    seen = {}

    def spy(x, t):
        seen["x"], seen["t"] = x, t
        return x * 0.5

    s = torch.tensor([1, 2, 5, 6])
    loss = proc.loss(spy, x0, t=s)
    torch.testing.assert_close(seen["t"], (s - 1).float())
    assert torch.equal(seen["x"], proc.degrade(x0, s))
    torch.testing.assert_close(loss, (0.5 * proc.degrade(x0, s) - x0).abs().mean(dim=(1, 2, 3)))
    assert torch.equal(proc.loss(oracle(x0), x0, t=s), torch.zeros(4, dtype=x0.dtype))
    draws = proc.sample_t(4000, torch.Generator().manual_seed(0), "cpu")
    assert set(draws.tolist()) == set(range(1, proc.config.T + 1))       # s ∈ {1..T}: k = s-1 ∈ {0..T-1}
    assert proc.num_steps == proc.config.T
    l2 = make_process("cold_blur", T=6, loss_type="l2").loss(spy, x0, t=s)
    torch.testing.assert_close(l2, ((0.5 * proc.degrade(x0, s) - x0) ** 2).mean(dim=(1, 2, 3)))


def test_discrete_quantises_training_inputs_by_truncation():
    """Q6: 8-bit truncation of training inputs for s > 0 only; 'round' is the option."""
    proc = build("inpaint_random_discrete")
    x0 = x_images()
    g = torch.Generator().manual_seed(0)
    y = proc.q_sample(x0, 3, generator=g)
    v = 255 * (y + 1) / 2
    torch.testing.assert_close(v, v.round(), rtol=0, atol=1e-9)
    z = proc.train_latent(x0.shape, torch.Generator().manual_seed(0), "cpu")
    exact = proc.degrade(x0, 3, z)
    assert ((exact - y) >= -1e-12).all() and ((exact - y) < 2 / 255 + 1e-12).all()
    assert torch.equal(y, deg.quantize_8bit(exact))
    assert (deg.quantize_8bit(x0, "round") - x0).abs().max() <= 1 / 255 + 1e-12


# ----------------------------------------------------------------------------------------------------------
# Monotone severity.

@pytest.mark.parametrize("key", ["blur_special6", "blur_exp_circular", "blur_exp_reflect", "inpaint_random",
                                 "inpaint_centred", "sr_bicubic", "sr_area", "desaturate", "noise_fixed",
                                 "inpaint_gen"])
def test_distance_to_x0_grows_with_severity(key):
    proc = build(key)
    x0 = x_images()
    z = latent(proc, x0, 0)
    d = [float((proc.degrade(x0, s, z) - x0).pow(2).mean()) for s in range(proc.config.T + 1)]
    assert all(b >= a - 1e-12 for a, b in zip(d, d[1:])), d
    assert d[-1] > d[1] > 0


def test_blur_removes_high_frequencies_monotonically():
    proc = build("blur_exp_circular")
    x0 = x_images()
    lap = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=x0.dtype).expand(3, 1, 3, 3)
    hf = [float(F.conv2d(F.pad(proc.degrade(x0, s), (1, 1, 1, 1), mode="circular"), lap, groups=3).pow(2).mean())
          for s in range(proc.config.T + 1)]
    var = [float(proc.degrade(x0, s).var(dim=(2, 3)).mean()) for s in range(proc.config.T + 1)]
    assert all(b < a for a, b in zip(hf, hf[1:])) and all(b < a for a, b in zip(var, var[1:]))


# ----------------------------------------------------------------------------------------------------------
# U5, U6: Gaussian kernel and blur.

def test_gaussian_kernel():
    g = deg.gaussian_kernel1d(11, 7.0)
    k = deg.gaussian_kernel2d(11, 7.0)
    assert abs(float(k.sum()) - 1) < 1e-12 and torch.equal(k, k.T) and torch.equal(k, k.flip(0, 1))
    assert int(k.argmax()) == 5 * 11 + 5
    assert math.isclose(float(g[0] / g[5]), math.exp(-25 / 98), rel_tol=1e-12)
    with pytest.raises(ValueError):
        deg.gaussian_kernel1d(4, 1.0)


def test_blur_schedules_match_readme():
    K, sig = deg.blur_schedule("special_6", 50, 11, 0.01)
    assert K == 11 and math.isclose(sig[0], 0.35) and math.isclose(sig[-1], 0.84)
    c = ColdBlurConfig.preset("celeba")
    K, sig = deg.blur_schedule(c.blur_routine, c.T, c.blur_size, c.blur_std)
    assert (K, c.T) == (15, 200) and math.isclose(sig[-1], math.exp(1.99))
    g = ColdBlurConfig.preset("celeba_generation")
    K, sig = deg.blur_schedule(g.blur_routine, g.T, g.blur_size, g.blur_std)
    assert (K, g.T, g.discrete, g.prior_noise, g.gmm_components) == (27, 300, True, 0.002, 1)
    assert math.isclose(sig[-1], math.exp(2.99))
    assert deg.GaussianBlur(g.T, g.blur_routine, g.blur_size, g.blur_std).padding == "circular"
    assert make_process("cold_blur").D.padding == "reflect"
    m = ColdBlurConfig.preset("mnist")
    assert (m.T, m.blur_routine, m.blur_std) == (20, "constant", 7.0)
    with pytest.raises(ValueError, match="valid"):
        ColdBlurConfig.preset("imagenet")


def test_blur_mean_circular_discrete_reflect():
    """U6/Q15: circular padding keeps every channel mean; discrete D(x, T) is the mean image; reflect drifts."""
    x0 = x_images()
    mean0 = x0.mean(dim=(2, 3))
    circ = build("blur_exp_circular")
    for s in range(circ.config.T + 1):
        torch.testing.assert_close(circ.degrade(x0, s).mean(dim=(2, 3)), mean0, rtol=0, atol=1e-6)
    disc = make_process("cold_blur", ColdBlurConfig.preset("celeba_generation", generation=False), T=5,
                        blur_size=5, blur_std=0.3)
    xT = disc.degrade(x0, disc.config.T)
    torch.testing.assert_close(xT, mean0[:, :, None, None].expand_as(x0), rtol=0, atol=1e-6)
    refl = build("blur_exp_reflect")
    drift = (refl.degrade(x0, refl.config.T).mean(dim=(2, 3)) - mean0).abs().max()
    assert 1e-6 < drift < 0.1


# ----------------------------------------------------------------------------------------------------------
# U7: Gaussian masks.

def test_masks_centred_random_and_monotone():
    x = torch.ones(1, 3, 128, 128, dtype=torch.float64)
    cen = deg.GaussianMask(100, 0.2, 1, "centred")
    for i in (0, 50, 99):
        m = cen.mask(x, i)
        assert m.min() >= 0 and m.max() <= 1 and m[0, 0, 63, 63] == 0
    cum = [cen(x, s)[0, 0] for s in range(0, 101, 10)]
    assert all((b <= a).all() for a, b in zip(cum, cum[1:])) and cum[-1].mean() < cum[1].mean()
    rnd = deg.GaussianMask(5, 0.5, 1, "random")
    x16 = torch.ones(64, 1, 16, 16, dtype=torch.float64)            # 1 channel: the mask broadcasts (Q10)
    g = torch.Generator().manual_seed(0)
    z = rnd.draw_latent(x16.shape, g, "cpu")
    rx_ry = rnd.draw_latent(x16.shape, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(z, rx_ry) and z.min() >= -1 and z.max() <= 15   # centres (N-1-rx, N-1-ry) ∈ [-1, N-1]²
    g2 = torch.Generator().manual_seed(0)
    rx, ry = torch.randint(0, 17, (64,), generator=g2), torch.randint(0, 17, (64,), generator=g2)
    assert torch.equal(z, torch.stack([15 - rx, 15 - ry], dim=1))
    m0 = rnd.mask(x16, 0, z)
    for b in range(64):
        r, c = int(z[b, 0]), int(z[b, 1])
        if r >= 0 and c >= 0:
            assert m0[b, 0, r, c] == 0
        else:
            assert m0[b, 0].min() > 0
    area = [float((rnd(x16, s, z) < 0.5).float().mean()) for s in range(6)]
    assert all(b >= a for a, b in zip(area, area[1:])) and area[-1] > area[0]
    c = ColdInpaintConfig.preset("celeba")
    assert (c.T, c.mask_routine, c.kernel_std, c.initial_mask, c.discrete) == (100, "centred", 0.2, 1, False)


# ----------------------------------------------------------------------------------------------------------
# U8: super-resolution.

def _bicubic_half(x):
    """Separable 4-tap bicubic at half-pixel phase (A = -0.75), clamped borders: the closed form of SR step 1."""
    taps = torch.tensor([-0.09375, 0.59375, 0.59375, -0.09375], dtype=x.dtype)
    def along(v, dim):
        n = v.shape[dim]
        out = 0
        for k in range(4):
            idx = (2 * torch.arange(n // 2) - 1 + k).clamp(0, n - 1)
            out = out + taps[k] * v.index_select(dim, idx)
        return out
    return along(along(x, 2), 3)


def test_sr_blocks_closed_form():
    x0 = x_images(n=32)
    proc = make_process("cold_sr", T=3)
    d1 = proc.degrade(x0, 1)
    torch.testing.assert_close(d1, _bicubic_half(x0).repeat_interleave(2, 2).repeat_interleave(2, 3),
                               rtol=0, atol=1e-12)
    for s in range(1, 4):
        b = 2 ** s
        ds = proc.degrade(x0, s)
        low = ds[:, :, ::b, ::b]
        assert torch.equal(ds, low.repeat_interleave(b, 2).repeat_interleave(b, 3))   # constant on 2^s blocks
        if s >= 2:
            prev = proc.degrade(x0, s - 1)[:, :, ::b // 2, ::b // 2]
            torch.testing.assert_close(low, F.avg_pool2d(prev, 2), rtol=0, atol=1e-12)
    area = make_process("cold_sr", T=3, sr_downsample="area")
    torch.testing.assert_close(area.degrade(x0, 3)[:, :, ::8, ::8], F.avg_pool2d(x0, 8), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="below 1 pixel"):
        make_process("cold_sr", T=5).degrade(x_images(n=16), 5)


# ----------------------------------------------------------------------------------------------------------
# U9: desaturation.

def test_desaturation_closed_form():
    proc = make_process("cold_desaturate", T=20)
    x0 = x_images()
    grey = x0.mean(dim=1, keepdim=True)
    for s in (0, 1, 7, 20):
        torch.testing.assert_close(proc.degrade(x0, s), (1 - s / 20) * x0 + (s / 20) * grey, rtol=0, atol=1e-12)
        torch.testing.assert_close(proc.degrade(x0, s).mean(dim=1), grey[:, 0], rtol=0, atol=1e-12)
    xT = proc.degrade(x0, 20)
    assert torch.equal(xT[:, 0], xT[:, 1]) and torch.equal(xT[:, 1], xT[:, 2])
    const = make_process("cold_desaturate", T=4, decolor_routine="constant", decolor_total_remove=True)
    y = const.degrade(x0, 4)
    torch.testing.assert_close(y, grey.expand_as(x0), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# U10: snow.

def test_clipped_zoom_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 32, 32, generator=g, dtype=torch.float64)
    for zoom in (2.5, 3.0):
        ch = math.ceil(32 / zoom)
        top = (32 - ch) // 2
        ref = []
        for xi in x.numpy():
            z = ndimage.zoom(xi[top:top + ch, top:top + ch], zoom, order=1)
            t = (z.shape[0] - 32) // 2
            ref.append(z[t:t + 32, t:t + 32])
        np.testing.assert_allclose(deg.clipped_zoom(x, zoom).numpy(), np.stack(ref), rtol=0, atol=1e-12)


def test_snow_properties():
    x0 = x_images(n=32)
    proc = make_process("cold_snow", T=20, random_snow=False)
    z = proc.fixed_pattern(x0.shape, "cpu")
    ys = [proc.degrade(x0, s, z) for s in range(21)]
    assert all(y.min() >= -1 and y.max() <= 1 for y in ys)
    again = make_process("cold_snow", T=20, random_snow=False)
    assert torch.equal(again.degrade(x0, 20, again.fixed_pattern(x0.shape, "cpu")), ys[20])   # fixed seed
    other = make_process("cold_snow", T=20, random_snow=False, snow_seed=1)
    assert not torch.equal(other.degrade(x0, 20, other.fixed_pattern(x0.shape, "cpu")), ys[20])
    k = torch.arange(20)
    flakes = (proc.D.pre_blur(z, k) > 0).sum(dim=(1, 2))
    assert (flakes[1:] >= flakes[:-1]).all() and flakes[-1] > flakes[0]     # threshold falls: more snow
    assert not torch.allclose(proc.degrade(ys[9], 10, z), ys[10])           # direct, not cumulative
    assert (ys[20] - x0).abs().mean() > (ys[1] - x0).abs().mean()


def test_snow_training_pattern_is_shared_by_the_batch():
    """Q13: --random_snow draws one pattern per training call for the whole batch; sampling: one per image."""
    proc = make_process("cold_snow", T=5)
    x0 = torch.zeros(3, 3, 16, 16)
    y = proc.q_sample(x0, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y[0], y[1]) and torch.equal(y[1], y[2])
    y2 = proc.q_sample(x0, 5, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(y, y2)
    run = proc.initial_state(x0, 5, torch.Generator().manual_seed(0))
    assert not torch.equal(run[0], run[1])


# ----------------------------------------------------------------------------------------------------------
# U11: noise, U12: colour fill.

def test_noise_schedule_and_ddim_equivalence():
    abar = make_process("cold_noise").D.alpha_bar
    assert (np.diff(abar) < 0).all()
    assert math.isclose(abar[0], 0.99975, rel_tol=1e-5) and math.isclose(abar[99], 0.494, rel_tol=2e-3)
    assert math.isclose(abar[199], 6.1e-8, rel_tol=0.01)
    proc = make_process("cold_noise", T=10)
    ab = proc.D.alpha_bar
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    x0_hat = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    for t in (10, 6, 2, 1):
        out = proc.step(OracleNet(lambda x, tt: x0_hat), x_t, t, t - 1, g)
        z_hat = (x_t - math.sqrt(ab[t - 1]) * x0_hat) / math.sqrt(1 - ab[t - 1])
        ab_prev = ab[t - 2] if t >= 2 else 1.0
        torch.testing.assert_close(out.x_prev, math.sqrt(ab_prev) * x0_hat + math.sqrt(1 - ab_prev) * z_hat)


def test_colour_fill_schedule_values():
    """U12 with the README settings (T = 750, kernel_std 0.05, initial_mask 1, 128²)."""
    oma = deg.colour_fill_schedule(750, 128, 128, 0.05, 1)
    assert math.isclose(float(oma[0].max()), 0.0070, abs_tol=5e-5) and int(oma[0].argmax()) == 127 * 128 + 127
    assert float(oma[:749, 63, 63].abs().max()) == 0.0 and torch.equal(oma[749], torch.ones(128, 128,
                                                                                             dtype=oma.dtype))
    assert math.isclose(float(oma[375, 127, 127]), 0.9998, abs_tol=2e-4)
    assert math.isclose(float(oma[375, 0, 63]), 0.911, abs_tol=1e-3)
    proc = build("inpaint_gen")
    x0 = x_images()
    c = latent(proc, x0, 0)
    assert torch.equal(proc.degrade(x0, proc.config.T, c), c.expand_as(x0).to(x0.dtype))
    assert c.min() >= -0.5 and c.max() < 0.5


# ----------------------------------------------------------------------------------------------------------
# U3, U4: Algorithms 1 and 2.

@pytest.mark.parametrize("algorithm", [1, 2])
@pytest.mark.parametrize("key", sorted(RESTORATION))
def test_oracle_recovers_x0(key, algorithm):
    """U3: R := x0 gives x0 back, and x_s == D(x0, s; z) at every step (Algorithm 2 carries the 8-bit residual
    of a quantised x_T in discrete mode, so it is exact only up to 2/255 there)."""
    proc = build(key, algorithm=algorithm)
    x0 = x_images()
    g = torch.Generator().manual_seed(3)
    z = proc.run_latent(x0.shape, g, "cpu")
    x_T = proc.prior(x0.shape, g, x0=x0)
    tol = 2 / 255 if (proc.config.discrete and algorithm == 2) else 1e-5

    def check(t, tp, x, x0_hat):
        torch.testing.assert_close(x, proc.degrade(x0, tp, z), rtol=0, atol=tol)

    torch.testing.assert_close(reverse(proc, oracle(x0), x_T, g, callback=check), x0, rtol=0, atol=tol)


@pytest.mark.parametrize("name", COLD)
def test_oracle_on_registered_small_configs(name):
    """The registered small configs (incl. generation ones) restore x0 from D(x0, T) with Algorithm 2."""
    proc = make_process(name, **{**PROCESSES[name].small_overrides, "generation": False, "prior_noise": 0.0,
                                 "discrete": False})
    x0 = smooth_images(3, 3, 16)
    g = torch.Generator().manual_seed(0)
    out = reverse(proc, oracle(x0), proc.prior(x0.shape, g, x0=x0), g)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)


class _Shift(deg.CumulativeDegradation):
    """The toy D(x, s) = x + s·e of §2 / U4."""

    def __init__(self, T, e):
        super().__init__(T)
        self.e = e

    def step_op(self, x, i, z=None):
        return x + self.e


def test_toy_linear_degradation_algorithm2_ignores_errors_of_R():
    """U4/C3: for D = x + s·e Algorithm 2 tracks D(x0, s-1) whatever R does; Algorithm 1 returns x0 + δ."""
    x0 = x_images()
    g = torch.Generator().manual_seed(0)
    e = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    delta = 0.3 * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    for algorithm, expected in ((2, x0), (1, x0 + delta)):
        proc = make_process("cold_desaturate", T=6, algorithm=algorithm)
        proc.D = _Shift(6, e)
        seen = []
        out = reverse(proc, oracle(x0, delta), proc.prior(x0.shape, g, x0=x0), g,
                      callback=lambda t, tp, x, _: seen.append(float((x - (x0 + tp * e)).abs().max())))
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
        if algorithm == 2:
            assert max(seen) < 1e-12


def test_blur_algorithm2_telescopes_for_a_fixed_error():
    """U4 (linear blur): with R ≡ x0 + δ, x_{s-1} = x_s + (A_{s-1} - A_s) x̂0, so x_0 = x0 + (I - A_T) δ."""
    proc = build("blur_exp_circular")
    x0 = x_images()
    delta = 0.1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=x0.dtype)
    g = torch.Generator().manual_seed(0)
    x_T = proc.prior(x0.shape, g, x0=x0)
    out = proc.step(oracle(x0, delta), x_T, 5, 4, g).x_prev
    torch.testing.assert_close(out, x_T + proc.degrade(x0 + delta, 4) - proc.degrade(x0 + delta, 5))
    final = reverse(proc, oracle(x0, delta), x_T, g)
    torch.testing.assert_close(final, x0 + delta - proc.degrade(delta, proc.config.T), rtol=0, atol=1e-10)


def _final_error(proc, net, x0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return float((reverse(proc, net, proc.prior(x0.shape, g, x0=x0), g) - x0).pow(2).mean().sqrt())


@pytest.mark.parametrize("key", ["blur_special6", "blur_exp_circular", "blur_exp_reflect"])
def test_algorithm2_beats_algorithm1_with_imperfect_oracles_on_blur(key):
    """C1, the paper's stability argument: with an imperfect R, Algorithm 2 ends closer to x0 than Algorithm 1."""
    x0 = x_images()
    g = torch.Generator().manual_seed(5)
    delta = 0.05 * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    wrong = x_images(seed=7)
    per_step = {s: 0.05 * torch.randn(x0.shape, generator=g, dtype=x0.dtype) for s in range(1, 7)}
    nets = {
        "fixed perturbation": oracle(x0, delta),
        "slightly wrong x0": OracleNet(lambda x, t: 0.9 * x0 + 0.1 * wrong),
        "blurry R (smooths like D(x0, 1))": oracle(build(key).degrade(x0, 1) - x0),
        "fresh error every step": OracleNet(lambda x, t: x0 + per_step[int(t[0]) + 1]),
    }
    for what, net in nets.items():
        e1 = _final_error(build(key, algorithm=1), net, x0)
        e2 = _final_error(build(key, algorithm=2), net, x0)
        assert e2 < e1, (what, e1, e2)


def test_algorithm2_damps_fresh_per_step_errors_on_the_cifar_blur_schedule():
    """With many small blur steps (CIFAR-10's Special_6 routine) only the band-passed differences
    (A_{s-1} - A_s) δ_s of fresh per-step errors reach x_0 under Algorithm 2; Algorithm 1 returns all of δ_1."""
    x0 = x_images()
    g = torch.Generator().manual_seed(6)
    per_step = {s: 0.05 * torch.randn(x0.shape, generator=g, dtype=x0.dtype) for s in range(1, 21)}
    net = OracleNet(lambda x, t: x0 + per_step[int(t[0]) + 1])
    e1 = _final_error(make_process("cold_blur", T=20, algorithm=1), net, x0)
    e2 = _final_error(make_process("cold_blur", T=20, algorithm=2), net, x0)
    assert e2 < 0.5 * e1, (e1, e2)


def test_prior_noise_stays_in_the_iterate_unless_subtracted():
    """Q12 / §2: Algorithm 2 keeps noise added to x_T (gen_sample); the all_sample variant removes it."""
    x0 = x_images()
    for subtract, expect_exact in ((False, False), (True, True)):
        proc = build("desaturate", prior_noise=0.002, subtract_prior_noise=subtract)
        g = torch.Generator().manual_seed(0)
        out = reverse(proc, oracle(x0), proc.prior(x0.shape, g, x0=x0), g)
        err = float((out - x0).abs().max())
        assert (err < 1e-6) if expect_exact else (1e-4 < err < 0.02)


def test_sampling_timesteps_direct_and_step_checks():
    proc = build("blur_special6")
    assert proc.sampling_timesteps() == [(6, 5), (5, 4), (4, 3), (3, 2), (2, 1), (1, 0)]
    assert proc.sampling_timesteps(start=2) == [(2, 1), (1, 0)]
    with pytest.raises(ValueError):
        proc.sampling_timesteps(start=7)
    x0 = x_images()
    net = TinyNet(3, 3).double()
    x_T = proc.prior(x0.shape, None, x0=x0)
    torch.testing.assert_close(proc.restore_direct(net, x_T), net(x_T, torch.full((4,), 5.0, dtype=x0.dtype)))
    with pytest.raises(ValueError):
        proc.step(net, x_T, 6, 6, None)
    with pytest.raises(ValueError):
        proc.prior(x0.shape, None)                 # restoration needs the images
    skip = proc.step(oracle(x0), x_T, 6, 2, None)  # Algorithm 2 also jumps: x_T - D(x̂0, 6) + D(x̂0, 2)
    torch.testing.assert_close(skip.x_prev, proc.degrade(x0, 2))


@pytest.mark.parametrize("key", ["blur_special6", "sr_bicubic", "desaturate", "inpaint_random", "snow_random",
                                 "noise_fixed"])
def test_restoration_is_seed_addressed(key):
    """Image i depends only on (seed, i): batch size does not matter, the run latent is per image."""
    proc = build(key)
    x0 = smooth_images(4, 3, 16)
    net = TinyNet(3, 3).eval()
    a = generate(proc, net, 4, (3, 16, 16), seed=3, batch_size=4, prior_data=x0, progress=False)
    b = generate(proc, net, 4, (3, 16, 16), seed=3, batch_size=3, prior_data=x0, progress=False)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# U13: GMM priors.

def test_gmm_one_component_is_the_ml_gaussian_and_deterministic():
    x = smooth_images(64, 3, 8, seed=2)
    feats = x.double().mean(dim=(2, 3))
    gmm = GaussianMixturePrior(1, seed=0).fit(feats)
    torch.testing.assert_close(torch.as_tensor(gmm.means[0]), feats.mean(0), rtol=0, atol=1e-10)
    cov = torch.cov(feats.T, correction=0)
    torch.testing.assert_close(torch.as_tensor(gmm.covariances[0]), cov, rtol=0, atol=2e-6)
    g3 = GaussianMixturePrior(3, seed=4).fit(feats)
    g3b = GaussianMixturePrior(3, seed=4).fit(feats)
    assert np.array_equal(g3.means, g3b.means)
    lo, hi = feats.min(0).values.numpy(), feats.max(0).values.numpy()
    assert (g3.means >= lo - 1e-9).all() and (g3.means <= hi + 1e-9).all()
    s1 = g3.sample(16, torch.Generator().manual_seed(0), "cpu")
    s2 = g3.sample(16, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(s1, s2) and s1.shape == (16, 3)
    with pytest.raises(RuntimeError, match="fit_prior"):
        GaussianMixturePrior(1).sample(2, None, "cpu")
    with pytest.raises(ValueError, match="at least"):
        GaussianMixturePrior(5).fit(feats[:3])


def test_blur_generation_prior_constant_per_channel():
    data = smooth_images(32, 3, 16, seed=1)
    proc = make_process("cold_blur", **{**PROCESSES["cold_blur"].small_overrides, "prior_noise": 0.0})
    proc.fit_prior(data)
    x = proc.prior((5, 3, 16, 16), torch.Generator().manual_seed(0))
    assert torch.equal(x, x[:, :, :1, :1].expand_as(x))
    assert (x.amin(dim=(0, 2, 3)) > -1).all() and (x.amax(dim=(0, 2, 3)) < 1).all()
    noisy = make_process("cold_blur", **PROCESSES["cold_blur"].small_overrides)
    noisy.fit_prior(data)
    y = noisy.prior((5, 3, 16, 16), torch.Generator().manual_seed(0))
    torch.testing.assert_close((y - x).std(), torch.tensor(0.002), rtol=0.1, atol=0)   # broken symmetry


def test_sr_generation_prior_is_block_constant():
    data = smooth_images(16, 3, 16, seed=1)
    proc = make_process("cold_sr", T=3, generation=True, gmm_components=2)
    with pytest.raises(RuntimeError, match="fit_prior"):
        proc.gmm.sample(1, None, "cpu")
    proc.fit_prior(data)
    x = proc.prior((4, 3, 16, 16), torch.Generator().manual_seed(0))
    assert torch.equal(x, x[:, :, ::8, ::8].repeat_interleave(8, 2).repeat_interleave(8, 3))
    assert ColdSRConfig.preset("celeba_generation").T == 6


def test_fitted_prior_is_a_value_that_round_trips_through_plain_data():
    data = smooth_images(16, 3, 16, seed=1)
    proc = make_process("cold_sr", T=3, generation=True, gmm_components=2)
    unfitted = proc.gmm
    fitted = proc.fit_prior(data)
    assert fitted is proc.gmm and fitted is not unfitted and not unfitted.fitted   # a new value, nothing mutated
    state = proc.prior_state()
    assert state["feature_shape"] == [3, 2, 2] and proc.low_shape == (3, 2, 2)
    other = make_process("cold_sr", T=3, generation=True, gmm_components=2).with_prior(state)
    assert other.prior_state() == state
    shape = (4, 3, 16, 16)
    assert torch.equal(other.prior(shape, torch.Generator().manual_seed(5)), proc.prior(shape, torch.Generator().manual_seed(5)))
    assert make_process("cold_blur", T=3).prior_state() is None                    # restoration: nothing fitted


def test_noise_generation_fixed_noise_prior_is_the_latent():
    proc = make_process("cold_noise", T=5, noise_mode="fixed")
    g = torch.Generator().manual_seed(0)
    x_T = proc.prior((2, 3, 8, 8), g)
    assert torch.equal(x_T, proc.run_latent((2, 3, 8, 8), g, "cpu"))
    assert ColdNoiseConfig().noise_mode == "estimated"


def test_run_generator_is_seed_derived():
    a = run_generator(torch.Generator().manual_seed(4), 1)
    b = run_generator(torch.Generator().manual_seed(4), 1)
    assert torch.equal(torch.randn(3, generator=a), torch.randn(3, generator=b))


# ----------------------------------------------------------------------------------------------------------
# Configs.

def test_configs_validate_and_round_trip():
    with pytest.raises(ValueError, match="algorithm"):
        make_process("cold_blur", algorithm=3)
    with pytest.raises(ValueError, match="blur_routine"):
        make_process("cold_blur", blur_routine="gaussian")
    with pytest.raises(ValueError, match="generation"):
        make_process("cold_snow", generation=True)
    for name in COLD:
        cls = PROCESSES[name]
        for preset in cls.config_cls.PRESETS:
            proc = cls(cls.config_cls.preset(preset))
            assert process_from_dict(proc.config_dict()).config == proc.config
    assert issubclass(PROCESSES["cold_blur"], ColdProcess)


# ----------------------------------------------------------------------------------------------------------
# U15 (short): a small network learns on one batch.

def _small_net():
    try:
        from lib.unet import UNet, UNetConfig
    except ImportError:      # lib/unet.py is optional here
        return TinyNet(3, 3, width=32)
    return UNet(UNetConfig.tiny(in_channels=3))


@pytest.mark.parametrize("key", ["blur_exp_circular", "inpaint_centred"])
def test_loss_falls_on_one_batch(key):
    torch.manual_seed(0)
    proc = build(key)
    net = _small_net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x0 = smooth_images(8, 3, 16)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        loss = proc.loss(net, x0, generator=g).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize("key", sorted(RESTORATION))
def test_pair_equals_two_separate_degradations(key):
    """Algorithm 2's (D(x, s-1), D(x, s)) in one pass is exactly the two separate calls (and any s_prev <= s)."""
    proc = build(key)
    x = x_images()
    z = proc.D.draw_latent(x.shape, torch.Generator().manual_seed(3), x.device)
    T = proc.config.T
    for s_prev, s in [(0, 1), (T // 2 - 1, T // 2), (T - 1, T), (0, T)]:
        if not 0 <= s_prev <= s:
            continue
        a, b = proc.D.pair(x, s_prev, s, z)
        assert torch.equal(a, proc.D(x, s_prev, z)) and torch.equal(b, proc.D(x, s, z)), (key, s_prev, s)
    if proc.D.cumulative:
        with pytest.raises(ValueError, match="s_prev <= s"):
            proc.D.pair(x, 2, 1, z)
