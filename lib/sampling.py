"""Samplers: one loop over ``process.sampling_timesteps`` for every process, plus DDIM and seed-addressed generation.

All samplers take the network and the generator as arguments and run under ``torch.no_grad``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from lib import distributed
from lib import precision as precision_lib
from lib import rng as rng_lib
from lib.processes.base import DiffusionProcess


def _autocast(device: torch.device, precision: Optional[str] = None):
    """bf16 autocast for ``precision`` (``lib.precision``; "auto": CUDA and CPUs with native bf16).  None: the
    historical default, bf16 on CUDA and float32 on CPU (so seed-addressed CPU samples keep their bits)."""
    if precision is None:
        precision = "bf16" if device.type == "cuda" else "fp32"
    return precision_lib.autocast(device, precision)


def _float_net(net):
    """Wrap ``net`` so its output is float32 whatever autocast produced (the processes do float64/32 math)."""
    return lambda x, t: net(x, t).float()


@torch.no_grad()
def sample(process: DiffusionProcess, net, shape: Sequence[int], generator, *, x_init: Optional[torch.Tensor] = None,
           start: Optional[int] = None, prior_data: Optional[torch.Tensor] = None, device="cpu",
           callback: Optional[Callable] = None, progress: bool = True,
           precision: Optional[str] = None) -> torch.Tensor:
    """Run the reverse process and return [-1, 1] images.

    x_init      -- start from this state instead of ``process.prior`` (e.g. a degraded image, SDEdit)
    start       -- first time index of the reverse loop (defaults to the top of the schedule)
    prior_data  -- images handed to data-dependent priors (IHDM, Cold)
    callback    -- called as ``callback(t, x_t, x0_hat)`` after every step (trajectories, x̂0 figures)
    precision   -- "auto" | "bf16" | "fp32" (``lib.precision``); None: bf16 on CUDA, float32 on CPU
    """
    device = torch.device(device)
    x = process.prior(tuple(shape), generator, x0=prior_data, device=device) if x_init is None else x_init.to(device)
    f = _float_net(net)
    with _autocast(device, precision):
        for t, t_prev in tqdm(process.sampling_timesteps(start), desc=f"sample {process.name}", leave=False,
                              disable=not progress):
            out = process.step(f, x, t, t_prev, generator)
            x = out.x_prev
            if callback is not None:
                callback(t, x, out.x0_hat)
    return process.to_image(x)


@torch.no_grad()
def sample_ddim(process, net, x_init: torch.Tensor, num_steps: int, generator=None, *, eta: float = 0.0,
                start: Optional[int] = None, callback: Optional[Callable] = None, progress: bool = True) -> torch.Tensor:
    """DDIM (η = 0: deterministic) on a process with ``supports_ddim`` (``ddim_timesteps`` / ``ddim_step``: DDPM)."""
    if not process.supports_ddim:
        raise ValueError(f"process {process.name!r} has no DDIM sampler; use lib.sampling.sample")
    x = x_init
    f = _float_net(net)
    with _autocast(x.device):
        for t, t_prev in tqdm(process.ddim_timesteps(num_steps, start), desc=f"ddim {process.name}", leave=False,
                              disable=not progress):
            out = process.ddim_step(f, x, t, t_prev, generator, eta=eta)
            x = out.x_prev
            if callback is not None:
                callback(t, x, out.x0_hat)
    return process.to_image(x)


@torch.no_grad()
def generate(process: DiffusionProcess, net, n: int, image_shape: Sequence[int], seed: int, *, batch_size: int = 64,
             device="cpu", prior_data: Optional[torch.Tensor] = None, first_index: int = 0,
             progress: bool = True, split: Optional[bool] = None, precision: Optional[str] = None) -> torch.Tensor:
    """Generate ``n`` images; image i depends only on (seed, first_index + i), not on ``batch_size``.

    For data-dependent priors, ``prior_data`` must hold one image per generated sample (row i for image i).
    Returns a CPU float tensor [n, C, H, W] in [-1, 1].

    split -- under a multi-process group (``lib.distributed``; default: split whenever one is active) each
             rank generates a contiguous share of the indices and the shares are gathered in index order,
             so every rank returns the same tensor as a single process would.
    """
    if split is None:
        split = distributed.is_distributed()
    if split and distributed.is_distributed():
        lo, hi = distributed.shard(n)
        pd = None if prior_data is None else prior_data[lo:hi]
        part = generate(process, net, hi - lo, image_shape, seed, batch_size=batch_size, device=device,
                        prior_data=pd, first_index=first_index + lo,
                        progress=progress and distributed.is_main(), split=False, precision=precision)
        return distributed.all_gather_cat(part)
    out = []
    bar = tqdm(total=n, desc=f"generate {process.name}", disable=not progress)
    for lo in range(0, n, batch_size):
        idx = list(range(first_index + lo, first_index + min(lo + batch_size, n)))
        gen = rng_lib.stacked(seed, idx, device=device)
        pd = None if prior_data is None else prior_data[lo:lo + len(idx)].to(device)
        out.append(sample(process, net, (len(idx), *image_shape), gen, prior_data=pd, device=device,
                          progress=False, precision=precision).cpu())
        bar.update(len(idx))
    bar.close()
    return torch.cat(out) if out else torch.empty((0, *image_shape))
