"""What a study notebook's set-up returns (issue #15): frozen records of profile, device, Run folder and data.

``lib.studies.epd_experiments.setup`` returns a ``StudySetup`` and ``lib.studies.cold_experiments.setup`` a
``ColdSetup``; both functions take the notebook name and then keyword arguments only.  The records are frozen, so
no cell can change the configuration a later cell (or a cache key) reads.  The one mutable part is
``StudySetup.state``: what the EPD helpers learn on the way (``train_arms``: the arms and their trained models;
``metric_table``: the quality gates, learning curves and real-image floor), read back by the claims and
``save_all``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from lib.data import ImageDataset
from lib.experiment import Run
from lib.profiles import Profile


@dataclass
class StudyState:
    """Results an EPD notebook accumulates after set-up (None until the step that sets them has run)."""
    arms: Optional[Dict[str, Any]] = None      # {arm: Arm} of the last ``train_arms``
    trained: Optional[Dict[str, list]] = None  # {arm: [TrainResult per seed]} of the last ``train_arms``
    quality: Optional[Dict[str, dict]] = None  # {arm: gate dict} of ``metric_table``
    curves: Optional[Dict[str, list]] = None   # {arm: learning-curve rows} of ``metric_table``
    floor: Optional[dict] = None               # held-out real images against the reference (FD, KID)


@dataclass(frozen=True, eq=False)
class StudySetup:
    """``lib.studies.epd_experiments.setup``: an EPD notebook's configuration and data."""
    prof: Profile                  # the profile with the notebook's budget (n_eval, train_steps, T, lite U-Net)
    dev: str                       # torch device
    run: Run                       # results/<notebook>/<profile>[_<tag>]/
    ds: ImageDataset               # training images
    x: torch.Tensor                # ds as floats in [-1, 1]
    real: torch.Tensor             # the evaluation reference: prof.n_eval images of a seeded permutation of x
    dataset: str
    weights: str                   # default sampling weights of every arm: "ema" | "raw"
    data_root: Optional[str]
    seeds: List[int]
    ctx: dict                      # the fields every claim carries (dataset, resolution, profile, scale, metric)
    budget: dict                   # {process: chain-length overrides} (empty unless T is set)
    overrides: dict                # the profile overrides as recorded in metrics.json
    state: StudyState = field(default_factory=StudyState, repr=False)


@dataclass(frozen=True, eq=False)
class ColdSetup:
    """``lib.studies.cold_experiments.setup``: a Cold notebook's configuration and data."""
    prof: Profile                          # ``cold_profile(profile, profile_overrides)``
    dev: str
    run: Run
    dataset: str
    data_root: Optional[str]
    seeds: List[int]
    train_ds: Optional[ImageDataset]       # split "fit"; None when set up with ``train_data=False``
    held_ds: ImageDataset                  # split "heldout", in its stored (class-sorted) order
    x_train: Optional[torch.Tensor]        # train_ds as floats in [-1, 1]
    x_held: torch.Tensor                   # held_ds as floats, shuffled with a fixed seed (0)
    C: int                                 # channels
    R: int                                 # resolution
    ctx: dict                              # ``claim_context(dataset, R, prof)``
