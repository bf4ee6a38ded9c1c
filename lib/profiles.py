"""Compute profiles: the one place where the budget of every notebook is set.

    smoke -- CI: seconds, checks the plumbing only (numbers meaningless)
    quick -- default: real but small runs on 2 CPU cores (tiny U-Net, embedded digits, hundreds of steps)
    gpu   -- one GPU, hours: paper U-Net family at reduced width/steps
    paper -- the papers' hyperparameters (2 GPUs, days); implemented, not run here

A result produced under a profile always records it; numbers from ``smoke``/``quick``/``gpu`` are small-scale
and never presented as the paper's.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Tuple

from lib.unet import UNetConfig


@dataclass(frozen=True)
class Profile:
    name: str                              # smoke | quick | gpu | paper
    train_steps: int                       # Optimiser steps per model.
    batch_size: int                        # Training batch.
    lr: float                              # Learning rate (EPD/DDPM: 2e-5 at paper scale; higher for short runs).
    T: int                                 # DDPM/EPD diffusion steps.
    unet_channels: int                     # U-Net base width.
    unet_mult: Tuple[int, ...]             # U-Net channel multipliers.
    unet_res_blocks: int                   # Res-blocks per level.
    unet_attention: Tuple[int, ...]        # Attention level indices.
    dropout: float                         # U-Net dropout.
    n_eval: int                            # Generated (and reference) images per metric.
    n_show: int                            # Images per sample grid.
    seeds: Tuple[int, ...]                 # Training/sampling seeds (one model per seed).
    sample_batch: int                      # Sampling batch size.
    ema_decay: float = 0.999               # EMA decay of the evaluated weights.
    precision: str = "auto"                # Training and sampling: "auto" (bf16 autocast on CUDA and on CPUs with
                                           # native bf16, lib.precision) | "bf16" | "fp32".
    note: str = ""                         # What this scale is, for the reports.

    def unet(self, in_channels: int, out_channels: int | None = None) -> UNetConfig:
        return UNetConfig(in_channels=in_channels, out_channels=out_channels, model_channels=self.unet_channels,
                          channel_mult=self.unet_mult, num_res_blocks=self.unet_res_blocks,
                          attention_levels=self.unet_attention, dropout=self.dropout)


PROFILES = {
    "smoke": Profile("smoke", train_steps=4, batch_size=8, lr=1e-3, T=20, unet_channels=16, unet_mult=(1, 2),
                     unet_res_blocks=1, unet_attention=(), dropout=0.0, n_eval=16, n_show=8, seeds=(0,),
                     sample_batch=16, ema_decay=0.9,
                     note="smoke: plumbing check only; numbers are meaningless"),
    "quick": Profile("quick", train_steps=600, batch_size=32, lr=1e-3, T=200, unet_channels=32,
                     unet_mult=(1, 2, 2), unet_res_blocks=1, unet_attention=(2,), dropout=0.0, n_eval=256,
                     n_show=32, seeds=(0,), sample_batch=64, ema_decay=0.99,
                     note="quick: tiny U-Net (1.1M params), hundreds of CPU steps, T=200; far below paper scale"),
    "gpu": Profile("gpu", train_steps=20_000, batch_size=64, lr=2e-4, T=500, unet_channels=64,
                   unet_mult=(1, 2, 2, 2), unet_res_blocks=2, unet_attention=(2,), dropout=0.1, n_eval=5000,
                   n_show=64, seeds=(0, 1, 2), sample_batch=500, ema_decay=0.9995,
                   note="gpu: one GPU, hours; reduced U-Net and steps; below paper scale"),
    "paper": Profile("paper", train_steps=80_000, batch_size=64, lr=2e-5, T=500, unet_channels=128,
                     unet_mult=(1, 2, 3, 4, 5), unet_res_blocks=2, unet_attention=(2,), dropout=0.1,
                     n_eval=30_000, n_show=64, seeds=(0, 1, 2), sample_batch=256, ema_decay=0.999,
                     note="paper: the EPD paper's U-Net and budget (128², 30k samples); needs GPUs for days"),
}


def get_profile(name: str, **overrides) -> Profile:
    """Profile by name (ValueError listing the valid names); keyword overrides replace fields."""
    if not isinstance(name, str) or name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {list(PROFILES)}")
    return dataclasses.replace(PROFILES[name], **overrides) if overrides else PROFILES[name]
