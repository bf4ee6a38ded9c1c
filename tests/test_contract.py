"""Contract tests run over every registered process (diffusers' SchedulerCommonTest pattern).

A process added to ``lib.processes.PROCESSES`` inherits all of these automatically.
"""
from __future__ import annotations

import pytest
import torch

from lib import rng as rng_lib
from lib.processes import PROCESSES, make_process, process_from_dict
from lib.sampling import generate, sample
from tests.conftest import TinyNet, smooth_images

NAMES = sorted(PROCESSES)


def small(name):
    return make_process(name, **PROCESSES[name].small_overrides)


def net_for(proc, c=3, seed=0):
    return TinyNet(c, proc.out_channels(c), seed=seed)


@pytest.fixture(params=NAMES)
def proc(request):
    return small(request.param)


def test_registry_lists_valid_names_on_error():
    with pytest.raises(ValueError) as e:
        make_process("no_such_process")
    for name in NAMES:
        assert name in str(e.value)


def test_unknown_config_field_is_refused(proc):
    with pytest.raises(ValueError, match="unknown config field"):
        make_process(proc.name, not_a_field=1)


def test_config_dict_round_trip(proc):
    d = proc.config_dict()
    assert d["process"] == proc.name
    again = process_from_dict(d)
    assert again.config == proc.config


def test_q_sample_shape_dtype_and_determinism(proc):
    x0 = smooth_images(4, 3, 16)
    t = torch.tensor([0, 1, proc.num_steps // 2, proc.num_steps - 1])
    a = proc.q_sample(x0, t, generator=torch.Generator().manual_seed(3))
    b = proc.q_sample(x0, t, generator=torch.Generator().manual_seed(3))
    assert a.shape == x0.shape and a.dtype == x0.dtype
    assert torch.equal(a, b)


def test_q_sample_degrades_with_t(proc):
    x0 = smooth_images(8, 3, 16)
    state = proc.from_image(x0)
    g = torch.Generator().manual_seed(0)
    early = (proc.q_sample(x0, 0, generator=g) - state).pow(2).mean()
    late = (proc.q_sample(x0, proc.num_steps - 1, generator=g) - state).pow(2).mean()
    assert early < late
    assert early < 0.1 * state.pow(2).mean() + 1e-3


def test_loss_is_per_sample_finite_and_differentiable(proc):
    x0 = smooth_images(4, 3, 16)
    net = net_for(proc)
    loss = proc.loss(net, x0, generator=torch.Generator().manual_seed(0))
    assert loss.shape == (4,)
    assert torch.isfinite(loss).all() and (loss >= 0).all()
    loss.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_loss_same_generator_same_value(proc):
    x0 = smooth_images(4, 3, 16)
    net = net_for(proc)
    a = proc.loss(net, x0, generator=torch.Generator().manual_seed(5))
    b = proc.loss(net, x0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_sampling_timesteps_walk_down(proc):
    steps = proc.sampling_timesteps()
    assert len(steps) >= 1
    ts = [t for t, _ in steps]
    assert ts == sorted(ts, reverse=True)
    assert all(tp < t for t, tp in steps)


def test_step_and_sample_shapes_and_range(proc):
    x0 = smooth_images(3, 3, 16)
    proc.fit_prior(x0)
    net = net_for(proc).eval()
    g = torch.Generator().manual_seed(0)
    x = proc.prior((3, 3, 16, 16), g, x0=x0)
    assert x.shape == (3, 3, 16, 16)
    t, tp = proc.sampling_timesteps()[0]
    with torch.no_grad():
        out = proc.step(net, x, t, tp, g)
    assert out.x_prev.shape == x.shape and out.x0_hat.shape == x.shape
    img = sample(proc, net, (3, 3, 16, 16), torch.Generator().manual_seed(1), prior_data=x0, progress=False)
    assert img.shape == (3, 3, 16, 16)
    assert torch.isfinite(img).all() and img.min() >= -1 and img.max() <= 1


def test_same_seed_same_samples(proc):
    x0 = smooth_images(2, 3, 16)
    proc.fit_prior(x0)
    net = net_for(proc).eval()
    a = sample(proc, net, (2, 3, 16, 16), torch.Generator().manual_seed(7), prior_data=x0, progress=False)
    b = sample(proc, net, (2, 3, 16, 16), torch.Generator().manual_seed(7), prior_data=x0, progress=False)
    assert torch.equal(a, b)


def test_sample_i_independent_of_batch_size(proc):
    if not proc.batch_independent:
        pytest.skip(f"{proc.name} couples the images of a batch under this config (documented quirk)")
    x0 = smooth_images(4, 3, 16)
    proc.fit_prior(x0)
    net = net_for(proc).eval()
    a = generate(proc, net, 4, (3, 16, 16), seed=11, batch_size=4, prior_data=x0, progress=False)
    b = generate(proc, net, 4, (3, 16, 16), seed=11, batch_size=3, prior_data=x0, progress=False)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    c = generate(proc, net, 4, (3, 16, 16), seed=12, batch_size=4, prior_data=x0, progress=False)
    assert not torch.equal(a, c)


def test_grayscale_data_works(proc):
    x0 = smooth_images(2, 1, 16)
    proc.fit_prior(x0)
    net = TinyNet(1, proc.out_channels(1)).eval()
    loss = proc.loss(net, x0, generator=torch.Generator().manual_seed(0))
    assert loss.shape == (2,)
    img = sample(proc, net, (2, 1, 16, 16), torch.Generator().manual_seed(1), prior_data=x0, progress=False)
    assert img.shape == (2, 1, 16, 16)


def test_stacked_generator_rows_are_independent():
    g1 = rng_lib.stacked(0, [0, 1, 2])
    g2 = rng_lib.stacked(0, [1])
    a = rng_lib.randn((3, 4), g1)
    b = rng_lib.randn((1, 4), g2)
    assert torch.equal(a[1], b[0])
    with pytest.raises(ValueError):
        rng_lib.randn((2, 4), rng_lib.stacked(0, [0, 1, 2]))
