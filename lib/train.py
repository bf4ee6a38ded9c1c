"""One training loop for every process: fused Adam(W), EMA, optional clipping/warm-up, bf16 autocast (CUDA, and
CPUs with native bf16: ``TrainConfig.precision``, ``lib.precision``),
atomic and resumable checkpoints that carry (and check) the process, network and training configs.

    result = train(process, net, data, TrainConfig(steps=2000, batch_size=64), run_dir="cache/runs/x")

Resuming: calling ``train`` again with the same ``run_dir`` continues from ``run_dir/checkpoint.pt``; the
data order, flips, time steps, noise and dropout continue exactly as in an uninterrupted run (all generator
states are checkpointed).  A checkpoint written under a different process / network / training config is
refused with ``CheckpointMismatchError`` (pass ``allow_mismatch=True`` to override deliberately).

Data parallel (``torchrun --nproc_per_node=N``, see ``lib.distributed``): when a process group with more than
one member is initialised, the net is wrapped in ``DistributedDataParallel`` and rank r trains on rows
[r·B/N, (r+1)·B/N) of every global batch of B = ``config.batch_size``.  The indices, flips, time steps and
noise of the *whole* global batch are drawn from the shared seeded generators on every rank and each rank keeps
its slice, so the random stream, the checkpoint and the loss curve do not depend on N (up to float reduction
order): a checkpoint written with N processes resumes with M.  Rank 0 alone writes the checkpoint and calls
``on_log``.  (Dropout masks come from each rank's global torch RNG and are the one thing that does depend on
N; the EPD/DDPM paper nets use dropout 0.1, so compare N-process curves statistically there.  A process that
couples the images of a batch -- EPD with the official code's ``edge_norm="batch"`` -- sees the per-rank batch
under DDP, so its losses depend on N too; ``edge_norm="image"`` removes that, and train() warns.)

``config.compile``: "on" runs the training forward through ``torch.compile``; "auto" does so on CUDA only.
A compile failure (at wrapping or in a compiled forward call) is reported once as a warning and training
continues eagerly (a failure inside the compiled backward is not caught).
"""
from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from lib import distributed, io
from lib import precision as precision_lib
from lib import rng as rng_lib
from lib.processes import DiffusionProcess, process_from_dict

CHECKPOINT_NAME = "checkpoint.pt"
# Fields of TrainConfig that may change between a run and its resumption (extending a run is allowed).
_RESUMABLE_FIELDS = ("steps", "ckpt_every", "log_every", "compile")
_COMPILE_MODES = ("off", "on", "auto")


class CheckpointMismatchError(ValueError):
    """A checkpoint was written under a different configuration than the one asked for."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf; the run stopped and the last good checkpoint was kept."""


# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    steps: int = 80_000                 # Optimiser steps (EPD AFHQ-Cat 128²: 1000 epochs ≈ 80k at batch 64).
    batch_size: int = 64                # Global batch (EPD paper: 64 in pixel space).
    lr: float = 2e-5                    # EPD/DDPM pixel space 2e-5; IHDM 1e-4..2e-4; BNDM 1e-4.
    optimizer: str = "adam"             # "adam" (EPD, IHDM) | "adamw" (BNDM, weight decay 0.01).
    weight_decay: float = 0.0           # Adam(W) weight decay.
    warmup_steps: int = 0               # Linear lr warm-up (IHDM: 5000; EPD: none).
    grad_clip: Optional[float] = None   # Gradient-norm clip (IHDM, BNDM: 1.0; EPD: none).
    ema_decay: float = 0.999            # EMA of the weights (EPD config value; kept beside the raw weights).
    ema_warmup: bool = False            # IHDM's min(decay, (1+n)/(10+n)).
    hflip: bool = True                  # Random horizontal flips (p = 0.5).
    seed: int = 0                       # Seeds data order, flips, t, noise and dropout.
    ckpt_every: int = 1000              # Checkpoint interval in steps (also written at the end).
    log_every: int = 50                 # Loss-log interval in steps.
    amp: bool = True                    # False: float32 whatever ``precision`` says (legacy switch).
    precision: str = "auto"             # "auto" (bf16 autocast on CUDA and on CPUs with native bf16, lib.precision)
                                        # | "bf16" | "fp32".  GroupNorm and the loss stay float32.
    channels_last: bool = True          # channels_last memory format (CUDA only).
    compile: str = "off"                # torch.compile the training forward: "off" | "on" | "auto" (= on for CUDA).

    def __post_init__(self):
        if isinstance(self.compile, bool):
            object.__setattr__(self, "compile", "on" if self.compile else "off")
        if self.compile not in _COMPILE_MODES:
            raise ValueError(f"compile must be one of {_COMPILE_MODES} (or a bool), got {self.compile!r}")
        if self.precision not in precision_lib.PRECISIONS:
            raise ValueError(f"precision must be one of {precision_lib.PRECISIONS}, got {self.precision!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        for name in ("steps", "batch_size", "ckpt_every", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {v!r}")


