"""Fast checks of lib/studies/cold_experiments.py (the Cold Diffusion study notebooks' logic)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.studies import cold_experiments as ce
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


def _metrics(scale_degraded=0.0, noise=0.0, seed=0):
    """restoration_metrics of synthetic arms: alg2 = x0 (+ noise), degraded = scale·x0, direct/alg1 in between."""
    x0 = digits(6)
    e = noise * torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    outs = {"degraded": x0 * scale_degraded, "direct": x0 * 0.9, "alg1": x0 * 0.8, "alg1_clamped": x0 * 0.85,
            "alg2": x0 + e, "alg2_last_x0": x0}
    return ce.restoration_metrics(outs, x0, "no-extractor-dataset", n_sub=3)


def test_restoration_one_model_rows_are_eval_subsets_and_flat_x_T_is_not_testable():
    m = _metrics(scale_degraded=0.0)          # x_T carries no structure (SSIM ~ 0)
    assert m["alg2"]["RMSE"] == 0 and m["alg2"]["SSIM"] == pytest.approx(1.0)
    assert len(m["alg2"]["per_subset"]["RMSE"]) == 3 and m["alg2"]["fd_column"] == "SWD_mean"
    claims = {c["id"]: c for c in ce.restoration_claims({"blur": m}, ce.claim_context("mnist", 32, QUICK), "f.png")}
    assert {"C1", "C1-clamped", "C4-blur-RMSE", "C5-blur", "C6-blur"} <= set(claims)
    assert claims["C4-blur-RMSE"]["replicates"] == "eval subsets"
    assert claims["C4-blur-RMSE"]["verdict"] == "inconclusive"              # capped: one model
    for cid in ("C1", "C1-clamped", "C5-blur", "C6-blur"):                 # arms coincide on a flat x_T
        assert claims[cid]["verdict"] == "not testable at this scale" and "SSIM(x_T" in claims[cid]["detail"]
    assert claims["C1-clamped"]["setting"] == "sensitivity"


def test_restoration_claims_over_training_seeds_are_paired_and_table_carries_the_paper():
    per_seed = {s: _metrics(scale_degraded=0.5, noise=0.01 * (s + 1), seed=s) for s in (0, 1, 2)}
    claims = {c["id"]: c for c in ce.restoration_claims({"blur": per_seed}, ce.claim_context("mnist", 32, QUICK),
                                                        "f.png")}
    c4 = claims["C4-blur-RMSE"]
    assert c4["replicates"] == "training seeds" and c4["test"] == "paired t" and c4["verdict"] == "reproduced"
    assert claims["C1"]["verdict"] != "not testable at this scale"        # x_T keeps structure here
    assert c4["quality"]["alg2"]["passed"]
    table = ce.restoration_table({"blur": per_seed}, "mnist")
    row = table.iloc[0]
    assert row["paper Sampled FID"] == 4.69 and row["paper Direct FID"] == 5.10
    assert row["training seeds"] == 3 and "Algorithm 1 (x̂0 clamped) RMSE" in table and "Degraded SSIM" in table
    assert row["Sampled RMSE"] == pytest.approx(np.mean([per_seed[s]["alg2"]["RMSE"] for s in per_seed]))


def test_unconverged_restoration_net_makes_every_row_not_testable():
    per_seed = {s: _metrics(scale_degraded=0.5, noise=0.01 * (s + 1), seed=s) for s in (0, 1, 2)}
    rising = [[[100 * k, 1.0 - 0.2 * k, 0.5] for k in range(1, 5)] for _ in range(3)]   # RMSE still falling fast
    flat = [[[100 * k, 0.3 + 0.001 * (k == 4) * j, 0.5] for k in range(1, 5)] for j in range(3)]
    ctx = ce.claim_context("mnist", 32, QUICK)
    bad = ce.restoration_claims({"blur": per_seed}, ctx, "f.png", curves={"blur": rising})
    assert all(c["verdict"] == "not testable at this scale" for c in bad if c.get("kind") == "direction")
    good = ce.restoration_claims({"blur": per_seed}, ctx, "f.png", curves={"blur": flat})
    assert next(c for c in good if c["id"] == "C4-blur-RMSE")["verdict"] == "reproduced"


class _Scale(torch.nn.Module):
    def forward(self, x, t):
        return 3.0 * x                             # a restoration net that overshoots the data range


def test_restore_has_the_clamped_algorithm_1_arm():
    p = ce.restoration_process("blur", "mnist", SMOKE)
    out = ce.restore(p, _Scale(), digits(4), seed=0)
    assert set(out) == set(ce.RESTORATION_ARMS)
    x0 = digits(4)
    err = {a: float(((out[a] - x0) ** 2).mean()) for a in ("alg1", "alg1_clamped")}
    assert err["alg1_clamped"] < err["alg1"]                              # clamping x̂0 keeps Alg. 1 nearer x0
    assert torch.equal(out["degraded"], p.prior((4, 1, 32, 32), __import__("lib.rng").rng.stacked(0, range(4)),
                                                x0=digits(4)))


def test_mnist_blur_preset_keeps_structure_and_the_readme_preset_does_not():
    from lib import data, metrics
    x = data.load_dataset("mnist", split="heldout").float()
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:64]]
    ours = ce.restoration_process("blur", "mnist", QUICK)
    readme = ce.restoration_process("blur", "mnist", QUICK, {"blur_std": 7.0})
    ssim = lambda p: float(metrics.ssim(p.degrade(x, p.num_steps), x).mean())
    assert ours.config.blur_std == 1.0 and ssim(ours) > 2 * ce.MIN_XT_SSIM
    assert ssim(readme) < ce.MIN_XT_SSIM


def _fd(recall, classes, fd=(5.0, 5.1, 5.2)):
    rows = {s: {"recall": recall, "precision": 0.8, "distinct_classes": classes, "SWD_mean": 1.0, "n_fake": 8}
            for s in range(3)}
    return {"column": "FD_mnistclf", "values": list(fd), "rows": rows}


def test_diversity_gate_and_c15_is_a_proxy_or_not_testable():
    assert ce.diversity_gate(_fd(0.6, 10))["passed"]
    assert not ce.diversity_gate(_fd(0.0, 10))["passed"]                  # collapsed: recall 0
    assert not ce.diversity_gate(_fd(0.6, 1))["passed"]                   # only "1"s
    ctx = ce.claim_context("mnist", 32, QUICK)
    ok = {"inpaint_gen samples": _fd(0.6, 10), "inpaint_gen prior x_T": _fd(0.6, 10, (50, 51, 52)),
          "sr samples": _fd(0.0, 1), "sr prior x_T": _fd(0.6, 10, (50, 51, 52))}
    c = {e["id"]: e for e in ce.other_generation_claims(ok, ctx)}
    assert c["C15-inpaint_gen"]["verdict"] == "proxy"
    assert c["C15-sr"]["verdict"] == "not testable at this scale"
    table = ce.generation_table({"broken symmetry": _fd(0.6, 10), "perfect symmetry": _fd(0.0, 1)})
    assert list(table["diversity gate"]) == [True, False] and table["paper CelebA FID"].iloc[0] == 49.45


def test_c13_is_sampling_seeds_and_gated_on_the_broken_arm():
    import pandas as pd
    fd = {"broken symmetry": _fd(0.0, 1, (5, 5.1, 5.2)), "perfect symmetry": _fd(0.0, 1, (9, 9.1, 9.2))}
    table = pd.DataFrame({"arm": list(fd), "pixel diversity": [0.1, 0.0]})
    nn = {"ratio": 1.0, "sample_nn": 1.0, "heldout_nn": 1.0}
    c13 = ce.blur_generation_claims(fd, table, nn, ce.claim_context("mnist", 32, QUICK))[0]
    assert c13["replicates"] == "sampling seeds" and c13["verdict"] == "not testable at this scale"
    fd["broken symmetry"] = _fd(0.6, 10, (5, 5.1, 5.2))
    c13 = ce.blur_generation_claims(fd, table, nn, ce.claim_context("mnist", 32, QUICK))[0]
    assert c13["verdict"] == "inconclusive"                               # capped: sampling seeds of one model


def test_prior_draws_constant_for_blur_generation_without_noise():
    p = ce.variant(ce.fit_generation_prior(ce.generation_process("blur", "mnist", SMOKE), digits()), prior_noise=0.0)
    x = ce.prior_draws(p, 4, (1, 32, 32), 0)
    assert torch.allclose(x, x.mean(dim=(2, 3), keepdim=True).expand_as(x))


def test_nearest_neighbour_ratio_detects_copies():
    train, held = digits(8, 0), digits(4, 1)
    assert ce.nearest_neighbour_ratio(train[:4], train, held)["ratio"] == 0.0


# ----------------------------------------------------------------------------------------------------------
# Issue 15: the fitted prior is a value saved with the checkpoint.

@pytest.mark.parametrize("kind", ["blur", "sr"])
def test_fitted_prior_is_saved_with_the_checkpoint_and_a_reloaded_model_samples_the_same(kind, tmp_path):
    from lib.studies import study
    from lib.train import build_from_checkpoint
    x = digits(16)
    proc = ce.fit_generation_prior(ce.generation_process(kind, "mnist", SMOKE), x)
    res = study.train_model(proc, x, SMOKE, 0, run_dir=tmp_path, progress=False, snapshots=0, steps=2)
    bare, _ = build_from_checkpoint(res.checkpoint)
    with pytest.raises(RuntimeError, match="not fitted"):       # the config alone cannot sample
        bare.prior((2, 1, 32, 32), torch.Generator().manual_seed(0))
    proc2, net2 = study.load_model(res.checkpoint)
    assert proc2.prior_state() == proc.prior_state()
    if kind == "sr":
        assert proc2.low_shape == proc.low_shape == (1, 2, 2)
    a = study.sample_model(proc, res.ema, 4, (1, 32, 32), 3, SMOKE, progress=False)
    b = study.sample_model(proc2, net2, 4, (1, 32, 32), 3, SMOKE, progress=False)
    assert torch.equal(a, b)


def test_variant_keeps_the_fitted_prior_value():
    p = ce.fit_generation_prior(ce.generation_process("sr", "mnist", SMOKE), digits(16))
    v = ce.variant(p, algorithm=1)
    assert v.gmm is p.gmm and v.low_shape == p.low_shape


def test_digit_classifier_counts_classes_of_real_and_collapsed_digits():
    from lib import data
    x = data.load_dataset("mnist", split="heldout").float()
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:200]]
    assert ce.distinct_classes(ce.class_histogram(x, "mnist")) >= ce.MIN_CLASSES
    assert ce.distinct_classes(ce.class_histogram(x[:1].repeat(50, 1, 1, 1), "mnist")) == 1
    assert ce.distinct_classes([97, 2, 1]) == 2 and ce.distinct_classes(None) is None


def test_stability_claims_replicates_oracle_draws_and_training_seeds():
    p = ce.restoration_process("blur", "mnist", QUICK)
    x = digits(4)
    oracles = ce.oracle_settings(p, x, 0.1, 3.0, [0, 1, 2])
    trained = {"alg1": [0.30, 0.32, 0.31], "alg2": [0.10, 0.12, 0.105]}
    c = {e["id"]: e for e in ce.stability_claims(oracles, trained, ce.claim_context("mnist", 32, QUICK), 0.1, 3.0,
                                                 trained_seeds=[0, 1, 2])}
    assert c["C1-stability-trained"]["replicates"] == "training seeds"
    assert c["C1-stability-trained"]["verdict"] == "reproduced"
    assert c["C1-stability-oracle-smooth"]["verdict"] == "reproduced" and "no_gate" in c["C1-stability-oracle-smooth"]
    one = {e["id"]: e for e in ce.stability_claims(oracles, trained, ce.claim_context("mnist", 32, QUICK), 0.1, 3.0)}
    assert one["C1-stability-trained"]["replicates"] == "eval subsets"
    assert one["C1-stability-trained"]["verdict"] == "inconclusive"
    # The trained row is gated by the restoration nets' learning curves (cold_restoration's convergence rule).
    ctx = ce.claim_context("mnist", 32, QUICK)
    falling = [[[150, 0.30, 0.5], [300, 0.20, 0.6], [450, 0.15, 0.7], [600, 0.10, 0.8]] for _ in range(3)]
    flat = [[[150, 0.30, 0.5], [300, 0.20, 0.6], [450, 0.12, 0.7], [600, 0.12 + d, 0.8]] for d in (-.01, 0, .01)]
    gated = {e["id"]: e for e in ce.stability_claims(oracles, trained, ctx, 0.1, 3.0, trained_seeds=[0, 1, 2],
                                                     learning_curves=falling)}
    assert gated["C1-stability-trained"]["verdict"] == "not testable at this scale"
    assert gated["C1-stability-trained"]["would_be"] == "reproduced"
    assert "not converged" in gated["C1-stability-trained"]["detail"]
    assert gated["C1-stability-oracle-smooth"]["verdict"] == "reproduced"  # the oracle rows train nothing
    ok = {e["id"]: e for e in ce.stability_claims(oracles, trained, ctx, 0.1, 3.0, trained_seeds=[0, 1, 2],
                                                  learning_curves=flat)}
    assert ok["C1-stability-trained"]["verdict"] == "reproduced" and ok["C1-stability-trained"]["quality"]["alg2"]["passed"]


def test_setup_is_keyword_only_frozen_and_shuffles_the_held_out_split(tmp_path, monkeypatch):
    import dataclasses
    from lib import data, experiment
    monkeypatch.setattr(experiment, "RESULTS_DIR", tmp_path)
    with pytest.raises(TypeError):
        ce.setup("test_cold_setup", "smoke")                   # everything after the notebook name is keyword-only
    c = ce.setup("test_cold_setup", profile="smoke", max_images=100, seeds=[0, 1], device="cpu", tag="t",
                 profile_overrides={"train_steps": 3, "unet_mult": [1, 2]})
    assert c.run.dir == tmp_path / "test_cold_setup" / "smoke_t" and c.seeds == [0, 1]
    assert c.prof.train_steps == 3 and c.prof.unet_mult == (1, 2)
    held = data.load_dataset("mnist", split="heldout", max_images=100).float()
    assert len(held) == 10   # the stored (class-sorted) order, shuffled with seed 0
    assert torch.equal(c.x_held, held[torch.randperm(10, generator=torch.Generator().manual_seed(0))])
    assert len(c.x_train) == len(c.train_ds) and (c.C, c.R) == (1, 32) and c.ctx["resolution"] == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.prof = SMOKE
    g = ce.setup("test_cold_setup", profile="smoke", train_data=False)
    assert g.train_ds is None and g.x_train is None and len(g.held_ds) == len(g.x_held)
