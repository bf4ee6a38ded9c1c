"""Cold Diffusion (Bansal et al. 2022, arXiv 2208.09392): invert deterministic degradations without noise.

Spec: cold_spec.md.  One registered process per degradation (operators in ``lib/degradations.py``), all
sharing ``ColdProcess``; defaults are the official README settings of the main dataset:

    cold_blur         Gaussian blur §3.1           CIFAR-10 restoration: T=50, Special_6 routine
    cold_inpaint      Gaussian-mask inpainting §3.2 CIFAR-10: T=50, random centres, discrete
    cold_sr           super-resolution §3.3        CIFAR-10: T=3 (32² -> 4²)
    cold_snow         procedural snow §3.4         CIFAR-10: T=200, level 3, random snow
    cold_desaturate   desaturation §3.5            CIFAR-10: T=20
    cold_noise        deterministic noise §3.6     CelebA generation: T=200 ("hot" baseline)
    cold_inpaint_gen  fill to a colour §3.8        CelebA generation: T=750
Other datasets are ``<Config>.preset(name)`` (e.g. ``ColdBlurConfig.preset("celeba_generation")``).

Index convention (§0, Q2).  Here ``t`` is the **severity** s ∈ {0..T}: ``q_sample(x0, s) = D(x0, s)``, s = 0
is the clean image.  ``num_steps = T`` training severities: ``sample_t`` draws s uniformly from {1..T} (the
code draws k ∈ {0..T-1} and builds D(x0, k+1)); the network is called as ``net(x_s, s-1)`` (``net_time``)
and never sees s = 0.  ``sampling_timesteps`` walks (T, T-1), …, (1, 0): **t_prev = 0 is the final,
restored state** (DDPM's final t_prev is -1).

Sampling (§2).  ``step`` returns x̂0 = R(x_s, s) and, per ``algorithm``,
    1: x_{s-1} = D(x̂0, s-1)                        (naive; the code's 'default')
    2: x_{s-1} = x_s - D(x̂0, s) + D(x̂0, s-1)       (improved; the code's 'x0_step_down'; default, Q1)
``restore_direct(net, x_T)`` is the one-shot R(x_T, T).

Latents.  When D depends on a latent z (mask centres, snow pattern, noise, fill colour) both D terms of a
step must use the z that built x_T (§2).  The interface has no slot that carries z from ``prior`` to
``step``, so z of a sampling run is drawn from a generator *derived from the seed(s) of the run's
generator* (``run_generator``): ``prior`` and every ``step`` given the same generator see the same z, and
with a ``StackedRandomGenerator`` image i's z depends only on its own seed.  Training draws z from the
passed generator directly (``noise`` = z overrides it).

Every quirk of §7 that changes numbers is a config field; defaults follow the spec's "Default:" lines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F

from lib import degradations as deg
from lib import rng as rng_lib
from lib.processes import register
from lib.processes.base import DiffusionProcess, StepOutput, as_time_tensor, mean_per_sample
from lib.processes.gmm_prior import GaussianMixturePrior  # noqa: F401  (re-exported)

ALGORITHMS = (1, 2)
LOSS_TYPES = ("l1", "l2")
ROUNDINGS = ("floor", "round")
NOISE_MODES = ("estimated", "fixed")
_LATENT_SALT = 0xC01D          # run_generator salts: the degradation latent z ...
_SYMMETRY_SALT = 0xC01E        # ... and the symmetry-breaking noise of the prior (Q12)


def run_generator(generator, salt: int):
    """A fresh generator derived from ``generator``'s seed(s): the same draws at ``prior`` and at every ``step``."""
    if isinstance(generator, rng_lib.StackedRandomGenerator):
        return rng_lib.StackedRandomGenerator(generator.device, [rng_lib.sample_seed(s, salt) for s in generator.seeds])
    seed = torch.initial_seed() if generator is None else generator.initial_seed()
    device = "cpu" if generator is None else generator.device
    return torch.Generator(device).manual_seed(rng_lib.sample_seed(seed, salt))


def _check(name: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"{name} = {value!r} is not one of {list(valid)}")


