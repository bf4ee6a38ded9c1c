"""Adding a process is one file: a toy process defined here (its config, its maths and what studies need to know:
its step count, training defaults, SDEdit signal level, DDIM support) runs through the study functions with no
study code naming it (issue 15)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from lib.studies import frequency, sdedit, study

from lib import rng as rng_lib
from lib.processes import PROCESSES, make_process, process_from_dict, register
from lib.processes.base import DiffusionProcess, StepOutput, as_time_tensor, mean_per_sample
from lib.profiles import get_profile


@dataclass(frozen=True)
class ToyConfig:
    K: int = 40                        # Interpolation levels a_t = (t+1)/K, t = 0..K-1 (clean index -1).


class ToyInterpolation(DiffusionProcess):
    """x_t = (1 - a_t) x0 + a_t ε; the network predicts x0; a deterministic (DDIM-like) reverse step."""

    name = "toy_interp"
    config_cls = ToyConfig
    small_overrides = {"K": 4}
    steps_field = "K"
    training_defaults = dict(optimizer="adam", lr=3e-4)

    @property
    def num_steps(self) -> int:
        return self.config.K

    def a(self, t) -> torch.Tensor:
        return (torch.as_tensor(t, dtype=torch.float32) + 1) / self.config.K

    def signal_level(self, t: int) -> float:
        return float(1 - self.a(t))

    def q_sample(self, x0, t, noise=None, generator=None):
        t = as_time_tensor(t, x0.shape[0], x0.device)
        noise = rng_lib.randn_like(x0, generator) if noise is None else noise
        a = self.a(t).to(x0.device).reshape(-1, 1, 1, 1)
        return (1 - a) * x0 + a * noise

    def loss(self, net, x0, t=None, noise=None, generator=None):
        t = self.training_time(x0, t, generator)
        return mean_per_sample((net(self.q_sample(x0, t, noise, generator), self.net_time(t)) - x0) ** 2)

    def prior(self, shape, generator, x0=None, device=None):
        return rng_lib.randn(tuple(shape), generator, device=device)

    def sampling_timesteps(self, start=None):
        top = self.num_steps - 1 if start is None else start
        return [(t, t - 1) for t in range(top, -1, -1)]

    def predict_x0(self, net, x_t, t):
        return net(x_t, self.net_time(as_time_tensor(t, x_t.shape[0], x_t.device)))

    def step(self, net, x_t, t, t_prev, generator):
        x0 = self.predict_x0(net, x_t, t)
        a_t, a_s = float(self.a(t)), (float(self.a(t_prev)) if t_prev >= 0 else 0.0)
        eps = (x_t - (1 - a_t) * x0) / a_t
        return StepOutput((1 - a_s) * x0 + a_s * eps, x0)


@pytest.fixture
def toy():
    register(ToyInterpolation)
    try:
        yield "toy_interp"
    finally:
        PROCESSES.pop("toy_interp", None)


def test_toy_process_runs_through_the_study_functions(toy, tmp_path):
    smoke, quick = get_profile("smoke"), get_profile("quick")
    proc = study.process_for_profile(toy, smoke)
    assert proc.config.K == 4                                   # its small_overrides
    assert study.process_for_profile(toy, quick).config.K == 40   # it does not follow the profile's T
    # the reduced budget of the frequency study: its own step field, never above its official count
    assert frequency.budget_overrides(toy, quick, 16) == {"K": 40}
    assert frequency.budget_overrides(toy, get_profile("quick", T=8), 16) == {"K": 8}
    # its training defaults reach the training config (the profile replaces the lr only)
    cfg = study.train_config(toy, get_profile("paper"), 0)
    assert (cfg.optimizer, cfg.lr) == ("adam", 3e-4)
    # SDEdit: hijack index within range, the guide's share from the process itself
    t0 = sdedit.hijack_index(proc, 0.5)
    assert 1 <= t0 <= proc.num_steps - 1
    assert sdedit.signal_fraction(proc, t0) == pytest.approx(1 - (t0 + 1) / 4)
    # train, sample, round-trip the config through a checkpoint dict
    images = torch.rand(16, 1, 8, 8) * 2 - 1
    res = study.train_model(proc, images, smoke, 0, run_dir=tmp_path / "toy", progress=False, snapshots=0)
    x = study.sample_model(proc, res.ema, 4, (1, 8, 8), 0, smoke, progress=False)
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all() and x.abs().max() <= 1
    assert process_from_dict(proc.config_dict()).config == proc.config
    out = sdedit.sdedit(proc, res.ema, images[:3], 0.5, seed=0)
    assert out.shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="no DDIM"):           # supports_ddim is False: refused, not probed
        sdedit.sdedit(proc, res.ema, images[:3], 0.5, seed=0, ddim_steps=2)


def test_every_registered_process_answers_the_study_interface():
    for name, cls in PROCESSES.items():
        proc = make_process(name, **cls.small_overrides)
        if cls.steps_field is None:
            assert cls.default_steps() is None and cls.budget_overrides(10, 16) == {}
            continue
        over = cls.budget_overrides(10, 16)
        assert over[cls.steps_field] == 10, (name, over)   # 10 is below every cap (BNDM: S <= T)
        make_process(name, **over)                              # a valid configuration
        if name in ("ddpm", "edge_preserving", "bndm"):        # the SDEdit processes
            t0 = sdedit.hijack_index(proc, 0.5)
            level = sdedit.signal_fraction(proc, t0)
            assert 0 < level < 1, (name, level)
            assert sdedit.signal_fraction(proc, min(proc.sdedit_top, 1)) > level   # less time, more guide
    assert PROCESSES["ddpm"].supports_ddim and not PROCESSES["edge_preserving"].supports_ddim


def test_process_from_dict_refuses_unknown_fields():
    d = make_process("ddpm", T=20).config_dict()
    assert process_from_dict(d).config.T == 20
    with pytest.raises(ValueError, match="unknown config field"):
        process_from_dict({**d, "not_a_field": 1})


def test_ddpm_budget_keeps_the_chain_ending_near_noise():
    for T in (50, 200, 500):
        p = make_process("ddpm", **PROCESSES["ddpm"].budget_overrides(T, 16))
        assert p.num_steps == T
        assert np.sqrt(p.alpha_bar[-1]) < 0.1, T
