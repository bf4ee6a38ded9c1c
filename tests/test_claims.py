"""The verdict rule of the claims ledger (evaluation.md): direction, paired tests, Holm, minimum effect,
tolerance and timing claims, the quality gate ("not testable at this scale"), proxies and replicate caps."""
import pytest

from lib.reports import claims

LO, HI = [1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9, 2.05]
COLLAPSED = {"passed": False, "precision": 0.92, "recall": 0.0, "fd": 74.4, "floor": 3.1,
             "reasons": ["recall 0 < 0.3: the samples collapsed onto one mode"]}
GOOD = {"passed": True, "precision": 0.8, "recall": 0.6, "fd": 10.0, "floor": 3.1, "reasons": []}


def test_direction_reproduced_not_reproduced_and_inconclusive():
    assert claims.compare("c", "EPD", "a<b", "FD", {"a": LO}, {"b": HI})["verdict"] == claims.REPRODUCED
    assert claims.compare("c", "EPD", "a<b", "FD", {"a": HI}, {"b": LO})["verdict"] == claims.NOT_REPRODUCED
    close = claims.compare("c", "EPD", "a<b", "FD", {"a": [1.0, 1.2, 0.9]}, {"b": [1.1, 0.95, 1.05]})
    assert close["verdict"] == claims.INCONCLUSIVE
    two = claims.compare("c", "EPD", "a<b", "FD", {"a": [1.0, 1.1]}, {"b": [5.0, 5.1]}, dataset="mnist")
    assert two["verdict"] == claims.INCONCLUSIVE and "n=2" in two["detail"] and two["dataset"] == "mnist"


def test_paired_when_the_arms_share_seeds_significant_where_welch_is_not():
    """Per-seed values move together across arms (seed 2 is high in both): pairing removes that shared part."""
    a, b = [10.0, 20.0, 30.0], [10.5, 20.6, 30.4]
    kw = dict(min_effect_rel=0.01)
    welch = claims.compare("c", "EPD", "a<b", "FD", {"a": a}, {"b": b}, **kw)
    paired = claims.compare("c", "EPD", "a<b", "FD", {"a": a}, {"b": b}, seeds={"a": [0, 1, 2], "b": [0, 1, 2]}, **kw)
    assert welch["test"] == "Welch t" and welch["p_value"] > 0.4 and welch["verdict"] == claims.INCONCLUSIVE
    assert paired["test"] == "paired t" and paired["p_value"] < 0.01 and paired["verdict"] == claims.REPRODUCED
    # Seeds are matched by value, not by position; different seed sets fall back to Welch.
    shuffled = claims.compare("c", "EPD", "a<b", "FD", {"a": a}, {"b": [30.4, 10.5, 20.6]},
                              seeds={"a": [0, 1, 2], "b": [2, 0, 1]}, **kw)
    assert shuffled["p_value"] == pytest.approx(paired["p_value"])
    other = claims.compare("c", "EPD", "a<b", "FD", {"a": a}, {"b": b}, seeds={"a": [0, 1, 2], "b": [3, 4, 5]}, **kw)
    assert other["test"] == "Welch t"
    assert claims.compare("c", "EPD", "a<b", "FD", {"a": a}, {"b": b}, paired=True, **kw)["verdict"] == claims.REPRODUCED


def test_minimum_effect_is_stated_and_required():
    a, b = [10.0, 20.0, 30.0], [10.5, 20.6, 30.4]          # paired p < 0.01, difference 0.5 on a mean of 20.5
    e = claims.compare("c", "EPD", "a<b", "FD", {"a": a}, {"b": b}, paired=True)   # default: 5 % of 20.5 = 1.03
    assert e["p_value"] < 0.01 and e["verdict"] == claims.INCONCLUSIVE
    assert e["min_effect"] == pytest.approx(0.05 * 20.5 * 1) and "minimum effect 1.03" in e["detail"]
    floor = claims.compare("c", "EPD", "a<b", "FD", {"a": a}, {"b": b}, paired=True, floor=15.0)  # 5 % of 5.5
    assert floor["min_effect"] == pytest.approx(0.275) and floor["verdict"] == claims.REPRODUCED
    absolute = claims.compare("c", "EPD", "a<b", "FD", {"a": a}, {"b": b}, paired=True, min_effect=0.6)
    assert absolute["verdict"] == claims.INCONCLUSIVE and absolute["min_effect"] == pytest.approx(1.025)