# ----------------------------------------------------------------------------------------------------------
# Configs: one per family, sharing the fields of ColdConfig.

@dataclass(frozen=True)
class ColdConfig:
    T: int = 50                        # Degradation steps; severities s ∈ {0..T}.
    algorithm: int = 2                 # 2: improved sampler (README, Q1) | 1: naive D(x̂0, s-1).
    loss_type: str = "l1"              # "l1" (every script) | "l2"; mean over C·H·W per sample (§1).
    generation: bool = False           # Unconditional prior (GMM / noise / colour) instead of D(x0, T).
    prior_noise: float = 0.0           # Std of N(0, I) added once to x_T (Q12: 0.002 "broken symmetry").
    subtract_prior_noise: bool = False  # Q12 `all_sample` variant: subtract that noise after the last step.
    clamp: bool = False                # Clamp x̂0 and x_s to [-1, 1] inside the loop (the code does not, Q3).
    discrete: bool = False             # 8-bit quantise training inputs and the restoration x_T (Q6).
    discrete_rounding: str = "floor"   # "floor": the code's .int() truncation (Q6) | "round".

    PRESETS: ClassVar[dict] = {}

    def __post_init__(self):
        if not isinstance(self.T, int) or self.T < 1:
            raise ValueError(f"T must be a positive int, got {self.T!r}")
        _check("algorithm", self.algorithm, ALGORITHMS)
        _check("loss_type", self.loss_type, LOSS_TYPES)
        _check("discrete_rounding", self.discrete_rounding, ROUNDINGS)
        if self.prior_noise < 0:
            raise ValueError(f"prior_noise must be >= 0, got {self.prior_noise}")

    @classmethod
    def preset(cls, name: str, **overrides):
        """Per-dataset README settings (cold_spec.md §3-§4); ``overrides`` replace single fields."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown {cls.__name__} preset {name!r}; valid: {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})


@dataclass(frozen=True)
class ColdBlurConfig(ColdConfig):
    T: int = 50                        # CIFAR-10 restoration (README).
    blur_routine: str = "special_6"    # special_6 | constant | exponential | exponential_reflect | incremental.
    blur_size: int = 11                # Kernel size K (special_6 always uses 11).
    blur_std: float = 0.01             # σ (constant), rate (exponential*: σ_i = e^{std·i}), slope (incremental).
    blur_padding: Optional[str] = None  # None: the routine's (Q15) | "circular" | "reflect".
    gmm_components: int = 1            # GMM components of the generation prior (README 1, Q11).
    gmm_seed: int = 0                  # sklearn random_state of the GMM fit.
    # discrete=True here also replaces the last blur by the channel mean (--discrete, §3.1).

    PRESETS: ClassVar[dict] = {
        "mnist": dict(T=20, blur_routine="constant", blur_size=11, blur_std=7.0),
        "mnist_paper": dict(T=40, blur_routine="constant", blur_size=11, blur_std=7.0),   # Q8
        # x_T keeps coarse structure (SSIM(x_T, x0) 0.13 vs 0.015 for "mnist"): lib.cold_experiments' docstring.
        "mnist_structured": dict(T=20, blur_routine="constant", blur_size=11, blur_std=1.0),
        "cifar10": dict(),
        "celeba": dict(T=200, blur_routine="exponential_reflect", blur_size=15, blur_std=0.01),
        "celeba_generation": dict(T=300, blur_routine="exponential", blur_size=27, blur_std=0.01, discrete=True,
                                  generation=True, prior_noise=0.002, gmm_components=1),
        "celeba_generation_perfect_symmetry": dict(T=300, blur_routine="exponential", blur_size=27, blur_std=0.01,
                                                   discrete=True, generation=True, prior_noise=0.0),
    }
    PRESETS["afhq_generation"] = PRESETS["celeba_generation"]

    def __post_init__(self):
        super().__post_init__()
        _check("blur_routine", self.blur_routine, tuple(deg.BLUR_ROUTINES))
        _check("blur_padding", self.blur_padding, (None, "circular", "reflect"))
        if self.gmm_components < 1:
            raise ValueError(f"gmm_components must be >= 1, got {self.gmm_components}")


@dataclass(frozen=True)
class ColdInpaintConfig(ColdConfig):
    T: int = 50                        # CIFAR-10 (README).
    mask_routine: str = "random"       # "random" (Random_Incremental, MNIST/CIFAR) | "centred" (CelebA).
    kernel_std: float = 0.1            # σ_i = kernel_std·(i + initial_mask).
    initial_mask: float = 11           # Train-script default (the README test flag is ignored, Q8).
    discrete: bool = True              # MNIST/CIFAR quantise (Q6).

    PRESETS: ClassVar[dict] = {
        "mnist": dict(),
        "cifar10": dict(),
        "celeba": dict(T=100, mask_routine="centred", kernel_std=0.2, initial_mask=1, discrete=False),
    }

    def __post_init__(self):
        super().__post_init__()
        _check("mask_routine", self.mask_routine, deg.MASK_ROUTINES)


@dataclass(frozen=True)
class ColdSRConfig(ColdConfig):
    T: int = 3                         # CIFAR-10 / MNIST: 32² -> 4² (README).
    sr_downsample: str = "bicubic"     # "bicubic": the code (Q9) | "area": 2×2 block means (paper text).
    gmm_components: int = 10           # GMM on D(x0, T) block values for generation (code default, §4.2).
    gmm_seed: int = 0                  # sklearn random_state of the GMM fit.

    PRESETS: ClassVar[dict] = {
        "mnist": dict(),
        "cifar10": dict(),
        "celeba": dict(T=4),                               # 128² -> 8² (README)
        "celeba_paper": dict(T=6),                         # 128² -> 2² (paper, Q8)
        "celeba_generation": dict(T=6, generation=True),   # §4.2
    }

    def __post_init__(self):
        super().__post_init__()
        _check("sr_downsample", self.sr_downsample, deg.SR_DOWNSAMPLE)
        if self.gmm_components < 1:
            raise ValueError(f"gmm_components must be >= 1, got {self.gmm_components}")


@dataclass(frozen=True)
class ColdSnowConfig(ColdConfig):
    T: int = 200                       # CIFAR-10 and CelebA (README).
    snow_level: int = 3                # 3: CIFAR-10 | 4: CelebA (§3.4 table).
    fix_brightness: bool = True        # README --fix_brightness.
    random_snow: bool = True           # README --random_snow: a fresh pattern per training call, shared by the
                                       # batch (Q13); sampling runs draw one per image from the run seed.
                                       # False: the fixed pattern of `snow_seed` everywhere.
    snow_seed: int = 123321            # Seed of the fixed pattern (the code's numpy seed; not bit-identical).

    PRESETS: ClassVar[dict] = {"cifar10": dict(), "celeba": dict(snow_level=4)}

    def __post_init__(self):
        super().__post_init__()
        _check("snow_level", self.snow_level, tuple(deg.SNOW_LEVELS))


@dataclass(frozen=True)
class ColdDesaturateConfig(ColdConfig):
    T: int = 20                        # CIFAR-10 and CelebA (README).
    decolor_routine: str = "linear"    # "linear": f_i = 1 - 1/(T-i) | "constant": f = 0.9.
    decolor_total_remove: bool = False  # Force f_{T-1} = 0 (linear already has it).

    PRESETS: ClassVar[dict] = {"cifar10": dict(), "celeba": dict()}

    def __post_init__(self):
        super().__post_init__()
        _check("decolor_routine", self.decolor_routine, deg.DECOLOR_ROUTINES)


@dataclass(frozen=True)
class ColdNoiseConfig(ColdConfig):
    T: int = 200                       # CelebA / AFHQ 128 (README).
    generation: bool = True            # A generation baseline: x_T = z ~ N(0, I).
    noise_mode: str = "estimated"      # "estimated": ẑ re-estimated each step (≡ DDIM η=0, what sample() runs)
                                       # | "fixed": z = x_T throughout (§4.2).
    cosine_s: float = 0.008            # Offset of the cosine ᾱ schedule.

    PRESETS: ClassVar[dict] = {"celeba": dict(), "afhq": dict(), "celeba_fixed_noise": dict(noise_mode="fixed")}

    def __post_init__(self):
        super().__post_init__()
        _check("noise_mode", self.noise_mode, NOISE_MODES)


@dataclass(frozen=True)
class ColdInpaintGenConfig(ColdConfig):
    T: int = 750                       # CelebA 128 (README).
    generation: bool = True            # x_T = c, a constant colour U[-0.5, 0.5)^C (both modes give D(x0, T) = c).
    kernel_std: float = 0.05           # σ_j = kernel_std·(j + initial_mask) of the centred masks.
    initial_mask: float = 1            #

    PRESETS: ClassVar[dict] = {"celeba": dict()}


# ----------------------------------------------------------------------------------------------------------

class ColdProcess(DiffusionProcess):
    """Shared Cold machinery: D(x0, s) training inputs, the L1 x0 objective, Algorithms 1 and 2."""

    name = "cold"
    config_cls = ColdConfig
    supports_generation: ClassVar[bool] = False
    family = "cold"
    steps_field = None     # T is part of the degradation's definition (its severity per step): never budgeted

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        if self.config.generation and not self.supports_generation:
            raise ValueError(f"{self.name} has no generation prior in the spec; use generation=False")
        self.D = self.build_degradation()

    def build_degradation(self) -> deg.Degradation:
        raise NotImplementedError

    @property
    def num_steps(self) -> int:
        """T training severities s ∈ {1..T} (network index s-1 ∈ {0..T-1}); q_sample/step accept s ∈ {0..T}."""
        return self.config.T

    def net_time(self, t):
        """The network index k = s - 1 (§0)."""
        return (t - 1).float()

    # --- degradation ------------------------------------------------------------------------------------
    def degrade(self, x: torch.Tensor, s, z=None) -> torch.Tensor:
        """D(x, s; z), s an int or [B] tensor in 0..T (no quantisation)."""
        return self.D(x, s, z)

    def train_latent(self, shape, generator, device):
        """z for training inputs, from the caller's generator (None for deterministic D)."""
        return self.D.draw_latent(shape, generator, device)

    def run_latent(self, shape, generator, device):
        """z of one sampling run: the same for ``prior`` and every ``step`` given the same generator."""
        return self.D.draw_latent(shape, run_generator(generator, _LATENT_SALT), device)

    def _quantise(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if not self.config.discrete:
            return y
        return torch.where(s.reshape(-1, 1, 1, 1) > 0, deg.quantize_8bit(y, self.config.discrete_rounding), y)

    # --- training ---------------------------------------------------------------------------------------
    def sample_t(self, batch, generator, device):
        """s = k + 1 with k uniform on {0..T-1} (§0)."""
        return rng_lib.randint(0, self.config.T, (batch,), generator, device) + 1

    def q_sample(self, x0, t, noise=None, generator=None):
        """The training input D(x0, s) (8-bit quantised for s > 0 if ``discrete``); ``noise`` is the latent z."""
        s = as_time_tensor(t, x0.shape[0], x0.device)
        z = self.train_latent(x0.shape, generator, x0.device) if noise is None else noise
        return self._quantise(self.D(x0, s, z), s)

    def loss(self, net, x0, t=None, noise=None, generator=None):
        """mean |R(D(x0, s), s) - x0| over C·H·W per sample [B] (§1, U14); the batch mean is the code's loss."""
        s = self.training_time(x0, t, generator)
        err = net(self.q_sample(x0, s, noise, generator), self.net_time(s)) - x0
        return mean_per_sample(err.abs() if self.config.loss_type == "l1" else err ** 2)

    # --- priors -----------------------------------------------------------------------------------------
    def initial_state(self, x0: torch.Tensor, s, generator) -> torch.Tensor:
        """D(x0, s; z_run) (quantised if ``discrete``): the state a restoration run started at s begins from."""
        s = as_time_tensor(s, x0.shape[0], x0.device)
        return self._quantise(self.D(x0, s, self.run_latent(x0.shape, generator, x0.device)), s)

    def generation_prior(self, shape, generator, device) -> torch.Tensor:
        raise NotImplementedError

    # A fitted generation prior (blur, SR) is a value, ``GaussianMixturePrior``: ``fit_prior`` returns a fresh
    # one, ``prior_state`` / ``with_prior`` move it in and out of a checkpoint, and the process only holds the
    # reference it was built with (``self.gmm``, never modified in place).
    def prior_state(self) -> Optional[dict]:
        """The fitted prior as plain data for the checkpoint (None: nothing fitted / no data-fitted prior)."""
        gmm = getattr(self, "gmm", None)
        return gmm.to_dict() if gmm is not None and gmm.fitted else None

    def with_prior(self, state) -> "ColdProcess":
        """A new process of the same config whose generation prior is ``state`` (a ``prior_state()`` dict or a
        ``GaussianMixturePrior``); the degradation operator is shared."""
        new = type(self)(self.config)
        new.D = self.D
        if state is not None:
            new.gmm = state if isinstance(state, GaussianMixturePrior) else GaussianMixturePrior.from_dict(state)
        return new

    def _symmetry_noise(self, like: torch.Tensor, generator) -> torch.Tensor:
        return rng_lib.randn_like(like, run_generator(generator, _SYMMETRY_SALT))

    def prior(self, shape, generator, x0=None, device=None):
        """x_T: D(x0, T) of the given images (restoration) or a draw of the generation prior; + prior_noise·ε."""
        c = self.config
        if c.generation:
            x = self.generation_prior(tuple(shape), generator, torch.device(device or "cpu"))
        else:
            if x0 is None:
                raise ValueError(f"{self.name} restoration needs the clean images: prior(..., x0=images)")
            if tuple(x0.shape) != tuple(shape):
                raise ValueError(f"prior shape {tuple(shape)} != images {tuple(x0.shape)}")
            x = self.initial_state(x0 if device is None else x0.to(device), c.T, generator)
        if c.prior_noise > 0:
            x = x + c.prior_noise * self._symmetry_noise(x, generator)
        return x

    # --- reverse ----------------------------------------------------------------------------------------
    def sampling_timesteps(self, start=None):
        """(s, s-1) for s = start (default T) down to 1; the last t_prev = 0 is the restored image."""
        top = self.config.T if start is None else int(start)
        if not 1 <= top <= self.config.T:
            raise ValueError(f"start must lie in 1..{self.config.T}, got {top}")
        return [(s, s - 1) for s in range(top, 0, -1)]

    def predict_x0(self, net, x_t, t):
        """x̂0 = R(x_s, s) = net(x_s, s-1)."""
        s = as_time_tensor(t, x_t.shape[0], x_t.device)
        x0 = net(x_t, self.net_time(s))
        return x0.clamp(-1.0, 1.0) if self.config.clamp else x0

    def restore_direct(self, net, x_T: torch.Tensor) -> torch.Tensor:
        """The code's "direct" reconstruction R(x_T, T): one network call, no iteration."""
        return self.predict_x0(net, x_T, self.config.T)

    def step_latent(self, x_t, x0_hat, t: int, generator):
        """z used in both D terms of a step (the run's z; cold_noise may re-estimate it)."""
        return self.run_latent(x_t.shape, generator, x_t.device)

    def step(self, net, x_t, t, t_prev, generator):
        """One reverse step s = t -> t_prev (< t; normally t-1) by Algorithm 1 or 2 (§2)."""
        c = self.config
        t, t_prev = int(t), int(t_prev)
        if not 0 <= t_prev < t <= c.T:
            raise ValueError(f"cold steps need 0 <= t_prev < t <= {c.T}, got {t} -> {t_prev}")
        x0_hat = self.predict_x0(net, x_t, t)
        z = self.step_latent(x_t, x0_hat, t, generator)
        if c.algorithm == 1:
            x_prev = self.D(x0_hat, t_prev, z)                 # Algorithm 1: x_{s-1} = D(x̂0, s-1)
        else:
            d_prev, d_t = self.D.pair(x0_hat, t_prev, t, z)    # cumulative D: one pass for both terms
            x_prev = x_t - d_t + d_prev                        # Algorithm 2: x_s - D(x̂0, s) + D(x̂0, s-1)
        if t_prev == 0 and c.subtract_prior_noise and c.prior_noise > 0:
            x_prev = x_prev - c.prior_noise * self._symmetry_noise(x_prev, generator)
        if c.clamp:
            x_prev = x_prev.clamp(-1.0, 1.0)
        return StepOutput(x_prev, x0_hat)


# ----------------------------------------------------------------------------------------------------------

@register
class ColdBlur(ColdProcess):
    """Deblurring (restoration) and blur + GMM generation (§3.1, §4.1)."""

    name = "cold_blur"
    config_cls = ColdBlurConfig
    supports_generation = True
    small_overrides = {**ColdBlurConfig.PRESETS["celeba_generation"], "T": 5, "blur_size": 5, "blur_std": 0.3}

    def build_degradation(self):
        c = self.config
        self.gmm = GaussianMixturePrior(c.gmm_components, c.gmm_seed)
        return deg.GaussianBlur(c.T, c.blur_routine, c.blur_size, c.blur_std, c.blur_padding, mean_last=c.discrete)

    def fit_prior(self, data) -> Optional[GaussianMixturePrior]:
        """GMM over the per-channel spatial means of clean training images (§4.1 step 2); generation only.

        Returns the fitted prior (a new value, also bound as ``self.gmm``; save it with ``prior_state``)."""
        if not self.config.generation:
            return None
        c = self.config
        self.gmm = GaussianMixturePrior(c.gmm_components, c.gmm_seed).fit(data.to(torch.float64).mean(dim=(2, 3)))
        return self.gmm

    def generation_prior(self, shape, generator, device):
        """A GMM mean vector per image, broadcast to a constant image (§4.1 step 4)."""
        m = self.gmm.sample(shape[0], generator, device)
        if m.shape[1] != shape[1]:
            raise ValueError(f"the GMM was fitted on {m.shape[1]}-channel images, asked for shape {tuple(shape)}")
        return m.float().reshape(shape[0], shape[1], 1, 1).expand(*shape).contiguous()


@register
class ColdInpaint(ColdProcess):
    """Inpainting with cumulative Gaussian masks (§3.2); restoration only."""

    name = "cold_inpaint"
    config_cls = ColdInpaintConfig
    small_overrides = {"T": 5}

    def build_degradation(self):
        c = self.config
        return deg.GaussianMask(c.T, c.kernel_std, c.initial_mask, c.mask_routine)


@register
class ColdSR(ColdProcess):
    """Super-resolution by repeated 2× down/up-sampling (§3.3); generation from a GMM on D(x0, T) (§4.2)."""

    name = "cold_sr"
    config_cls = ColdSRConfig
    supports_generation = True
    small_overrides = {"T": 3, "generation": True, "gmm_components": 1}

    def build_degradation(self):
        c = self.config
        self.gmm = GaussianMixturePrior(c.gmm_components, c.gmm_seed)
        return deg.SuperResolution(c.T, c.sr_downsample)

    def fit_prior(self, data, batch_size: int = 256) -> Optional[GaussianMixturePrior]:
        """GMM over the C·(H/2^T)·(W/2^T) block values of D(x0, T) (area resize of block-constant images).

        Returns the fitted prior; its ``feature_shape`` is the low-resolution shape (C, h, w), saved with it."""
        if not self.config.generation:
            return None
        c, f = self.config, 2 ** self.config.T
        feats = [F.avg_pool2d(self.D(x, c.T), f).flatten(1) for x in data.split(batch_size)]
        low = tuple(data.shape[1:2]) + (data.shape[2] // f, data.shape[3] // f)
        self.gmm = GaussianMixturePrior(c.gmm_components, c.gmm_seed).fit(torch.cat(feats), feature_shape=low)
        return self.gmm

    @property
    def low_shape(self) -> Optional[tuple]:
        """(C, h, w) of the fitted prior's blocks (part of the prior value, not separate process state)."""
        return self.gmm.feature_shape if self.gmm.fitted else None

    def generation_prior(self, shape, generator, device):
        """A GMM sample per image, reshaped to C×h×w and upsampled with nearest-exact."""
        f = 2 ** self.config.T
        low = (shape[1], shape[2] // f, shape[3] // f)
        if self.gmm.fitted and self.low_shape != low:
            raise ValueError(f"the GMM was fitted for low-resolution shape {self.low_shape}, "
                             f"asked for {low}; call fit_prior on images of the sampled size")
        v = self.gmm.sample(shape[0], generator, device).float().reshape(shape[0], *low)
        return F.interpolate(v, size=tuple(shape[2:]), mode="nearest-exact")


@register
class ColdSnow(ColdProcess):
    """Snow removal (§3.4); D is direct and nonlinear, so Algorithm 2 is not exact for imperfect R (Q13)."""

    name = "cold_snow"
    config_cls = ColdSnowConfig
    small_overrides = {"T": 5}

    def build_degradation(self):
        c = self.config
        self._fixed: dict = {}
        return deg.Snow(c.T, c.snow_level, c.fix_brightness)

    def fixed_pattern(self, shape, device) -> deg.SnowPattern:
        """The pattern of ``snow_seed`` for H×W images (drawn on the CPU, so every device sees the same one)."""
        key = tuple(shape[-2:])
        if key not in self._fixed:
            g = torch.Generator().manual_seed(self.config.snow_seed)
            self._fixed[key] = self.D.draw_latent((1,) + tuple(shape[1:]), g, "cpu", shared=True)
        return self._fixed[key].to(device)

    def train_latent(self, shape, generator, device):
        if self.config.random_snow:
            return self.D.draw_latent(shape, generator, device, shared=True)
        return self.fixed_pattern(shape, device)

    def run_latent(self, shape, generator, device):
        if self.config.random_snow:
            return self.D.draw_latent(shape, run_generator(generator, _LATENT_SALT), device, shared=False)
        return self.fixed_pattern(shape, device)


@register
class ColdDesaturate(ColdProcess):
    """Colourisation: invert the walk to the unweighted channel mean (§3.5); identity on 1-channel data."""

    name = "cold_desaturate"
    config_cls = ColdDesaturateConfig
    # prior_noise gives the otherwise seed-independent restoration a seed to depend on (contract tests).
    small_overrides = {"T": 5, "prior_noise": 0.002}

    def build_degradation(self):
        c = self.config
        return deg.Desaturation(c.T, c.decolor_routine, c.decolor_total_remove)


@register
class ColdNoise(ColdProcess):
    """Deterministic-noise generation, the "hot" baseline (§3.6, §4.2), fixed or estimated noise."""

    name = "cold_noise"
    config_cls = ColdNoiseConfig
    supports_generation = True
    small_overrides = {"T": 5}

    def build_degradation(self):
        return deg.GaussianNoise(self.config.T, self.config.cosine_s)

    def generation_prior(self, shape, generator, device):
        """x_T = z ~ N(0, I), the run's latent (the code ignores the √ᾱ_{T-1} ≈ 2.5e-4 signal term)."""
        return self.run_latent(shape, generator, device)

    def step_latent(self, x_t, x0_hat, t, generator):
        if self.config.noise_mode == "fixed":
            return self.run_latent(x_t.shape, generator, x_t.device)
        a, b = self.D.coefs(torch.full((x_t.shape[0],), t - 1, device=x_t.device), x_t)
        return (x_t - a * x0_hat) / b                          # ẑ_s: Algorithm 2 becomes DDIM(η=0)


@register
class ColdInpaintGen(ColdProcess):
    """Generation by inpainting towards a constant colour from the borders inwards (§3.8, --reverse)."""

    name = "cold_inpaint_gen"
    config_cls = ColdInpaintGenConfig
    supports_generation = True
    small_overrides = {"T": 5, "kernel_std": 2.0}

    def build_degradation(self):
        c = self.config
        return deg.ColourFill(c.T, c.kernel_std, c.initial_mask)

    def generation_prior(self, shape, generator, device):
        """x_T = c: the run's colour broadcast over H×W (= D(x0, T; c) for any x0)."""
        return self.run_latent(shape, generator, device).expand(*shape).contiguous()
