"""lib/studies/frequency.py: band datasets, budget helpers, checkpointed runs that resume exactly, heatmap tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lib.studies import frequency
from lib.profiles import get_profile


def test_band_sigmas_scale_with_resolution():
    assert frequency.band_sigmas(32) == [0.5, 1.0, 2.0, 3.0, 4.0]
    assert frequency.band_sigmas(128) == [2.0, 4.0, 8.0, 12.0, 16.0]
    s = frequency.band_sigmas(16)
    assert s == sorted(s) and len(s) == 5


def test_band_datasets_lower_high_frequency_power():
    from lib.metrics import high_frequency_power
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (8, 1, 16, 16), generator=g, dtype=torch.uint8)
    bands = frequency.band_datasets(imgs, [0.5, 2.0])
    hf = [high_frequency_power(b.float() / 127.5 - 1) for b in bands.values()]
    assert bands[0.5].dtype == torch.uint8 and hf[0] > hf[1]


def test_matched_betas_end_in_noise():
    from lib.processes import make_process
    for T in (50, 100, 200):
        p = make_process("ddpm", T=T, **frequency.matched_betas(T))
        assert 1e-3 < p.alpha_bar[-1] < 2e-2
    assert make_process("ddpm", T=200).alpha_bar[-1] > 0.1      # why the scaling is needed


def test_budget_profile_and_overrides():
    p = frequency.budget_profile("quick", train_steps=7, T=50, n_eval=9, lite_unet=True)
    assert (p.train_steps, p.T, p.n_eval, p.unet_channels, p.unet_attention) == (7, 50, 9, 16, ())
    assert "this notebook" in p.note
    assert frequency.budget_profile("quick") == get_profile("quick")
    assert frequency.budget_overrides("ddpm", get_profile("smoke"), 16) == {}
    assert frequency.budget_overrides("ddpm", get_profile("paper"), 16) == {}
    assert frequency.budget_overrides("ddpm", p, 16)["beta_max"] == pytest.approx(0.2)
    assert frequency.budget_overrides("ddpm", p, 16, match_prior=False) == {}
    assert frequency.budget_overrides("ihdm", p, 16) == {"K": 50, "sigma_blur_max": 16.0}
    assert frequency.budget_overrides("bndm", p, 16) == {"S": 50}


def test_checkpoint_steps():
    assert frequency.checkpoint_steps(100, 10) == list(range(10, 101, 10))
    assert frequency.checkpoint_steps(3, 10) == [1, 2, 3]
    with pytest.raises(ValueError):
        frequency.checkpoint_steps(10, 0)


def test_checkpointed_run_matches_uninterrupted_training_and_reuses_evals(tmp_path):
    from lib.studies import study
    prof = get_profile("smoke", train_steps=4)
    proc = study.process_for_profile("ddpm", prof)
    imgs = torch.randint(0, 256, (8, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    calls = []

    def ev(net, step):
        calls.append(step)
        return {"w": float(sum(p.double().sum() for p in net.parameters()))}

    rows, run_dir = frequency.checkpointed_run(proc, imgs, prof, 0, ev, n_checkpoints=2, run_dir=tmp_path / "a")
    assert [r["step"] for r in rows] == [2, 4] and calls == [2, 4]
    full = study.train_model(proc, imgs, prof, 0, run_dir=tmp_path / "b", progress=False)
    assert rows[-1]["w"] == pytest.approx(float(sum(p.double().sum() for p in full.ema.parameters())), rel=1e-6)
    rows2, _ = frequency.checkpointed_run(proc, imgs, prof, 0, ev, n_checkpoints=2, run_dir=tmp_path / "a")
    assert calls == [2, 4] and rows2 == rows                      # evaluations read back from the store


def _toy_table():
    rows = []
    for m, off in (("ddpm", 1.0), ("edge_preserving", 0.0)):
        for b, s in enumerate([0.5, 1.0, 2.0, 3.0, 4.0]):
            for step in (10, 20):
                rows.append({"method": m, "sigma": s, "band": b, "seed": 0, "step": step, "FD_x": 5 + off + b - step / 10})
    return pd.DataFrame(rows)


def test_difference_grid_and_claim15():
    df = _toy_table()
    d = frequency.difference_grid(df, "FD_x")
    assert d.shape == (5, 2) and np.allclose(d.values, 1.0)      # positive favours EPD
    e = frequency.claim15(df, "FD_x", [0], dataset="toy")
    assert e["verdict"] == "inconclusive" and e["mean_difference"] == pytest.approx(-1.0)
    assert e["bands_used_sigma"] == [1.0, 2.0, 3.0]


def test_figures_build():
    import matplotlib
    matplotlib.use("Agg")
    df = _toy_table()
    frequency.heatmaps_figure(df, "FD_x")
    frequency.curves_figure(df, "FD_x")
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    frequency.spectra_figure(x, {"a": x * 0.5})
    t = frequency.spectrum_table(x, {"a": x})
    assert t.loc[t["method"] == "a", "log_spectrum_error"].item() == pytest.approx(0.0, abs=1e-9)


def _gated_table():
    """Toy band table with P/R, the floor and three methods; EPD's last-quarter FD still falls in band σ=1."""
    rows = []
    for m, fd0 in (("ddpm", 12.0), ("edge_preserving", 11.0), ("epd_isotropic", 11.5)):
        for b, s in enumerate((0.5, 1.0, 2.0, 3.0, 4.0)):
            for seed in (0, 1, 2):
                for step in (25, 50, 75, 100):
                    fd = fd0 + 0.01 * seed + (40.0 / step if (m == "edge_preserving" and s == 1.0) else 0.0)
                    rows.append({"method": m, "sigma": s, "band": b, "seed": seed, "step": step, "FD_x": fd,
                                 "kid": fd / 100, "precision": 0.7, "recall": 0.2 if m == "ddpm" else 0.5,
                                 "floor_fd": 1.0, "floor_kid": 0.0, "floor_precision": 0.8, "floor_recall": 0.8})
    return pd.DataFrame(rows)