def test_holm_within_a_family():
    """Two comparisons each at raw p ≈ 0.045-0.05: both pass alone, neither after Holm (m = 2)."""
    kw = dict(paired=True, min_effect_rel=0.0)
    e1 = claims.compare("EPD-18-1", "EPD", "x<y", "FD", {"x": [0, 0, 0, 0]}, {"y": [0.5, 0.1, 0.9, 0.2]}, **kw)
    e2 = claims.compare("EPD-18-2", "EPD", "x<z", "FD", {"x": [0, 0, 0, 0]}, {"z": [0.4, 0.05, 0.8, 0.3]}, **kw)
    strong = claims.compare("EPD-19-1", "EPD", "u<v", "FD", {"u": LO}, {"v": HI}, **kw)
    assert e1["verdict"] == e2["verdict"] == claims.REPRODUCED and 0.04 < e2["p_value"] < e1["p_value"] < 0.05
    h1, h2, hs = claims.correct_families([e1, e2, strong])
    assert (h1["holm_m"], h2["holm_m"], hs["holm_m"]) == (2, 2, 1)
    assert h2["p_holm"] == pytest.approx(2 * e2["p_value"]) and h1["p_holm"] == pytest.approx(max(e1["p_value"], 2 * e2["p_value"]))
    assert h1["verdict"] == h2["verdict"] == claims.INCONCLUSIVE and "Holm p (m=2)" in h1["detail"]
    assert h1["p_value"] == e1["p_value"]                  # the raw p is kept beside the adjusted one
    assert hs["verdict"] == claims.REPRODUCED and hs["p_holm"] == strong["p_value"]
    assert e1["verdict"] == claims.REPRODUCED             # the inputs are not modified


def test_tolerance_needs_three_values_and_a_ci_inside():
    two = claims.within_tolerance("c", "EPD", "≈1%", "ratio", [1.01, 1.02], 1.009, 0.03)
    assert two["verdict"] == claims.INCONCLUSIVE and "n=2 < 3" in two["detail"]
    inside = claims.within_tolerance("c", "EPD", "≈1%", "ratio", [1.01, 1.02, 1.015], 1.009, 0.03)
    assert inside["verdict"] == claims.REPRODUCED and inside["ci95"][0] > 0.979 and inside["ci95"][1] < 1.039
    outside = claims.within_tolerance("c", "EPD", "≈1%", "ratio", [1.2, 1.21, 1.19], 1.009, 0.03)
    assert outside["verdict"] == claims.NOT_REPRODUCED
    wide = claims.within_tolerance("c", "EPD", "within 0.02", "diff", [0.01, -0.03, 0.025], 0.0, 0.02)  # sd > tol
    assert wide["verdict"] == claims.INCONCLUSIVE and "overlaps" in wide["detail"]
    assert claims.within_tolerance("c", "EPD", "≈1%", "ratio", [1.2], 1.009, 0.03)["verdict"] == claims.INCONCLUSIVE


def test_timing_claims_need_five_interleaved_repetitions():
    reps = [1.011, 1.009, 1.010, 1.012, 1.008]
    three = claims.within_tolerance("c", "EPD", "≈1%", "s/it ratio", reps[:3], 1.009, 0.01, timing=True,
                                    interleaved=True)
    assert three["verdict"] == claims.INCONCLUSIVE and "n=3 < 5" in three["detail"]
    not_interleaved = claims.within_tolerance("c", "EPD", "≈1%", "s/it ratio", reps, 1.009, 0.01, timing=True)
    assert not_interleaved["verdict"] == claims.INCONCLUSIVE and "interleaved" in not_interleaved["detail"]
    ok = claims.within_tolerance("c", "EPD", "≈1%", "s/it ratio", reps, 1.009, 0.01, timing=True, interleaved=True)
    assert ok["verdict"] == claims.REPRODUCED and ok["kind"] == "timing"


def test_failed_gate_or_collapsed_samples_are_not_testable():
    q = {"a": COLLAPSED, "b": GOOD, "unrelated": COLLAPSED}
    e = claims.compare("c", "COLD", "a<b", "FD", {"a": LO}, {"b": HI}, quality=q)
    assert e["verdict"] == claims.NOT_TESTABLE and e["would_be"] == claims.REPRODUCED
    assert list(e["not_testable"]) == ["a"] and "collapsed" in e["detail"] and "arm a" in e["detail"]
    assert "recall 0" in e["not_testable"]["a"] and set(e["quality"]) == {"a", "b"}
    fine = claims.compare("c", "COLD", "a<b", "FD", {"a": LO}, {"b": HI}, quality={"a": GOOD, "b": GOOD,
                                                                                     "unrelated": COLLAPSED})
    assert fine["verdict"] == claims.REPRODUCED
    tol = claims.within_tolerance("c", "EPD", "x", "d", [0.0, 0.001, -0.001], 0.0, 0.02, quality=q, arms=["a", "b"])
    assert tol["verdict"] == claims.NOT_TESTABLE
    assert claims.holm([e])[0]["verdict"] == claims.NOT_TESTABLE      # the gate survives the correction


