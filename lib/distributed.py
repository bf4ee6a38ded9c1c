"""Multi-process (DDP) helpers on top of ``torch.distributed``: one process per GPU, launched with ``torchrun``.

    torchrun --nproc_per_node=4 -m lib.train_cli --profile paper --process edge_preserving ...

Nothing here is home-made communication: the process group is ``torch.distributed`` (NCCL on CUDA, gloo on
CPU) and training wraps the net in ``torch.nn.parallel.DistributedDataParallel``.  Every helper also works in a
plain single process (world size 1, rank 0), so library code calls them unconditionally.

World-size independence: training draws the *global* batch's indices, flips, time steps and noise from the
same seeded generators on every rank and each rank keeps its slice (``ShardedGenerator``), so a run's random
stream, its checkpoints and its loss curve do not depend on the number of processes.
"""
from __future__ import annotations

import datetime
import os
from typing import Optional, Tuple

import torch
import torch.distributed as dist

from lib import rng as rng_lib


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on rank 0 (and in a single process): the only process that writes checkpoints, logs and files."""
    return rank() == 0


def is_distributed() -> bool:
    """True when training must be data-parallel: a process group with more than one member."""
    return world_size() > 1


def init_from_env(device: Optional[str] = None, timeout_s: float = 1800.0) -> torch.device:
    """Join the process group described by torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK,
    MASTER_ADDR/PORT) and return this process's device.  Without WORLD_SIZE > 1 nothing is initialised and
    ``device`` (default: cuda if available, else cpu) is returned, so scripts run unchanged without torchrun.
    Backend: NCCL when the device is CUDA, gloo otherwise."""
    want = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 and not is_initialized():
        return want
    if want.type == "cuda":
        want = torch.device("cuda", local_rank())
        torch.cuda.set_device(want)
    if not is_initialized():
        backend = "nccl" if want.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return want


def destroy() -> None:
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (a new tensor; ``x`` itself in a single process).  SUM then divide: gloo has
    no AVG."""
    if not is_distributed():
        return x
    y = x.clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / world_size()


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0 in rank order; ranks may hold different numbers of rows
    (the trailing dims must agree).  Returns a tensor on ``x``'s device, identical on every rank."""
    if not is_distributed():
        return x
    comm_device = _comm_device(x.device)
    n = torch.tensor([x.shape[0]], device=comm_device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    sizes = [int(s.item()) for s in sizes]
    pad = torch.zeros((max(sizes), *x.shape[1:]), dtype=x.dtype, device=comm_device)
    pad[:x.shape[0]] = x.to(comm_device)
    parts = [torch.empty_like(pad) for _ in sizes]
    dist.all_gather(parts, pad)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(x.device)


def _comm_device(device: torch.device) -> torch.device:
    """NCCL communicates CUDA tensors only, gloo CPU tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(n: int, r: Optional[int] = None, ws: Optional[int] = None) -> Tuple[int, int]:
    """[lo, hi) of ``n`` items owned by rank ``r`` of ``ws``: contiguous, sizes differ by at most one."""
    r = rank() if r is None else r
    ws = world_size() if ws is None else ws
    base, extra = divmod(n, ws)
    lo = r * base + min(r, extra)
    return lo, lo + base + (1 if r < extra else 0)


# ----------------------------------------------------------------------------------------------------------

class ShardedGenerator(rng_lib.StackedRandomGenerator):
    """A ``torch.Generator`` that draws for the global batch and returns this rank's rows.

    A draw whose first dim equals the local batch size is drawn at the global size (same values as one
    process drawing the whole batch) and sliced to rows [lo, hi); any other draw (e.g. a pattern shared by
    the batch) is drawn as is, identically on every rank.  It is a ``StackedRandomGenerator`` only so that
    ``lib.rng``'s functions route every draw through it.  Caveat: with a local batch of 1, a shared draw of
    first dim 1 would be mistaken for a per-row draw.
    """

    def __init__(self, generator: torch.Generator, global_batch: int, lo: int, hi: int):
        self.generator = generator
        self.device = generator.device
        self.global_batch, self.lo, self.hi = global_batch, lo, hi
        self.seeds = []   # not seed-addressed: Cold's run_generator (sampling only) must not be used with it
        self.generators = []

    def __len__(self) -> int:
        return self.hi - self.lo

    def _draw(self, fn, size, device, **kw):
        size = tuple(size)
        local = size and size[0] == self.hi - self.lo
        full = (self.global_batch, *size[1:]) if local else size
        out = fn(full, generator=self.generator, device=self.device, **kw)
        return (out[self.lo:self.hi] if local else out).to(device or self.device)

    def randn(self, size, dtype=torch.float32, device=None):
        return self._draw(torch.randn, size, device, dtype=dtype)

    def rand(self, size, dtype=torch.float32, device=None):
        return self._draw(torch.rand, size, device, dtype=dtype)

    def randint(self, low, high, size, device=None):
        return self._draw(lambda s, **kw: torch.randint(low, high, s, **kw), size, device)
