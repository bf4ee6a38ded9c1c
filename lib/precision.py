"""Numeric precision of training and sampling: float32, or bf16 autocast where the hardware supports it.

    precision = resolve("auto", device)      # "bf16" on CUDA and on CPUs with native bf16 (AVX512_BF16 / AMX), else "fp32"
    with autocast(device, precision): loss = process.loss(net, x0, generator=g).float().mean()

Under bf16 autocast the convolutions and matmuls run in bf16; the U-Net's GroupNorm (``GroupNorm32``) and every
process's loss and noise algebra stay in float32/float64, as on CUDA.  "auto" never assumes: on CPU it asks
oneDNN (``torch.backends.mkldnn`` bf16 support) and the CPU flags; without native bf16 the emulated path is
slower than float32, so "auto" picks float32 there.  "bf16" forces autocast anywhere; "fp32" turns it off.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp32")
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.lru_cache(maxsize=None)
def cpu_bf16_supported() -> bool:
    """True when this CPU computes bf16 natively (AVX512_BF16 or AMX-BF16) and oneDNN will use it."""
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    return onednn and bool(_cpu_flags() & set(_NATIVE_BF16_FLAGS))


def resolve(precision: str, device) -> str:
    """The precision actually used on ``device``: "bf16" or "fp32" ("auto": bf16 where natively supported)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16"
    return "bf16" if kind == "cpu" and cpu_bf16_supported() else "fp32"


def autocast(device, precision: str):
    """bf16 autocast on ``device`` for a resolved (or "auto") precision; a no-op context for float32."""
    device = torch.device(device)
    if resolve(precision, device) == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
