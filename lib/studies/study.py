"""Building blocks the study notebooks call, so that each notebook stays thin.

Each function does one lib-level job (train a model under a profile, sample it, draw a forward process) and
returns plain objects; the notebooks only wire them together and save artifacts.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

import torch

from lib.processes import PROCESSES, DiffusionProcess, make_process
from lib.profiles import Profile
from lib.sampling import generate
from lib.train import TrainConfig, TrainResult, train, used_precision_of
from lib.unet import UNet

COMPILED_PROFILES = ("gpu", "paper")   # profiles whose training and sampling use torch.compile on CUDA


def process_for_profile(name: str, profile: Profile, **overrides) -> DiffusionProcess:
    """A registered process with the profile's number of steps where the process follows the profile's T
    (``follows_profile_T``: DDPM, EPD; for a reduced T the β range is scaled so the chain still ends near noise,
    ``budget_overrides``); smoke runs use the process's ``small_overrides``."""
    cls = PROCESSES[name]
    base = {}
    if profile.name == "smoke":
        base.update(cls.small_overrides)
    elif cls.follows_profile_T and profile.name != "paper":
        base.update(cls.budget_overrides(profile.T, resolution=0))
    return make_process(name, **{**base, **overrides})


def train_config(name: str, profile: Profile, seed: int, data=None, **overrides) -> TrainConfig:
    """The profile's training config for process ``name``; ``data`` (an ImageDataset or a dataset name) turns
    horizontal flips off where they are not label-preserving (digits: ``lib.data.hflip_allowed``)."""
    from lib.data import hflip_allowed
    # the official code's optimiser settings (epd_spec §4.2, baselines_spec §2.5/§3.6, cold_spec §5.3);
    # profiles other than `paper` replace lr/steps/batch with their own budget
    fam = dict(PROCESSES[name].training_defaults)
    if data is not None and not hflip_allowed(data):
        fam["hflip"] = False
    if profile.name != "paper":
        fam.update(lr=profile.lr, warmup_steps=min(fam.get("warmup_steps", 0), profile.train_steps // 10))
    cfg = dict(steps=profile.train_steps, batch_size=profile.batch_size, seed=seed, ema_decay=profile.ema_decay,
               precision=profile.precision,
               ckpt_every=max(1, min(1000, profile.train_steps // 4)), log_every=max(1, profile.train_steps // 50))
    if profile.name in COMPILED_PROFILES:
        cfg["compile"] = "auto"  # torch.compile on CUDA (eager fallback); nothing changes on a CPU
    return TrainConfig(**{**cfg, **fam, **overrides})


def model_key(process: DiffusionProcess, net_config: dict, train_cfg: TrainConfig, images: torch.Tensor) -> str:
    """Content key of a trained model: process, network and training configs, the data and the model code."""
    import hashlib
    import json
    from lib.experiment import MODEL_CODE, code_hash
    h = hashlib.sha256()
    h.update(json.dumps([process.config_dict(), net_config, dataclasses.asdict(train_cfg)], sort_keys=True,
                        default=str).encode())
    h.update(str(tuple(images.shape)).encode())
    h.update(images.contiguous().cpu().numpy().tobytes())
    h.update(code_hash(MODEL_CODE).encode())
    return f"{process.name}-{h.hexdigest()[:16]}"


def train_model(process: DiffusionProcess, data, profile: Profile, seed: int, run_dir: Optional[Path] = None,
                device="cpu", progress: bool = True, snapshots: int = 4, **train_overrides) -> TrainResult:
    """Train a fresh profile-sized U-Net on ``data``.

    Models are shared between notebooks: unless ``run_dir`` is given, the checkpoint lives in
    ``<RUNS_DIR>/models/<model_key>``, so the same (process, net, training, data, code) is trained once and every
    notebook that needs it (Table 1, the ablations' default arm, ...) reuses or resumes it.
    ``snapshots`` EMA snapshots are kept beside it at k/snapshots of the steps (``lib.metrics.quality``'s learning
    curve; ``result.snapshots``); 0 keeps none.
    """
    from lib.experiment import RUNS_DIR
    images = getattr(data, "images", data)
    c = images.shape[1]
    torch.manual_seed(seed)
    net = UNet(profile.unet(c, process.out_channels(c)))
    cfg = train_config(process.name, profile, seed, data=data, **train_overrides)
    # the precision actually used on this device, so the model key (and the checkpoint) name it: a bf16 model
    # and a float32 model are different models
    cfg = dataclasses.replace(cfg, precision=used_precision_of(cfg, device))
    if run_dir is None:
        run_dir = RUNS_DIR / "models" / model_key(process, net.config.to_dict(), cfg, images)
    from lib.metrics.quality import snapshot_steps
    snaps = snapshot_steps(cfg.steps, snapshots) if snapshots else ()
    result = train(process, net, data, cfg, run_dir=run_dir, device=device, progress=progress, snapshot_steps=snaps)
    save_prior(process, result.checkpoint)
    return result


def save_prior(process: DiffusionProcess, checkpoint) -> None:
    """Write a fitted generation prior (``process.prior_state()``, e.g. Cold's GMM and SR block shape) into the
    checkpoint under "prior", atomically, so a reloaded model samples the same (``load_model``)."""
    from lib import distributed, io
    state = getattr(process, "prior_state", lambda: None)()
    if state is None or checkpoint is None or not Path(checkpoint).exists() or not distributed.is_main():
        return
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if ckpt.get("prior") != state:
        io.torch_save({**ckpt, "prior": state}, checkpoint)


def load_model(checkpoint, device="cpu"):
    """(process, EMA net) from a checkpoint, the process carrying the prior saved with it (``save_prior``)."""
    from lib.train import build_from_checkpoint, load_checkpoint
    process, net = build_from_checkpoint(checkpoint, device)
    prior = load_checkpoint(checkpoint).get("prior")
    if prior is not None:
        process = process.with_prior(prior)
    return process, net


def sample_model(process: DiffusionProcess, net, n: int, image_shape: Sequence[int], seed: int, profile: Profile,
                 device="cpu", prior_data: Optional[torch.Tensor] = None, progress: bool = True) -> torch.Tensor:
    """Seed-addressed samples in [-1, 1] (image i depends only on (seed, i)).  Under the GPU profiles on CUDA
    the network runs through ``torch.compile`` (``lib.train.CompiledOrEager``: eager if compiling fails)."""
    net = net.to(device).eval()
    if torch.device(device).type == "cuda" and profile.name in COMPILED_PROFILES:
        from lib.train import CompiledOrEager
        net = CompiledOrEager(net, True)
    return generate(process, net, n, image_shape, seed, batch_size=profile.sample_batch,
                    device=device, prior_data=prior_data, progress=progress, precision=profile.precision)


def prior_images(data_float: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Training images drawn (seeded) for data-dependent priors (IHDM, Cold): one per generated sample."""
    g = torch.Generator().manual_seed(seed)
    return data_float[torch.randint(0, data_float.shape[0], (n,), generator=g)]


def forward_states(process: DiffusionProcess, x0: torch.Tensor, fractions: Sequence[float],
                   seed: int = 0) -> list:
    """x_t of one image at t = fraction·(num_steps-1), same randomness at every t, as [-1, 1] images."""
    out = []
    for f in fractions:
        t = int(round(f * (process.num_steps - 1)))
        x_t = process.q_sample(x0, t, generator=torch.Generator().manual_seed(seed))
        out.append(process.to_image(x_t)[0])
    return out


NATURAL_IMAGE_SETS = ("afhq_cat", "celeba", "lsun_church")
ENV_FD_EXTRACTOR = "DIFFUSION_FD_EXTRACTOR"   # a trained cifarclf file, for machines without CIFAR-10 (GPU runs)


def extractor_for(dataset: str, data_root: Optional[str] = None):
    """The feature extractor a table uses: Inception when its weights are present (the only column comparable
    with the papers), else the project's own classifier for the dataset (evaluation.md), else None (SWD only).

    For colour sets without CIFAR-10 beside them, env ``DIFFUSION_FD_EXTRACTOR`` may name a trained
    ``cifarclf_<hash>.pt`` (``lib.metrics.load_classifier_extractor``): the same network as here."""
    import os
    from lib import metrics
    if metrics.inception_available():
        return metrics.get_extractor("inception")
    if dataset == "mnist":
        return metrics.get_extractor("mnistclf")
    natural = dataset == "cifar10" or dataset in NATURAL_IMAGE_SETS
    if natural and data_root and (dataset == "cifar10" or (Path(data_root) / "cifar10").is_dir()):
        # Stand-in backbone for other natural-image sets (AFHQ-Cat, CelebA, LSUN): the CIFAR-10 classifier's
        # features, trained from <data_root>/cifar10. The column is named FD_cifarclf, so it is never read as FID.
        return metrics.get_extractor("cifarclf", data_root=data_root)
    if natural and os.environ.get(ENV_FD_EXTRACTOR):
        return metrics.load_classifier_extractor(os.environ[ENV_FD_EXTRACTOR])
    return None


def evaluate(fake: torch.Tensor, real: torch.Tensor, dataset: str, data_root: Optional[str] = None) -> dict:
    """The standard metric row (FD/FID with the extractor above, precision/recall, SWD); SWD only without one."""
    from lib import metrics
    ext = extractor_for(dataset, data_root)
    if ext is None:
        sw = metrics.swd(real, fake)
        return {"SWD_mean": sw["mean"], "SWD_per_level": sw["per_level"], "n_fake": len(fake), "n_real": len(real),
                "extractor": None}
    return metrics.evaluate_samples(fake, real, ext, ref_key=f"{dataset}-{real.shape[-1]}px-{len(real)}")


def noise_ratio(process, x0: torch.Tensor, t: int) -> torch.Tensor:
    """EPD's σ_t(x0)/√(1-ᾱ_t) per pixel, in [0, 1] (1 = isotropic DDPM noise)."""
    import numpy as np
    return (process.noise_scale(x0, t) / np.sqrt(1.0 - process.alpha_bar[t])).float()


def random_subset(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """A seeded draw of ``n`` distinct images (reference sets, grids; the embedded digits are stored by class)."""
    g = torch.Generator().manual_seed(seed)
    return images[torch.randperm(images.shape[0], generator=g)[:n]]
