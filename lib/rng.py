"""Random number generation that every process and sampler goes through.

``StackedRandomGenerator`` keeps one ``torch.Generator`` per sample (as in EDM's ``generate.py``): row i of
every draw depends only on ``seeds[i]``, never on the batch size or on the other rows.  Plain
``torch.Generator`` objects are accepted everywhere too (training uses one).
"""
from __future__ import annotations

import hashlib
from typing import Sequence, Union

import torch


class StackedRandomGenerator:
    """One generator per batch row; draws are stacked along dim 0."""

    def __init__(self, device, seeds: Sequence[int]):
        self.device = torch.device(device)
        self.seeds = [int(s) for s in seeds]
        self.generators = [torch.Generator(self.device).manual_seed(s % (1 << 63)) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, size, dtype=torch.float32, device=None) -> torch.Tensor:
        self._check(size)
        out = [torch.randn(size[1:], generator=g, device=self.device, dtype=dtype) for g in self.generators]
        return torch.stack(out).to(device or self.device)

    def randint(self, low: int, high: int, size, device=None) -> torch.Tensor:
        self._check(size)
        out = [torch.randint(low, high, size[1:], generator=g, device=self.device) for g in self.generators]
        return torch.stack(out).to(device or self.device)

    def rand(self, size, dtype=torch.float32, device=None) -> torch.Tensor:
        self._check(size)
        out = [torch.rand(size[1:], generator=g, device=self.device, dtype=dtype) for g in self.generators]
        return torch.stack(out).to(device or self.device)

    def _check(self, size):
        if size[0] != len(self.generators):
            raise ValueError(f"batch size {size[0]} != number of seeds {len(self.generators)}")


Generator = Union[torch.Generator, StackedRandomGenerator, None]


def sample_seed(seed: int, index: int) -> int:
    """Seed of sample ``index`` in a run with base ``seed`` (a hash, so neighbouring runs do not overlap)."""
    h = hashlib.blake2b(f"{int(seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 62) - 1)


def stacked(seed: int, indices: Sequence[int], device="cpu") -> StackedRandomGenerator:
    """Generator for samples ``indices`` of run ``seed``: sample i depends only on (seed, i)."""
    return StackedRandomGenerator(device, [sample_seed(seed, i) for i in indices])


def _gen_device(generator, fallback):
    return generator.device if generator is not None else torch.device(fallback)


def randn(size, generator: Generator, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Standard normal draw of ``size`` from either kind of generator, returned on ``device``."""
    size = tuple(size)
    if isinstance(generator, StackedRandomGenerator):
        return generator.randn(size, dtype=dtype, device=device)
    return torch.randn(size, generator=generator, device=_gen_device(generator, device), dtype=dtype).to(device)


def randn_like(x: torch.Tensor, generator: Generator) -> torch.Tensor:
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


def rand(size, generator: Generator, device="cpu", dtype=torch.float32) -> torch.Tensor:
    size = tuple(size)
    if isinstance(generator, StackedRandomGenerator):
        return generator.rand(size, dtype=dtype, device=device)
    return torch.rand(size, generator=generator, device=_gen_device(generator, device), dtype=dtype).to(device)


def randint(low: int, high: int, size, generator: Generator, device="cpu") -> torch.Tensor:
    size = tuple(size)
    if isinstance(generator, StackedRandomGenerator):
        return generator.randint(low, high, size, device=device)
    return torch.randint(low, high, size, generator=generator, device=_gen_device(generator, device)).to(device)