@dataclass
class TrainResult:
    net: torch.nn.Module
    ema: torch.nn.Module
    log: List[Dict[str, float]] = field(default_factory=list)
    step: int = 0
    checkpoint: Optional[Path] = None
    snapshots: Dict[int, Path] = field(default_factory=dict)   # {step: EMA snapshot file} (``snapshot_steps``)
    precision: str = "fp32"             # The precision training actually ran in ("bf16" | "fp32").


def used_precision_of(config: TrainConfig, device) -> str:
    """"bf16" or "fp32": what ``train`` runs ``config`` in on ``device`` (``amp=False`` forces float32)."""
    return precision_lib.resolve(config.precision if config.amp else "fp32", device)


def snapshot_path(run_dir, step: int) -> Path:
    return Path(run_dir) / f"ema_step{int(step):08d}.pt"


def list_snapshots(run_dir) -> Dict[int, Path]:
    """{step: path} of the EMA snapshots kept in ``run_dir``."""
    return {int(p.stem[len("ema_step"):]): p for p in sorted(Path(run_dir).glob("ema_step*.pt"))}


def load_snapshot(net: torch.nn.Module, path) -> torch.nn.Module:
    """A copy of ``net`` holding the EMA weights of a snapshot, in eval mode."""
    out = copy.deepcopy(net)
    out.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["ema"])
    return out.eval()


# ----------------------------------------------------------------------------------------------------------

def _net_config(net) -> Optional[dict]:
    cfg = getattr(net, "config", None)
    if cfg is None:
        return None
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)


def _as_uint8_or_float(data) -> torch.Tensor:
    images = getattr(data, "images", data)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise TypeError("data must be a [N, C, H, W] tensor (uint8, or float in [-1, 1]) or an ImageDataset")
    return images


def _batch(images: torch.Tensor, idx: torch.Tensor, flip: torch.Tensor, device) -> torch.Tensor:
    x = images[idx].to(device, non_blocking=True)
    x = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()
    return torch.where(flip.to(device).view(-1, 1, 1, 1), x.flip(-1), x)


