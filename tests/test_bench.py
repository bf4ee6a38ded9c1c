"""benchmarks/step_time.py at toy settings: every column is produced and the files land where --out says."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import step_time  # noqa: E402


def test_step_time_writes_all_measures(tmp_path):
    out = tmp_path / "bench" / "st"
    rows = step_time.main(["--device", "cpu", "--batch", "2", "--rounds", "2", "--steps", "1", "--T", "10",
                           "--processes", "edge_preserving", "--fid-images", "0",  # extractor: may need training on a fresh clone
                          
                           "--resolution", "16", "--out", str(out)])
    assert [r["process"] for r in rows] == ["ddpm", "edge_preserving"]
    r = rows[1]
    assert r["train_ms_per_step"] > 0 and r["train_images_per_s"] > 0 and r["train_tflops"] > 0
    assert r["train_peak_mib"] is None and r["train_mfu_bf16"] is None  # CPU: n/a, not a made-up number
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["device_name"].startswith("cpu") and meta["flops"]["device_bf16_peak_tflops"] is None
    assert meta["fid_extraction"] is None
    assert "n/a" in out.with_suffix(".md").read_text() and out.with_suffix(".csv").exists()
    assert step_time.bf16_peak("NVIDIA H100 80GB HBM3") == 989.0 == step_time.bf16_peak("NVIDIA H200")