def test_band_quality_and_control_claim():
    df = _gated_table()
    q = frequency.band_quality(df, "FD_x")
    assert q["epd_isotropic σ=2"]["passed"] and q["epd_isotropic σ=2"]["floor"] == 1.0
    assert not q["ddpm σ=2"]["passed"] and "recall" in q["ddpm σ=2"]["reasons"][0]
    assert not q["edge_preserving σ=1"]["passed"] and q["edge_preserving σ=2"]["passed"]   # curve not flat at σ=1
    rec = frequency.band_quality_record(df, "FD_x")["ddpm σ=2"]
    assert [p[0] for p in rec["learning_curve"]] == [25, 50, 75, 100]
    e = frequency.claim15(df, "FD_x", [0, 1, 2], dataset="toy")
    assert e["quality"]["ddpm"]["passed"] is False and e["quality"]["edge_preserving"]["passed"] is False
    assert any(r.startswith("σ=1:") for r in e["quality"]["edge_preserving"]["reasons"])
    c = frequency.claim15_control(df, "FD_x", [0, 1, 2], dataset="toy")
    assert list(c["ours"]) == ["edge_preserving", "epd_isotropic"]
    assert frequency.claim15_control(df[df["method"] != "epd_isotropic"], "FD_x", [0]) is None


def test_with_control_adds_the_isotropic_epd():
    prof = get_profile("smoke")
    procs = {m: frequency.make_budget_process(m, prof, 16) for m in ("ddpm", "edge_preserving")}
    out = frequency.with_control(procs)
    assert list(out) == ["ddpm", "edge_preserving", "epd_isotropic"]
    iso, epd = out["epd_isotropic"].config, procs["edge_preserving"].config
    assert iso.tau == "one" and iso.T == epd.T and iso.beta_max == epd.beta_max
    assert frequency.with_control({"ddpm": procs["ddpm"]}) == {"ddpm": procs["ddpm"]}
