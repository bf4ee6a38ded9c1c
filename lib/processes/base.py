"""The one interface every diffusion / degradation process implements.

Conventions shared by all processes (read this before adding one):

* **Images** handed to a process (``x0`` in ``q_sample``/``loss``, ``image`` in ``from_image``) are
  ``[B, C, H, W]`` float tensors in **[-1, 1]**: what ``lib.data`` yields.  A process may work in its own
  *state space* internally (IHDM works in [0, 1]); ``from_image`` / ``to_image`` convert between the two.
  ``prior`` and ``step`` take and return states; the sampler calls ``to_image`` once at the end.
* **Time** ``t`` is an integer index.  ``num_steps`` is the number of training time indices
  (``t in {0, ..., num_steps-1}`` for DDPM/EPD; each process documents its own range).  Sampling walks the
  ``(t, t_prev)`` pairs returned by ``sampling_timesteps``; the last pair ends at the process's clean index
  (``-1`` for DDPM/EPD, whose index 0 is already one noising step; ``0`` for IHDM, BNDM and Cold).
* **The network is passed per call**: ``net(x, t_net)`` with ``t_net`` a float tensor ``[B]``; each process
  decides what it feeds as ``t_net`` (``net_time``) and how many output channels it needs (``out_channels``).
* **Randomness is always an argument**: ``generator`` is a ``torch.Generator`` or a
  ``lib.rng.StackedRandomGenerator`` (one generator per sample, so sample i depends only on (seed, i)).
  Draw noise only through ``lib.rng.randn_like`` / ``lib.rng.randint`` so both work.
* Schedules are built in **float64** (numpy) and read with ``extract``; computations that need precision
  (posteriors) may run in float64 and cast back to the input dtype.
* ``loss`` returns the **per-sample** loss ``[B]``; the training loop takes the mean.
* Every process has exactly one frozen dataclass config (``config_cls``) whose defaults are the paper's
  full-scale settings; profiles override fields.  ``config_dict()`` is what checkpoints store and check.
* **What studies need is part of the interface**, so no study code branches on a process name: the config
  field holding the step count (``steps_field``) and ``budget_overrides`` for a reduced budget, whether it takes
  a profile's T (``follows_profile_T``), its official optimiser settings (``training_defaults``), DDIM support
  (``supports_ddim``), and for SDEdit ``signal_level`` / ``sdedit_top``.  Adding a process is one module plus
  its import in ``lib/processes/__init__.py`` (``tests/test_process_interface.py`` adds a toy one).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np
import torch

from lib import rng as rng_lib


# ----------------------------------------------------------------------------------------------------------
# Helpers shared by the process files.

def extract(arr: np.ndarray, t: torch.Tensor, x: torch.Tensor, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Read float64 schedule ``arr`` at integer indices ``t`` [B] and reshape to broadcast over ``x``."""
    out = torch.as_tensor(arr, dtype=torch.float64, device=t.device)[t.long()]
    return out.to(dtype or x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def as_time_tensor(t, batch: int, device) -> torch.Tensor:
    """Accept an int or a [B] tensor of time indices; return a long tensor [B] on ``device``."""
    if isinstance(t, torch.Tensor):
        t = t.to(device=device, dtype=torch.long)
        return t.expand(batch) if t.ndim == 0 else t
    return torch.full((batch,), int(t), device=device, dtype=torch.long)


def sum_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Sum over every axis but the batch axis: [B, ...] -> [B]."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def mean_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the batch axis: [B, ...] -> [B]."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


@dataclass
class StepOutput:
    """What one reverse step returns: the next state and the network's current estimate of x0 (state space)."""
    x_prev: torch.Tensor
    x0_hat: torch.Tensor


# ----------------------------------------------------------------------------------------------------------

class DiffusionProcess:
    """Base class: holds the config and float64 schedules; never holds the network or a generator."""

    name: ClassVar[str] = "base"
    config_cls: ClassVar[type] = object
    # A small but valid configuration (few steps) for smoke runs and the contract tests.
    small_overrides: ClassVar[dict] = {}
    # What the studies need to know about a process, so that no study code branches on a process name:
    steps_field: ClassVar[Optional[str]] = None   # Config field that sets the number of steps (T, K or S).
    follows_profile_T: ClassVar[bool] = False     # Takes a profile's T (β range rescaled): DDPM and EPD.
    supports_ddim: ClassVar[bool] = False         # Implements ``ddim_timesteps`` / ``ddim_step``.
    family: ClassVar[str] = ""                    # Group for side-by-side figures ("": the process's own name).
    # Optimiser settings of the official code (lib.study.train_config; the CPU profiles replace the lr).
    training_defaults: ClassVar[dict] = dict(optimizer="adam", lr=2e-5)

    def __init__(self, config: Any = None, **overrides):
        if config is None:
            config = self.config_cls()
        if overrides:
            valid = {f.name for f in dataclasses.fields(self.config_cls)}
            unknown = sorted(set(overrides) - valid)
            if unknown:
                raise ValueError(f"{self.name}: unknown config field(s) {unknown}; valid fields: {sorted(valid)}")
            config = dataclasses.replace(config, **overrides)
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name}: config must be a {self.config_cls.__name__}, got {type(config).__name__}")
        self.config = config

    # --- description ---------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        """Number of training time indices."""
        raise NotImplementedError

    @classmethod
    def default_steps(cls) -> Optional[int]:
        """The config default of ``steps_field`` (None when the process has no step count to budget)."""
        return getattr(cls.config_cls(), cls.steps_field) if cls.steps_field else None

    @classmethod
    def budget_overrides(cls, steps: int, resolution: int) -> dict:
        """Config overrides that run the process with ``steps`` steps on ``resolution``-px images (a reduced
        budget); ``{}`` keeps the defaults."""
        return {cls.steps_field: int(steps)} if cls.steps_field else {}

    @property
    def sdedit_top(self) -> int:
        """The highest index an SDEdit hijack may start from."""
        return self.num_steps - 1

    def signal_level(self, t: int) -> float:
        """The coefficient of x0 in x_t at index ``t``: how much of a guide is left (SDEdit)."""
        raise NotImplementedError(f"{self.name} does not define signal_level")

    def config_dict(self) -> dict:
        """JSON-able description stored in checkpoints and results; includes the process name."""
        d = dataclasses.asdict(self.config)
        return {"process": self.name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}}

    def out_channels(self, data_channels: int) -> int:
        """Number of output channels the network needs for data with ``data_channels`` channels."""
        return data_channels

    @property
    def batch_independent(self) -> bool:
        """Whether sample i depends only on its own noise (False when a process couples a batch)."""
        return True

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """What the network receives as its time input for integer indices ``t`` [B] (float [B])."""
        return t.float()

    # --- state space -------------------------------------------------------------------------------------
    def from_image(self, image: torch.Tensor) -> torch.Tensor:
        """[-1, 1] image -> process state space (identity for most processes)."""
        return image

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """Process state -> [-1, 1] image, clipped."""
        return x.clamp(-1.0, 1.0)

    # --- training ------------------------------------------------------------------------------------------
    def sample_t(self, batch: int, generator, device) -> torch.Tensor:
        """Training time indices [B], uniform over the training range by default."""
        return rng_lib.randint(0, self.num_steps, (batch,), generator, device)

    def training_time(self, x0: torch.Tensor, t, generator) -> torch.Tensor:
        """The loss's time indices: ``t`` as a [B] long tensor, drawn with ``sample_t`` when it is None."""
        if t is None:
            t = self.sample_t(x0.shape[0], generator, x0.device)
        return as_time_tensor(t, x0.shape[0], x0.device)

    def q_sample(self, x0: torch.Tensor, t, noise: Optional[torch.Tensor] = None, generator=None) -> torch.Tensor:
        """Draw (or, for deterministic degradations, compute) x_t given the [-1, 1] image x0.

        ``noise`` is the process's own randomness in its own form (ε for Gaussian processes; each process
        documents it); when it is None it is drawn from ``generator``."""
        raise NotImplementedError

    def loss(self, net, x0: torch.Tensor, t=None, noise: Optional[torch.Tensor] = None, generator=None) -> torch.Tensor:
        """Per-sample training loss [B]; ``t`` and ``noise`` are drawn from ``generator`` when not given."""
        raise NotImplementedError

    # --- sampling --------------------------------------------------------------------------------------------
    def fit_prior(self, data: torch.Tensor) -> None:
        """Fit whatever the prior needs from training images ([N, C, H, W] in [-1, 1]); no-op by default."""

    def prior(self, shape, generator, x0: Optional[torch.Tensor] = None, device=None) -> torch.Tensor:
        """Initial sampling state.  ``x0`` (images in [-1, 1]) is used by data-dependent priors."""
        raise NotImplementedError

    def sampling_timesteps(self, start: Optional[int] = None) -> list[tuple[int, int]]:
        """Ordered (t, t_prev) pairs for the reverse process; ``start`` begins below the prior (SDEdit)."""
        raise NotImplementedError

    def predict_x0(self, net, x_t: torch.Tensor, t) -> torch.Tensor:
        """The network's estimate of x0 (state space) at x_t."""
        raise NotImplementedError

    def step(self, net, x_t: torch.Tensor, t: int, t_prev: int, generator) -> StepOutput:
        """One reverse step from index t to t_prev."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
