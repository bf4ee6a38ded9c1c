"""benchmarks/step_time.py at toy settings: every column is produced and the files land where --out says."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import step_time  # noqa: E402


def test_step_time_writes_all_measures(tmp_path):
    out = tmp_path / "bench" / "st"
    rows = step_time.main(["--device", "cpu", "--batch", "2", "--rounds", "3", "--steps", "1", "--T", "10",
                           "--processes", "edge_preserving", "--fid-images", "0", "--threads", "1",
                           "--precisions", "fp32,bf16", "--resolution", "16", "--out", str(out)])
    assert [(r["process"], r["precision"]) for r in rows] == [("ddpm", "fp32"), ("edge_preserving", "fp32"),
                                                              ("ddpm", "bf16"), ("edge_preserving", "bf16")]
    assert "train_ratio_to_fp32" in rows[3] and "train_ratio_to_fp32" not in rows[1]
    lo, hi = rows[3]["train_ratio_to_fp32_ci"]
    assert lo <= rows[3]["train_ratio_to_fp32"] <= hi
    r = rows[1]
    assert r["train_ratio_to_ddpm_ci"][0] <= r["train_ratio_to_ddpm"] <= r["train_ratio_to_ddpm_ci"][1]
    assert r["train_ms_per_step"] > 0 and r["train_images_per_s"] > 0 and r["train_tflops"] > 0
    assert r["train_peak_mib"] is None and r["train_mfu_bf16"] is None  # CPU: n/a, not a made-up number
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["device_name"].startswith("cpu") and meta["flops"]["device_bf16_peak_tflops"] is None
    assert meta["fid_extraction"] is None
    assert meta["setting"]["torch_threads"] == 1 and meta["setting"]["precisions"] == ["fp32", "bf16"]
    assert set(meta["precision_over_fp32"]) == {"ddpm", "edge_preserving"}
    assert "n/a" in out.with_suffix(".md").read_text() and out.with_suffix(".csv").exists()
    assert step_time.bf16_peak("NVIDIA H100 80GB HBM3") == 989.0 == step_time.bf16_peak("NVIDIA H200")


def test_ratio_ci_and_its_digits():
    # paired rounds: a drift common to both series cancels, so the CI of a constant 0.5 ratio is a point
    est, lo, hi = step_time.ratio_ci([0.5, 1.0, 2.0, 0.7], [1.0, 2.0, 4.0, 1.4])
    assert est == lo == hi == 0.5
    est, lo, hi = step_time.ratio_ci([1.0, 1.1, 0.9, 1.3, 0.95, 1.05], [2.0] * 6)
    assert lo < est < hi and lo >= 0.45 and hi <= 0.65
    assert step_time.fmt_ci(0.6712, 0.631, 0.741) == "0.67 (0.63–0.74)"
    assert step_time.fmt_ci(1.00412, 1.0031, 1.0052) == "1.004 (1.003–1.005)"     # half-width 0.001
    assert step_time.fmt_ci(0.8, float("nan"), float("nan")) == "0.8"