def test_proxy_rows_and_non_training_replicates_are_never_reproduced():
    proxy = claims.compare("COLD-15", "COLD", "samples beat the prior", "FD", {"samples": LO}, {"prior": HI},
                           proxy="FD(samples) < FD(prior) holds for any non-trivial generator")
    assert proxy["verdict"] == claims.PROXY and proxy["would_be"] == claims.REPRODUCED and "cannot" not in proxy["claim"]
    assert claims.holm([proxy])[0]["verdict"] == claims.PROXY
    sampling = claims.compare("COLD-13", "COLD", "a<b", "FD", {"a": LO}, {"b": HI}, replicates=claims.SAMPLING_SEEDS)
    assert sampling["verdict"] == claims.INCONCLUSIVE and "not training-seed replicates" in sampling["detail"]
    assert sampling["replicates"] == "sampling seeds"
    with pytest.raises(ValueError, match="replicates"):
        claims.compare("c", "EPD", "a<b", "FD", {"a": LO}, {"b": HI}, replicates="bootstrap")


def test_independent_draws_are_full_replicates_and_every_stored_kind_is_read_back():
    """Oracle / analytic experiments train no network: their seeds redraw everything, so no cap; holm accepts
    every kind the study modules pass, and the sentences older metrics.json files stored in ``replicates``."""
    draws = claims.compare("C1-x", "COLD", "a<b", "RMSE", {"a": LO}, {"b": HI}, replicates=claims.INDEPENDENT_DRAWS)
    assert draws["verdict"] == claims.REPRODUCED and draws["replicates"] == "independent draws"
    for kind in claims.REPLICATES:
        e = claims.compare("c", "COLD", "a<b", "FD", {"a": LO}, {"b": HI}, replicates=kind)
        assert claims.holm([e])[0]["replicates"] == kind
    old = dict(draws, replicates="replicates: oracle perturbation seeds on the same held-out images")
    assert claims.holm([old])[0]["replicates"] == claims.INDEPENDENT_DRAWS
    old = dict(draws, replicates="replicates: disjoint held-out image subsets of ONE trained model (seed 0)")
    back = claims.holm([old])[0]
    assert back["replicates"] == claims.EVAL_SUBSETS and back["verdict"] == claims.INCONCLUSIVE
    assert claims.replicate_kind("replicates: sampling seeds of ONE trained model") == claims.SAMPLING_SEEDS


def test_qualitative():
    q = claims.qualitative("c", "EPD", "structure earlier", "fig.png")
    assert q["verdict"] == claims.QUALITATIVE and q["figure"] == "fig.png"
    gated = claims.qualitative("c", "EPD", "looks better", "fig.png", quality={"epd": COLLAPSED})
    assert gated["verdict"] == claims.NOT_TESTABLE


# ----------------------------------------------------------------------------------------------------------------
# The ledger counts claims, each once, with a verdict combined from its rows (lib/reports/ledger.py CLAIM_RULE).

def _row(cid, verdict, gate="passed", setting="main"):
    from lib.reports import ledger
    return ledger.LedgerRow(cid, cid.split("-")[0], "text", "—", "—", "FD", "mnist", "quick", verdict, "nb",
                            gate=gate, setting=setting)


