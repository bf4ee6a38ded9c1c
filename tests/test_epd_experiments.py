"""Fast checks of lib/studies/epd_experiments.py: arms, shared default model, tables, claims and the x̂0 proxies."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from lib.studies import epd_experiments as E
from lib.profiles import get_profile


def _ctx(**state):
    return SimpleNamespace(ctx=dict(dataset="mnist", resolution="32x32", profile="smoke", scale="test",
                                    paper_metric=E.PAPER_METRIC), dataset="mnist", prof=get_profile("smoke"),
                           budget={}, real=torch.rand(6, 1, 16, 16) * 2 - 1, state=E.StudyState(**state))


def _df(values_by_arm, col="FD_mnistclf"):
    return pd.DataFrame([{"arm": a, "seed": i, col: v, "precision": 0.5, "recall": 0.4, "hf_power": v / 100}
                         for a, vs in values_by_arm.items() for i, v in enumerate(vs)])


def test_default_epd_arm_is_shared_across_ablations():
    prof = get_profile("smoke")
    default = E.epd_arm().train_process(prof).config_dict()
    assert E.table1_arms()[E.EPD].train_process(prof).config_dict() == default
    assert E.tau_arms()["tau=linear"].train_process(prof).config_dict() == default
    assert E.tphi_arms()["t_phi=0.5"].train_process(prof).config_dict() == default
    assert E.lambda_arms([1e-3])["lambda(t) linear"].train_process(prof).config_dict() == default


def test_ablation_arms_change_only_their_factor():
    prof = get_profile("smoke")
    assert E.tau_arms()["tau=cosine"].sample_process(prof).config.tau == "cosine"
    assert E.tphi_arms()["t_phi=0.25"].train_process(prof).config.t_phi == 0.25
    lam = E.lambda_arms([1e-5, 1.0])
    assert list(lam) == ["lambda=1e-05", "lambda=1", "lambda(t) linear", "lambda(t) sigmoid", E.ISO]
    c = lam["lambda=1e-05"].train_process(prof).config
    assert c.lambda_schedule == "constant" and c.lambda_constant == 1e-5


def test_quirk_arms_training_vs_sampling_side():
    prof = get_profile("smoke")
    rows = E.quirk_arms()
    arms = E.arms_of_quirks(rows)
    q1 = rows[0]["code_arm"]
    assert q1.train_process(prof).config.tau == "cosine" and q1.sample_process(prof).config.tau_sample == "linear"
    q9 = rows[3]["paper_arm"]   # sampling-only: trains the default model
    assert q9.train_process(prof).config_dict() == E.epd_arm().train_process(prof).config_dict()
    assert q9.sample_process(prof).config.final_step == "denoise"
    assert all(E.arm_name_for(arms, r[k]) in arms for r in rows for k in ("code_arm", "paper_arm"))
    assert len(set(arms)) == len(arms) == 8
    q18 = rows[-1]["code_arm"]   # sampling-only: the default model sampled with the float32 posterior
    assert q18.train_process(prof).config_dict() == E.epd_arm().train_process(prof).config_dict()
    assert q18.sample_process(prof).config.posterior_dtype == "float32"


def test_summary_and_fd_column():
    df = _df({"ddpm": [10.0, 12.0], E.EPD: [8.0, 9.0]})
    assert E.fd_column(df) == "FD_mnistclf"
    assert E.fd_column(df.drop(columns=["FD_mnistclf"]).assign(SWD_mean=1.0)) == "SWD_mean"
    s = E.summary(df).set_index("arm")
    assert s.loc["ddpm", "FD_mnistclf"] == 11.0 and s.loc["ddpm", "n_seeds"] == 2
    assert list(s.index) == ["ddpm", E.EPD]


def test_table1_claims_follow_the_verdict_rule():
    few = _df({"ddpm": [10.0], "ihdm": [50.0], "bndm": [9.0], E.EPD: [8.0]})
    out = {c["id"]: c for c in E.table1_claims(few, _ctx())}
    assert out["EPD-1"]["verdict"] == "inconclusive"          # n < 3 always inconclusive
    assert out["EPD-4"]["kind"] == "tolerance" and out["EPD-4"]["tolerance"] == 0.10
    assert "metric_note" in out["EPD-1"] and out["EPD-1"]["paper_value"]["ddpm"] == 17.60
    many = _df({"ddpm": [10.0, 10.5, 11.0], "ihdm": [50.0, 51, 52], "bndm": [9.5, 9.6, 9.7], E.EPD: [7.0, 7.2, 7.1]})
    out = {c["id"]: c for c in E.table1_claims(many, _ctx())}
    assert out["EPD-1"]["verdict"] == "reproduced" and out["EPD-2"]["verdict"] == "reproduced"
    assert out["EPD-9-precision"]["verdict"] == "reproduced"   # equal precision: |diff| = 0 <= 0.02


def test_isotropic_control_claims_separate_edge_and_loss_effects():
    df = _df({"ddpm": [10.0, 10.5, 11.0], "ihdm": [50.0, 51, 52], "bndm": [9.5, 9.6, 9.7], E.EPD: [7.0, 7.2, 7.1],
              E.ISO: [7.05, 7.15, 7.1]})
    out = {c["id"]: c for c in E.table1_claims(df, _ctx())}
    edge, loss = out["EPD-1-edge"], out["EPD-1-loss"]
    assert list(edge["ours"]) == [E.EPD, E.ISO] and list(loss["ours"]) == [E.ISO, "ddpm"]
    assert edge["verdict"] == "inconclusive" and loss["verdict"] == "reproduced"   # the gap is the loss weighting
    assert "EPD-1-edge" not in {c["id"] for c in E.table1_claims(df[df["arm"] != E.ISO], _ctx())}
    prof = get_profile("smoke")
    iso = E.table1_arms()[E.ISO].train_process(prof).config
    assert iso.tau == "one" and iso.target == "scaled_noise"     # EPD's own target and sampler, τ ≡ 1
    for arms in (E.tau_arms(), E.tphi_arms(), E.lambda_arms([1e-3])):
        assert arms[E.ISO].train_process(prof).config_dict() == E.isotropic_arm().train_process(prof).config_dict()
    assert {c["id"] for c in E.tphi_claims(_df({"t_phi=0.5": [1.0], "t_phi=0.25": [2.0], E.ISO: [3.0]}),
                                            _ctx())} == {"EPD-18-1"}


def test_a_run_of_epd_and_its_control_alone_makes_only_their_claims():
    assert list(E.table1_arms([E.EPD, E.ISO])) == [E.EPD, E.ISO]
    with pytest.raises(ValueError, match="unknown Table 1 arm"):
        E.table1_arms(["edge"])
    ids = [c["id"] for c in E.table1_claims(_df({E.EPD: [7.0, 7.2, 7.1], E.ISO: [8.0, 8.1, 8.2]}), _ctx())]
    assert ids == ["EPD-1-edge", "EPD-22"]   # no claim against an arm that was not run


def test_epd22_isotropic_reduction_is_measured_exactly():
    c = {c["id"]: c for c in E.table1_claims(_df({"ddpm": [1.0], "ihdm": [1.0], "bndm": [1.0], E.EPD: [1.0]}),
                                              _ctx())}["EPD-22"]
    assert c["verdict"] == "reproduced" and c["ours"]["mean"] < 1e-12
    prof = get_profile("smoke")
    ddpm = E.Arm("ddpm").train_process(prof)
    edges = E.epd_arm().train_process(prof)              # τ linear: not a reduction, the check must see it
    assert max(E.isotropic_reduction(edges, ddpm, torch.rand(4, 1, 16, 16) * 2 - 1).values()) > 1e-3


def test_claims_receive_the_quality_gate(monkeypatch):
    seen = []
    real_compare = E.claims.compare
    monkeypatch.setattr(E.claims, "compare", lambda *a, **kw: seen.append(kw.get("quality")) or real_compare(*a, **kw))
    gate = {a: {"passed": a != "ddpm", "reasons": []} for a in ("ddpm", E.EPD)}
    E.lower_claim("X", "x", _df({"ddpm": [1.0], E.EPD: [0.5]}), "FD_mnistclf", E.EPD, "ddpm", _ctx(quality=gate))
    assert seen == [gate]
    E.lower_claim("X", "x", _df({"ddpm": [1.0], E.EPD: [0.5]}), "FD_mnistclf", E.EPD, "ddpm", _ctx())
    assert seen[-1] is None


def test_ablation_claims():
    df = _df({"t_phi=0.25": [10.0] * 3, "t_phi=0.5": [5.0, 5.1, 5.2], "t_phi=0.75": [4.0, 4.1, 3.9]})
    out = {c["id"]: c["verdict"] for c in E.tphi_claims(df, _ctx())}
    assert out == {"EPD-18-1": "reproduced", "EPD-18-2": "not reproduced"}
    lam = _df({"lambda=1e-05": [1.0], "lambda=1": [2.0], "lambda(t) linear": [0.5], "lambda(t) sigmoid": [0.7]})
    ids = [c["id"] for c in E.lambda_claims(lam, _ctx())]
    assert ids == ["EPD-19-1", "EPD-19-2", "EPD-20-1", "EPD-19-flat"]


def test_trajectory_proxies():
    final = torch.zeros(2, 1, 8, 8)
    ts = [9, 6, 3, 1]
    x0s = [torch.full((2, 1, 8, 8), v) for v in (1.0, 0.8, 0.2, 0.0)]
    df = E.trajectory_table("a", ts, x0s, final, T=10)
    assert list(df["rmse_to_final"].round(6)) == [1.0, 0.8, 0.2, 0.0]
    assert E.structure_onset(df) == pytest.approx(3 / 9)
    assert E.early_error(df, 0.3, 0.7) == pytest.approx(0.5)


def test_results_profile_tag():
    from lib.experiment import result_folder
    assert result_folder("quick") == "quick"
    assert result_folder("quick", "afhq_cat") == "quick_afhq_cat"


def test_cost_table_interleaves_rounds_and_claims_use_them(tmp_path, monkeypatch):
    s = SimpleNamespace(prof=get_profile("smoke"), dev="cpu", x=torch.rand(8, 1, 16, 16) * 2 - 1, budget={},
                        ctx=_ctx().ctx)
    df, timings = E.cost_table(["ddpm", E.EPD], s, batch=4, repeats=5, sample_steps=2)
    assert set(df["process"]) == {"ddpm", E.EPD} and (df["rounds"] == 5).all()
    assert df.set_index("process").loc["ddpm", "train_s_per_it_ratio_to_ddpm"] == pytest.approx(1.0)
    assert (df["memory_note"] == "n/a on CPU").all()
    # every round times both processes, the first of them alternating (rotated order)
    assert len(timings) == 10 and timings.groupby("round")["process"].count().eq(2).all()
    assert [g["process"].iloc[0] for _, g in timings.groupby("round", sort=True)] == ["ddpm", E.EPD] * 2 + ["ddpm"]
    from lib.studies import cost
    ratios = cost.round_ratios(timings, "train_s_per_it")
    assert len(ratios) == 5 and all(r > 0 for r in ratios)
    cl = E.cost_claims(df, timings, s)
    assert [c["id"] for c in cl] == ["EPD-13", "EPD-14"] and all(c["tolerance"] == 0.05 for c in cl)
    assert all(c["n"] == 5 and c["replicates"] == "interleaved timing rounds" for c in cl)
    assert all("not interleaved" not in c["detail"] and "n=" not in c["detail"].split(":")[0] for c in cl)
    few = E.cost_claims(*E.cost_table(["ddpm", E.EPD], s, batch=4, repeats=2, sample_steps=2), s)
    assert all(c["verdict"] == "inconclusive" and "n=2 < 5" in c["detail"] for c in few)


def test_chain_budget_applies_to_every_family(tmp_path, monkeypatch):
    from lib import experiment
    monkeypatch.setattr(experiment, "RESULTS_DIR", tmp_path)
    s = E.setup("test_epd_budget", profile="quick", T=40, n_eval=8, train_steps=5, lite_unet=True)
    assert s.prof.T == 40 and s.prof.unet_channels == 16 and s.prof.n_eval == 8
    assert E.make(s, E.EPD).num_steps == 40 and E.make(s, "ihdm").num_steps == 40
    assert E.make(s, "ddpm").alpha_bar[-1] < 0.02   # the T=200 profile chain would end at 0.13
    assert len(E.make(s, "bndm").sampling_timesteps()) == 40



def test_setup_is_keyword_only_and_frozen(tmp_path, monkeypatch):
    import dataclasses
    from lib import experiment
    monkeypatch.setattr(experiment, "RESULTS_DIR", tmp_path)
    with pytest.raises(TypeError):
        E.setup("test_epd_setup", "smoke")                     # everything after the notebook name is keyword-only
    s = E.setup("test_epd_setup", profile="smoke", resolution=16, n_eval=4)
    assert isinstance(s, E.StudySetup) and s.run.dir == tmp_path / "test_epd_setup" / "smoke"
    assert s.real.shape == (4, 1, 16, 16) and s.overrides["n_eval"] == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.prof = get_profile("quick")
    assert s.state.trained is None and s.state.quality is None  # the mutable part: set by train_arms / metric_table
    s.state.quality = {}
    assert E.quality_of(s, E.EPD) is None and E.quality_record(s) == {}

def test_extractor_for_natural_images_uses_cifar_classifier_only_when_cifar_is_there(tmp_path, monkeypatch):
    from lib import metrics
    from lib.studies import study
    monkeypatch.setattr(metrics, "inception_available", lambda: False)
    calls = []
    monkeypatch.setattr(metrics, "get_extractor", lambda name, **kw: calls.append((name, kw)) or name)
    assert study.extractor_for("afhq_cat", str(tmp_path)) is None          # no cifar10/ beside it: SWD only
    (tmp_path / "cifar10").mkdir()
    assert study.extractor_for("afhq_cat", str(tmp_path)) == "cifarclf"
    assert calls == [("cifarclf", {"data_root": str(tmp_path)})]
    assert study.extractor_for("sketch", str(tmp_path)) is None            # not a natural-image set
    assert study.extractor_for("mnist") == "mnistclf"
    # a trained classifier file named by the environment (GPU runs, no CIFAR-10 there); a cifar10/ folder wins
    monkeypatch.setattr(metrics, "load_classifier_extractor", lambda path: ("file", path))
    monkeypatch.setenv(study.ENV_FD_EXTRACTOR, "/pack/cifarclf_abc.pt")
    assert study.extractor_for("afhq_cat", str(tmp_path / "pack")) == ("file", "/pack/cifarclf_abc.pt")
    assert study.extractor_for("celeba", None) == ("file", "/pack/cifarclf_abc.pt")
    assert study.extractor_for("afhq_cat", str(tmp_path)) == "cifarclf"
    assert study.extractor_for("sketch", str(tmp_path)) is None


def test_gpu_profiles_compile_on_cuda_only_and_quick_models_keep_their_config():
    from lib.studies import study
    from lib.profiles import get_profile
    from lib.train import _use_compile
    assert study.train_config("ddpm", get_profile("quick"), 0).compile == "off"
    for name in ("gpu", "paper"):
        cfg = study.train_config("edge_preserving", get_profile(name), 0)
        assert cfg.compile == "auto"
        assert _use_compile(cfg.compile, torch.device("cuda")) and not _use_compile(cfg.compile, torch.device("cpu"))


def test_border_edge_table_zero_padding_makes_the_border_an_edge():
    x = -torch.ones(8, 1, 16, 16)
    x[:, :, 5:11, 5:11] = 1.0                       # a bright square on the digits' black background
    t = E.border_edge_table(x).set_index("padding")
    assert t.loc["zeros", "border_fraction_G>0.1"] == 1.0 and t.loc["zeros", "G_border"] > 0.1
    assert t.loc["replicate", "G_border"] == 0.0 and t.loc["replicate", "G_interior_edges"] > 0.1
