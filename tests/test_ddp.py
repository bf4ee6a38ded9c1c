"""Data-parallel training and sampling (lib.distributed): 2 CPU processes on gloo against 1 process.

One spawned 2-process job (module scope) trains a tiny U-Net for 6 steps and generates 5 images; the tests
compare it with 1-process runs of the same global batch.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lib import distributed, io
from lib import train as train_lib
from lib.metrics import ClassifierExtractor, reference_features
from lib.metrics import features as features_mod
from lib.metrics.features import SmallConvNet
from lib.processes import make_process
from lib.sampling import generate
from lib.train import CHECKPOINT_NAME, TrainConfig, build_from_checkpoint, train
from lib.unet import UNet, UNetConfig
from tests.conftest import smooth_images

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available")

PROCESS = ("edge_preserving", {"T": 20, "edge_norm": "image"})  # "batch" couples a batch
# float32 pinned: the test is about world-size independence and must mean the same on CPUs with and without
# native bf16 ("auto" would pick bf16 on one and float32 on the other).
CFG = TrainConfig(steps=6, batch_size=4, lr=1e-3, ckpt_every=3, log_every=1, seed=3, precision="fp32")
N_GEN, SEED_GEN = 5, 11
N_FEAT = 7  # feature extraction of 7 images on 2 ranks: shares of 4 and 3, batches of 2


def _extractor():
    torch.manual_seed(5)
    meta = {"heldout_accuracy": 0.0, "resolution": [16, 16], "run_hash": "ddptest"}
    return ClassifierExtractor("toyclf", SmallConvNet(10, width=4), meta, device="cpu")


def _net():
    torch.manual_seed(0)
    return UNet(dataclasses.replace(UNetConfig.tiny(in_channels=3), model_channels=16))


def _data():
    return ((smooth_images(12, 3, 16) + 1) * 127.5).round().to(torch.uint8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, run_dir: str, out_dir: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        saves = []
        real_save = io.torch_save
        train_lib.io.torch_save = lambda obj, path: (saves.append(str(path)), real_save(obj, path))
        proc = make_process(PROCESS[0], **PROCESS[1])
        res = train(proc, _net(), _data(), CFG, run_dir=run_dir, progress=False)
        train_lib.io.torch_save = real_save
        imgs = generate(proc, res.ema, N_GEN, (3, 16, 16), SEED_GEN, batch_size=2, progress=False)
        ext, feat_imgs = _extractor(), _data()[:N_FEAT]
        calls = []
        real_forward = ext._forward
        ext._forward = lambda x: (calls.append(len(x)), real_forward(x))[1]
        feats = ext.features(feat_imgs, batch_size=2)
        writes = []
        real_atomic = features_mod.atomic_path
        features_mod.atomic_path = lambda path, **kw: (writes.append(str(path)), real_atomic(path, **kw))[1]
        ref = reference_features(ext, feat_imgs, "ddp-test", cache_dir=f"{out_dir}/fid_stats")
        features_mod.atomic_path = real_atomic
        stats_files = sorted(os.listdir(f"{out_dir}/fid_stats"))  # after reference_features' barrier
        torch.save({"log": res.log, "saves": saves, "generated": imgs, "world": distributed.world_size(),
                    "features": feats, "feature_batches": calls, "ref_features": ref,
                    "stats_writes": writes, "stats_files": stats_files},
                   f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_proc(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    run_dir, out_dir = base / "run2", base / "out"
    out_dir.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(run_dir), str(out_dir)), nprocs=2, join=True)
    return run_dir, [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def one_proc_9(tmp_path_factory):
    """The uninterrupted 1-process run, 9 steps."""
    proc = make_process(PROCESS[0], **PROCESS[1])
    return train(proc, _net(), _data(), dataclasses.replace(CFG, steps=9),
                 run_dir=tmp_path_factory.mktemp("one"), progress=False)


def _losses(log):
    return torch.tensor([e["loss"] for e in log], dtype=torch.float64)


def test_two_process_loss_curve_equals_one_process(two_proc, one_proc_9):
    _, (r0, r1) = two_proc
    assert r0["world"] == r1["world"] == 2
    assert [e["step"] for e in r0["log"]] == list(range(1, 7))
    torch.testing.assert_close(_losses(r0["log"]), _losses(one_proc_9.log[:6]), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(_losses(r1["log"]), _losses(r0["log"]), rtol=0, atol=0)  # reduced: same on all


def test_only_rank0_writes_the_checkpoint(two_proc):
    run_dir, (r0, r1) = two_proc
    assert r1["saves"] == []
    assert len(r0["saves"]) == 2 and all(s.endswith(CHECKPOINT_NAME) for s in r0["saves"])  # steps 3 and 6
    assert (run_dir / CHECKPOINT_NAME).exists()
    assert sorted(p.name for p in run_dir.iterdir()) == [CHECKPOINT_NAME]


def test_two_process_checkpoint_resumes_in_one_process(two_proc, one_proc_9, tmp_path):
    run_dir, _ = two_proc
    shutil.copytree(run_dir, tmp_path / "run")
    proc = make_process(PROCESS[0], **PROCESS[1])
    res = train(proc, _net(), _data(), dataclasses.replace(CFG, steps=9), run_dir=tmp_path / "run", progress=False)
    assert [e["step"] for e in res.log] == list(range(1, 10))
    torch.testing.assert_close(_losses(res.log[6:]), _losses(one_proc_9.log[6:]), rtol=1e-4, atol=1e-6)
    # Adam's normalised step turns reduction-order noise in near-zero gradients into up to ±lr per step, so
    # single weights may differ by ~lr; the weight vector as a whole agrees closely.
    a = torch.cat([p.detach().flatten() for p in res.net.parameters()])
    b = torch.cat([p.detach().flatten() for p in one_proc_9.net.parameters()])
    assert float((a - b).norm() / b.norm()) < 1e-3


def test_distributed_generate_equals_single_process(two_proc):
    run_dir, (r0, r1) = two_proc
    proc, net = build_from_checkpoint(run_dir / CHECKPOINT_NAME)
    ref = generate(make_process(PROCESS[0], **PROCESS[1]), net, N_GEN, (3, 16, 16), SEED_GEN, batch_size=2,
                   progress=False)
    assert r0["generated"].shape == (N_GEN, 3, 16, 16)
    torch.testing.assert_close(r0["generated"], ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r1["generated"], r0["generated"], rtol=0, atol=0)


def test_distributed_features_equal_single_process(two_proc):
    """FID feature extraction is split over the ranks (4 + 3 images) and gathered in order on every rank;
    the reference cache is written once, by rank 0."""
    _, (r0, r1) = two_proc
    ext, imgs = _extractor(), _data()[:N_FEAT]
    single = ext.features(imgs, batch_size=2)
    assert r0["features"].shape == single.shape == (N_FEAT, ext.dim)
    assert r0["feature_batches"][:2] == [2, 2] and r1["feature_batches"][:2] == [2, 1]  # each its own share
    np.testing.assert_allclose(r0["features"], single, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r1["features"], r0["features"])
    np.testing.assert_array_equal(r1["ref_features"], r0["ref_features"])
    np.testing.assert_allclose(r0["ref_features"], single, rtol=1e-5, atol=1e-6)
    assert len(r0["stats_writes"]) == 1 and r1["stats_writes"] == []
    assert r1["stats_files"] == r0["stats_files"] == [r0["stats_writes"][0].rsplit("/", 1)[1]]


# --- no processes spawned -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ddpm", "edge_preserving", "ihdm", "bndm", "cold_blur", "cold_inpaint",
                                  "cold_noise", "cold_snow", "cold_desaturate"])
def test_sharded_draws_reproduce_the_global_batch(name):
    """Each rank's slice of t and noise (ShardedGenerator) gives the per-sample losses of one process."""
    proc = make_process(name, **({"edge_norm": "image"} if name == "edge_preserving" else {}))
    x0 = smooth_images(6, 3, 16)
    net = lambda x, t: torch.tanh(x[:, :1]).expand(-1, proc.out_channels(3), -1, -1) * 0.5  # noqa: E731
    full = proc.loss(net, x0, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t = proc.sample_t(6, g, "cpu")
    parts = []
    for lo, hi in [(0, 2), (2, 4), (4, 6)]:
        state = g.get_state()
        sh = distributed.ShardedGenerator(g, 6, lo, hi)
        parts.append(proc.loss(net, x0[lo:hi], t=t[lo:hi], generator=sh))
        if hi < 6:
            g.set_state(state)  # every rank starts from the same state
    torch.testing.assert_close(torch.cat(parts), full, rtol=1e-6, atol=1e-6)


def test_shard_covers_every_index_once():
    for n in (0, 1, 5, 8):
        for ws in (1, 2, 3):
            spans = [distributed.shard(n, r, ws) for r in range(ws)]
            assert [i for lo, hi in spans for i in range(lo, hi)] == list(range(n))


def test_batch_not_divisible_by_world_size(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        train(make_process("ddpm", T=10), _net(), _data(), CFG, progress=False)


def test_helpers_in_a_single_process():
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    x = torch.arange(6.).reshape(3, 2)
    assert distributed.all_gather_cat(x) is x and distributed.all_reduce_mean(x) is x
    distributed.barrier()


def test_train_cli_set_values_read_as_yaml():
    from lib.train_cli import _value
    assert [_value(v) for v in ("0.5", "true", "[1, 2]", "image", "1e-3")] == [0.5, True, [1, 2], "image", 1e-3]


def test_train_cli_evaluate_needs_samples():
    from lib import train_cli
    with pytest.raises(SystemExit, match="--samples"):
        train_cli.main(["--process", "ddpm", "--evaluate"])


def test_train_cli_under_torchrun_then_resumed_alone(tmp_path, capsys):
    """``torchrun --nproc_per_node=2 -m lib.train_cli`` trains and samples; one plain process continues it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lib import train_cli
    root = Path(__file__).resolve().parents[1]
    common = ["--profile", "smoke", "--process", "ddpm", "--dataset", "mnist", "--max-images", "32",
              "--run-dir", str(tmp_path / "run"), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          f"--master_port={_free_port()}", "-m", "lib.train_cli", *common, "--steps", "4",
                          "--samples", "8", "--evaluate"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["step"] == 4
    samples = torch.load(summary["samples"])
    assert samples.dtype == torch.uint8 and samples.ndim == 4 and samples.shape[:2] == (8, 1)
    metrics = json.loads(Path(summary["metrics"]).read_text())["metrics"]  # features split over the 2 ranks
    assert metrics["n_fake"] == metrics["n_real"] == 8 and np.isfinite(metrics["FD_mnistclf"])
    assert train_cli.main(common + ["--steps", "6"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 6