def test_claim_verdict_combines_decisive_rows():
    from lib.reports.ledger import NOT_MEASURED, claim_verdict
    R, N, I = claims.REPRODUCED, claims.NOT_REPRODUCED, claims.INCONCLUSIVE
    assert claim_verdict([_row("EPD-1", R), _row("EPD-1", R)])[0] == R
    assert claim_verdict([_row("EPD-1", N), _row("EPD-1", N)])[0] == N
    assert claim_verdict([_row("EPD-1", R), _row("EPD-1", I)])[0] == I
    assert claim_verdict([_row("EPD-1", R), _row("EPD-1", N)])[0] == I
    # An ungated row never decides; a sensitivity row is shown but not decisive; exempt rows (timing) decide.
    verdict, why = claim_verdict([_row("EPD-1", R, gate="ungated")])
    assert verdict == I and "ungated" in why
    assert claim_verdict([_row("EPD-1", R), _row("EPD-1", N, gate="ungated")])[0] == R
    assert claim_verdict([_row("EPD-1", R), _row("EPD-1", N, setting="sensitivity")])[0] == R
    assert claim_verdict([_row("EPD-13", R, gate="exempt: timing, no samples")])[0] == R
    # No claim is reproduced on a collapsed arm: not testable when no other row is testable.
    failed = _row("COLD-15", claims.NOT_TESTABLE, gate="failed: inpaint_gen: recall 0")
    assert claim_verdict([failed])[0] == claims.NOT_TESTABLE
    assert claim_verdict([failed, _row("COLD-15", claims.PROXY, gate="ungated")])[0] == claims.NOT_TESTABLE
    assert claim_verdict([_row("COLD-15", claims.PROXY, gate="ungated")])[0] == claims.PROXY
    assert claim_verdict([_row("EPD-21", claims.QUALITATIVE, gate="ungated")])[0] == claims.QUALITATIVE
    assert claim_verdict([_row("EPD-22", NOT_MEASURED, gate="")])[0] == NOT_MEASURED


def _result(tmp_path, nb, entries, figure="samples.png"):
    import numpy as np
    from PIL import Image
    from lib.reports import ledger
    d = tmp_path / nb / "quick"
    d.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(d / figure)
    r = ledger.NotebookResult(nb, "quick", d, {"status": "ok"}, {"claims": entries})
    r.figures = [figure]
    return r


def test_ledger_counts_claims_once_holm_corrects_a_claims_rows_and_links_figures(tmp_path):
    from lib.reports import ledger
    kw = dict(paired=True, min_effect_rel=0.0)
    q = {"x": GOOD, "y": GOOD, "z": GOOD}
    e1 = claims.compare("EPD-18-1", "EPD", "x<y", "FD", {"x": [0, 0, 0, 0]}, {"y": [0.5, 0.1, 0.9, 0.2]},
                        quality=q, figure="curve.png", **kw)
    e2 = claims.compare("EPD-18-2", "EPD", "x<z", "FD", {"x": [0, 0, 0, 0]}, {"z": [0.4, 0.05, 0.8, 0.3]},
                        quality=q, **kw)
    strong = [claims.compare("EPD-1", "EPD", "a<b", "FD", {"a": LO}, {"b": HI}, quality={"a": GOOD, "b": GOOD}),
              claims.compare("EPD-1", "EPD", "a<b", "FD", {"a": LO}, {"b": HI}, quality={"a": GOOD, "b": GOOD})]
    gated = claims.compare("COLD-15", "COLD", "s<p", "FD", {"s": LO}, {"p": HI}, quality={"s": COLLAPSED})
    proxy = claims.compare("COLD-14", "COLD", "s<p", "FD", {"s": LO}, {"p": HI}, proxy="cannot fail")
    assert e1["verdict"] == e2["verdict"] == claims.REPRODUCED
    a = _result(tmp_path, "nb_a", [e1, *strong, gated, proxy])
    (a.dir / "curve.png").write_bytes((a.dir / "samples.png").read_bytes())
    b = _result(tmp_path, "nb_b", [e2])
    rows = ledger.ledger_rows([a, b], tmp_path, planned={})
    r18 = [r for r in rows if r.id == "EPD-18"]
    assert [r.verdict for r in r18] == [claims.INCONCLUSIVE] * 2 and all("Holm p (m=2)" in r.detail for r in r18)
    assert r18[0].figure == "nb_a/quick/curve.png" and r18[1].figure == "nb_b/quick/samples.png"
    counts = ledger.claim_counts(rows)
    assert counts[claims.REPRODUCED] == 1                       # EPD-1: two rows, one claim
    assert counts[claims.NOT_TESTABLE] == 1 and counts[claims.PROXY] == 1 and counts[claims.INCONCLUSIVE] == 1
    assert sum(counts.values()) == len(ledger.CLAIMS)
    md = ledger.claims_markdown(rows)
    head = md.split("## Claims at a glance")[0]
    assert "reproduced: 1 ·" in head and "not testable at this scale: 1" in head and "proxy: 1" in head
    assert "Rows beneath" in head and "reproduced: 2" in head   # row counts only beneath
    assert "| **COLD-15** | not testable at this scale |" in md and "[curve.png](nb_a/quick/curve.png)" in md
