"""Fast checks of lib/cold_experiments.py (the Cold Diffusion study notebooks' logic)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib import cold_experiments as ce
from lib.profiles import get_profile

QUICK, SMOKE = get_profile("quick"), get_profile("smoke")


def digits(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 32, 32)
    x[:, :, 8:24, 12:20] = 1.0
    return (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1) * 2 - 1


def test_readme_presets_and_smoke_cut():
    assert ce.restoration_process("blur", "mnist", QUICK).config.T == 20
    assert ce.restoration_process("inpaint", "mnist", QUICK).config.T == 50
    assert ce.restoration_process("sr", "mnist", QUICK).config.T == 3
    assert ce.restoration_process("snow", "mnist", QUICK, {"T": 50}).config.T == 50
    g = ce.generation_process("blur", "mnist", QUICK)
    assert g.config.generation and g.config.discrete and g.config.blur_routine == "exponential"
    assert ce.generation_process("sr", "mnist", QUICK).config.T == 4            # 32² -> 2²
    for kind in ce.GENERATION_32:
        assert ce.generation_process(kind, "mnist", SMOKE).config.T <= ce.SMOKE_T


def test_variant_changes_sampling_fields_only_and_shares_state():
    p = ce.fit_generation_prior(ce.generation_process("blur", "mnist", SMOKE), digits())
    v = ce.variant(p, prior_noise=0.0, algorithm=1)
    assert v.config.algorithm == 1 and v.config.prior_noise == 0.0 and v.gmm is p.gmm and v.D is p.D
    with pytest.raises(ValueError):
        ce.variant(p, T=7)


def test_skipped_kinds_desaturation_on_grayscale_only():
    assert "desaturate" in ce.skipped_kinds(["blur", "desaturate"], 1)
    assert ce.skipped_kinds(["blur", "desaturate"], 3) == {}


def test_forward_sequence_endpoints():
    p = ce.restoration_process("blur", "mnist", QUICK)
    x = digits(2)
    states, sev = ce.forward_sequence(p, x, n_cols=5)
    assert sev[0] == 0 and sev[-1] == p.num_steps and len(states) == 5
    assert torch.equal(states[0], x)
    assert torch.allclose(states[-1], p.degrade(x, p.num_steps).clamp(-1, 1))


@pytest.mark.parametrize("kind", ["blur", "sr"])
def test_exact_oracle_reconstructs_x0_with_both_algorithms(kind):
    p = ce.restoration_process(kind, "mnist", QUICK)
    x = digits(3)
    tr = ce.trajectory_errors(p, ce.perturbed_oracle(x, 0.0, "exact", 0), x)
    assert max(tr["alg1"].max(), tr["alg2"].max()) < 1e-5          # x_s = D(x0, s) at every step (C2)


def test_drift_toy_algorithm2_ignores_restoration_errors():
    x = digits(3)
    p = ce.drift_process(10, x.shape)
    fin = ce.final_errors(p, x, 0.1, "per_step", [0, 1])
    assert max(fin["alg2"]) < 1e-5                                   # C3
    assert min(fin["alg1"]) == pytest.approx(0.1, rel=0.1)           # Algorithm 1 keeps R's last error


def test_smooth_error_algorithm2_more_stable_on_blur():
    p = ce.restoration_process("blur", "mnist", QUICK)
    fin = ce.final_errors(p, digits(4), 0.1, "per_step", [0, 1], smooth=3.0)
    assert np.mean(fin["alg2"]) < np.mean(fin["alg1"])


def test_restoration_metrics_and_table_without_extractor():
    x0 = digits(6)
    outs = {"degraded": x0 * 0, "direct": x0 * 0.9, "alg1": x0 * 0.8, "alg2": x0, "alg2_last_x0": x0}
    m = ce.restoration_metrics(outs, x0, "no-extractor-dataset", n_sub=3)
    assert m["alg2"]["RMSE"] == 0 and m["alg2"]["SSIM"] == pytest.approx(1.0)
    assert len(m["alg2"]["per_subset"]["RMSE"]) == 3 and m["alg2"]["fd_column"] == "SWD_mean"
    assert len(ce.restoration_table({"blur": m})) == 1
    claims = ce.restoration_claims({"blur": m}, ce.claim_context("mnist", 32, QUICK), "fig.png")
    ids = {c["id"] for c in claims}
    assert {"C1", "C4-blur-RMSE", "C5-blur", "C6-blur"} <= ids
    rmse = next(c for c in claims if c["id"] == "C4-blur-RMSE")
    assert rmse["verdict"] == "reproduced" and "replicates" in rmse


def test_prior_draws_constant_for_blur_generation_without_noise():
    p = ce.variant(ce.fit_generation_prior(ce.generation_process("blur", "mnist", SMOKE), digits()), prior_noise=0.0)
    x = ce.prior_draws(p, 4, (1, 32, 32), 0)
    assert torch.allclose(x, x.mean(dim=(2, 3), keepdim=True).expand_as(x))


def test_nearest_neighbour_ratio_detects_copies():
    train, held = digits(8, 0), digits(4, 1)
    assert ce.nearest_neighbour_ratio(train[:4], train, held)["ratio"] == 0.0
