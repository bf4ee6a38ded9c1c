"""lib/metrics/quality.py: the quality gate, the real-vs-real floor, KID and the learning curve (issue 17)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib.metrics import quality
from lib.data import load_dataset
from lib.profiles import get_profile
from lib.sampling import generate
from lib.studies.study import process_for_profile, train_model


class PooledPixels:
    """A cheap stand-in extractor: 4×4-average-pooled pixels (the gate logic is extractor-agnostic)."""
    name = "FD_pooled"

    def features(self, images):
        x = images.float() / 127.5 - 1 if images.dtype == torch.uint8 else images.float()
        return F.avg_pool2d(x, 4).flatten(1).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist", resolution=16).float()


def test_kid_unbiased_zero_for_same_distribution_and_positive_for_different():
    draw = lambda seed, n=400: np.random.default_rng(seed).normal(size=(n, 8))  # noqa: E731
    same = [quality.kid(draw(i), draw(100 + i)) for i in range(20)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(20) + 1e-3      # unbiased: mean ≈ 0 (can be < 0)
    assert min(same) < 0
    assert quality.kid(draw(0), draw(1) + 0.3) > 10 * np.std(same)
    # subsets are used when the sets differ in size
    assert abs(quality.kid(draw(0), draw(2, 1000), subset_size=300)) < 0.1


def test_snapshot_steps_quarters():
    assert quality.snapshot_steps(600) == [150, 300, 450, 600]
    assert quality.snapshot_steps(2) == [1, 2]


def test_real_images_pass_the_gate(digits):
    n, ext = 300, PooledPixels()
    ref = digits[torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))[:n]]
    floor = quality.real_floor(quality.held_out_images(digits, n), ref, ext)
    # held-out real images as "samples" at every checkpoint: a flat curve at the floor
    curve = [[s, floor["fd"]] for s in (1, 2, 3, 4)]
    q = quality.gate(floor["precision"], floor["recall"], floor["fd"], floor["fd"], [curve])
    assert q["passed"], q["reasons"]
    assert floor["precision"] > 0.5 and floor["recall"] > 0.3 and abs(floor["kid"]) < 0.05
    assert floor["fd"] > 1e-3 and floor["n"] == n          # held-out images, not the reference itself


def test_untrained_model_fails_the_gate_and_its_curve_has_four_points(digits, tmp_path):
    prof = get_profile("smoke")
    proc = process_for_profile("ddpm", prof)
    res = train_model(proc, digits[:64], prof, seed=0, run_dir=tmp_path, progress=False)
    assert sorted(res.snapshots) == quality.snapshot_steps(prof.train_steps) and len(res.snapshots) >= 4
    from lib.train import load_snapshot
    n, ext = 64, PooledPixels()
    ref = digits[:n]
    samples = {st: generate(proc, load_snapshot(res.ema, p), n, (1, 16, 16), 0, batch_size=64, progress=False)
               for st, p in res.snapshots.items()}
    curve = quality.learning_curve(samples, ext.features(ref), ext)
    assert [r["step"] for r in curve] == [1, 2, 3, 4]
    last = curve[-1]
    q = quality.gate(last["precision"], last["recall"], last["fd"], None, [[[r["step"], r["fd"]] for r in curve]])
    assert not q["passed"] and any("precision" in r for r in q["reasons"])
    # the same through quality.measure (what notebooks call), with the floor and the metrics.json record
    gates, curves, floor = quality.measure({"ddpm": [res]}, lambda arm, r, seed, p: samples[int(p.stem[8:])], [0],
                                           ref, quality.held_out_images(digits, n), ext)
    assert gates["ddpm"]["precision"] == last["precision"] and not gates["ddpm"]["passed"]
    assert gates["ddpm"]["floor"] == floor["fd"] < gates["ddpm"]["fd"]
    rec = quality.record(gates, curves, [0])["ddpm"]
    assert [p[0] for p in rec["learning_curve"]] == [1, 2, 3, 4] and rec["quality"] is gates["ddpm"]
    res.snapshots = {}
    assert quality.measure({"ddpm": [res]}, None, [0], ref, quality.held_out_images(digits, n), ext)[0]["ddpm"][
        "reasons"][0].startswith("no EMA snapshots")


def test_flattened_rule():
    flat = [[1, 10.0], [2, 5.0], [3, 4.0], [4, 3.9]]
    steep = [[1, 10.0], [2, 8.0], [3, 6.0], [4, 4.0]]
    assert quality.flattened([flat])["flat"]                          # one seed: within 10 % of the final FD
    assert not quality.flattened([steep])["flat"]
    assert not quality.flattened([flat[:3]])["flat"]                  # < 4 checkpoints
    # seeds: the change must be within the std of the final FDs
    assert quality.flattened([steep, [[s, v + 3] for s, v in steep], [[s, v - 3] for s, v in steep]])["flat"]
    assert not quality.flattened([steep, [[s, v + 0.1] for s, v in steep]])["flat"]
    q = quality.gate([0.9, 0.8], [0.2, 0.2], [3.9, 3.9], 1.0, [flat])
    assert not q["passed"] and q["reasons"] == [f"recall 0.200 < {quality.GATE.min_recall:g} (samples cover too "
                                                f"little of the data)"]