def _diff(a: dict, b: dict) -> List[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: checkpoint={a.get(k)!r} requested={b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def check_compatible(ckpt: dict, process: DiffusionProcess, net=None, config: Optional[TrainConfig] = None,
                     allow_mismatch: bool = False) -> None:
    """Refuse a checkpoint whose process / network / training config differs from the requested one (U15)."""
    problems = _diff(ckpt["process"], process.config_dict())
    if net is not None and _net_config(net) is not None and ckpt.get("net_config") is not None:
        problems += [f"net.{p}" for p in _diff(ckpt["net_config"], _net_config(net))]
    if config is not None:
        a = {k: v for k, v in {"precision": "auto", **ckpt["train_config"]}.items()   # "auto": before the field
             if k not in _RESUMABLE_FIELDS}
        b = {k: v for k, v in dataclasses.asdict(config).items() if k not in _RESUMABLE_FIELDS}
        problems += [f"train.{p}" for p in _diff(a, b)]
    if problems and not allow_mismatch:
        raise CheckpointMismatchError(
            "checkpoint was written with a different configuration (refusing to load it; use a new run "
            "directory, or allow_mismatch=True to load it anyway):\n  " + "\n  ".join(problems))


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def build_from_checkpoint(path, device="cpu", use_ema: bool = True):
    """(process, net) rebuilt from a checkpoint; the net holds the EMA weights unless ``use_ema=False``."""
    from lib.unet import UNet, UNetConfig
    ckpt = load_checkpoint(path)
    process = process_from_dict(ckpt["process"])
    net = UNet(UNetConfig.from_dict(ckpt["net_config"]))
    net.load_state_dict(ckpt["ema" if use_ema else "net"])
    return process, net.to(device).eval()


def _rng_state(gens: Dict[str, torch.Generator]) -> dict:
    state = {k: g.get_state() for k, g in gens.items()}
    state["torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(gens: Dict[str, torch.Generator], state: dict) -> None:
    for k, g in gens.items():
        g.set_state(state[k])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class CompiledOrEager:
    """Call ``module`` through ``torch.compile`` when asked; on any compile failure warn once, run eagerly."""

    def __init__(self, module: torch.nn.Module, enabled: bool):
        self.module, self.compiled = module, None
        if enabled:
            try:
                self.compiled = torch.compile(module)
            except Exception as e:  # noqa: BLE001 -- any backend/toolchain failure means: run eagerly
                self._fall_back(e)

    def _fall_back(self, e: Exception) -> None:
        self.compiled = None
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                      f"training continues in eager mode", RuntimeWarning, stacklevel=3)

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:  # noqa: BLE001
                self._fall_back(e)
        return self.module(*args, **kwargs)


def _use_compile(mode: str, device: torch.device) -> bool:
    return mode == "on" or (mode == "auto" and device.type == "cuda")


# ----------------------------------------------------------------------------------------------------------

def train(process: DiffusionProcess, net: torch.nn.Module, data, config: TrainConfig = TrainConfig(), *,
          run_dir=None, device="cpu", resume: bool = True, allow_mismatch: bool = False,
          stop_after: Optional[int] = None, progress: bool = True,
          on_log: Optional[Callable[[Dict[str, float]], None]] = None,
          snapshot_steps: Sequence[int] = ()) -> TrainResult:
    """Train ``net`` on ``data`` ([N,C,H,W] uint8 or [-1,1] float, or an ImageDataset) for ``config.steps``.

    run_dir     -- where ``checkpoint.pt`` is written (atomically) every ``ckpt_every`` steps and at the end;
                   with ``resume`` an existing checkpoint there is continued.  None: no checkpoints.
    stop_after  -- stop after this many steps *in this call* (used to split long runs; the checkpoint resumes).
    snapshot_steps -- steps at which the EMA weights are also kept as ``run_dir/ema_step<step>.pt`` (the
                   learning curve of ``lib.quality`` samples them after training); listed in ``result.snapshots``.
    """
    device = torch.device(device)
    ddp = distributed.is_distributed()
    main = distributed.is_main()
    ws, rk = distributed.world_size(), distributed.rank()
    if config.batch_size % ws:
        raise ValueError(f"global batch_size {config.batch_size} is not divisible by the world size {ws}: "
                         f"choose a batch_size that is a multiple of the number of processes")
    local_b = config.batch_size // ws
    lo, hi = rk * local_b, (rk + 1) * local_b
    images = _as_uint8_or_float(data)
    if images.shape[0] == 0:
        raise ValueError("data is empty")
    cuda = device.type == "cuda"
    if cuda:
        images = images.to(device)  # small datasets live on the GPU: no host transfer per step
    net = net.to(device)
    if cuda and config.channels_last:
        net = net.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    # Fused Adam(W) on CUDA and CPU (one kernel over all tensors: 17 -> 4 ms per CPU step, same update rule
    # up to float rounding; test_train checks it against the for-each implementation).
    opt_kw = {"fused": True} if device.type in ("cuda", "cpu") else {}
    opt = opt_cls(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, **opt_kw)

    gen_device = device if cuda else torch.device("cpu")
    gens = {"data": torch.Generator("cpu").manual_seed(config.seed),
            "process": torch.Generator(gen_device).manual_seed(config.seed + 1)}
    torch.manual_seed(config.seed + 2)  # dropout
    step, log, pending = 0, [], []
    ckpt_path = Path(run_dir) / CHECKPOINT_NAME if run_dir is not None else None
    if ckpt_path is not None and resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        check_compatible(ckpt, process, net, config, allow_mismatch)
        net.load_state_dict(ckpt["net"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        _set_rng_state(gens, ckpt["rng"])
        step, log = ckpt["step"], ckpt["log"]
        pending = ckpt.get("pending_losses", [])
    train_net = net
    if ddp:
        # own dropout stream per rank (the restored torch state is rank 0's), reproducible for a given N
        torch.manual_seed(rng_lib.sample_seed(config.seed + 2, rk * 1_000_003 + step))
        # after loading: DDP broadcasts rank 0's weights at construction
        train_net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if cuda else None)
    ema_params, net_params = list(ema.parameters()), [p.detach() for p in net.parameters()]
    ema_buffers, net_buffers = list(ema.buffers()), list(net.buffers())
    fwd = CompiledOrEager(train_net, _use_compile(config.compile, device))
    if ddp and main and not getattr(process, "batch_independent", True):
        warnings.warn(f"{process.name} couples the images of a batch (e.g. EPD edge_norm='batch'); under DDP each "
                      f"rank sees its {local_b}-image shard, so results depend on the world size", RuntimeWarning)
    sharded = distributed.ShardedGenerator(gens["process"], config.batch_size, lo, hi) if ddp else None

    def save():
        if ckpt_path is None or not main:
            return
        io.torch_save({"step": step, "net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                       "rng": _rng_state(gens), "log": log, "pending_losses": [float(v) for v in window],
                       "process": process.config_dict(),
                       "net_config": _net_config(net), "train_config": dataclasses.asdict(config),
                       "precision": used_precision}, ckpt_path)

    end = config.steps if stop_after is None else min(config.steps, step + stop_after)
    used_precision = used_precision_of(config, device)
    autocast = precision_lib.autocast(device, used_precision)
    net.train()
    window: List[torch.Tensor] = [torch.tensor(v, device=device) for v in (pending if step else [])]
    t_last = time.perf_counter()
    bar = tqdm(total=config.steps, initial=step, desc=f"train {process.name}", disable=not (progress and main))
    while step < end:
        idx = torch.randint(0, images.shape[0], (config.batch_size,), generator=gens["data"])
        flip = (torch.rand(config.batch_size, generator=gens["data"]) < 0.5) & config.hflip
        if ddp:
            idx, flip = idx[lo:hi], flip[lo:hi]
        x0 = _batch(images, idx.to(images.device), flip, device)
        if cuda and config.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        if config.warmup_steps:
            for g in opt.param_groups:
                g["lr"] = config.lr * min(1.0, (step + 1) / config.warmup_steps)
        with autocast:
            if ddp:  # t of the global batch from the shared generator (keeps e.g. BNDM's antithetic pairs)
                t = process.sample_t(config.batch_size, gens["process"], device)[lo:hi]
                loss = process.loss(fwd, x0, t=t, generator=sharded).float().mean()
            else:
                loss = process.loss(fwd, x0, generator=gens["process"]).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        opt.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step)) if config.ema_warmup else config.ema_decay
        with torch.no_grad():  # one fused kernel per op for all tensors (same values as a per-tensor loop)
            torch._foreach_lerp_(ema_params, net_params, 1.0 - decay)
            if ema_buffers:
                torch._foreach_copy_(ema_buffers, net_buffers)
        window.append(loss.detach())
        step += 1
        if step in snapshot_steps and ckpt_path is not None and main:
            io.torch_save({"step": step, "ema": ema.state_dict(), "net_config": _net_config(net)},
                          snapshot_path(ckpt_path.parent, step))
        bar.update(1)
        # Check the pending losses at log points and before every checkpoint, so no NaN state is ever saved.
        at_log = step % config.log_every == 0 or step == config.steps
        at_ckpt = step % config.ckpt_every == 0 or step == end
        if at_log or at_ckpt:
            losses = torch.stack(window)  # the only host sync, once per interval
            if ddp:  # global-batch means, so the log and pending losses do not depend on the world size
                losses = distributed.all_reduce_mean(losses)
                window[:] = list(losses.unbind())
            if not bool(torch.isfinite(losses).all()):
                bar.close()
                raise NonFiniteLossError(
                    f"non-finite loss at or before step {step} of {process.name}; the run stopped and the last "
                    f"good checkpoint is kept at {ckpt_path} (lower the lr, set grad_clip, or check the data)")
        if at_log:
            now = time.perf_counter()
            entry = {"step": step, "loss": losses.mean().item(), "sec_per_step": (now - t_last) / len(window)}
            window.clear()
            t_last = now
            log.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.4g}")
            if on_log is not None and main:
                on_log(entry)
        if at_ckpt and step != end:
            save()
    bar.close()
    save()
    distributed.barrier()  # the final checkpoint exists before any rank returns
    net.eval()
    return TrainResult(net=net, ema=ema, log=log, step=step, checkpoint=ckpt_path,
                       snapshots=list_snapshots(ckpt_path.parent) if ckpt_path is not None else {},
                       precision=used_precision)
