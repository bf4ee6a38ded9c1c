"""Cold Diffusion degradation operators D(x, s; z) (Bansal et al. 2022; cold_spec.md §3), in torch.

Every operator is batch-wise and runs on any device; the severity ``s`` is an int or a [B] tensor (one
severity per image), with ``s ∈ {0..T}`` and ``D(x, 0) = x`` bit-exactly (check U1).  Images are [B, C, H, W]
in [-1, 1].  Two kinds, as in the official code (§0):

* **cumulative** (blur, Gaussian masks, super-resolution, desaturation): ``D(x, s) = op[s-1](…op[0](x))``;
  ``step_op(x, i)`` is op[i], so ``D(x, s) == step_op(D(x, s-1), s-1)`` exactly (check U2);
* **direct** (snow, Gaussian noise, colour fill): ``D(x, s) = f(x, s-1)``.

Operators that depend on a latent z (mask centres, snow pattern, noise, fill colour) draw it with
``draw_latent(shape, generator, device)`` through ``lib.rng``; ``z`` is then an explicit argument of ``D``
so that both terms of Algorithm 2 can share it.  Deterministic operators have ``z = None``.

Schedules are float64 numpy arrays; kernels and masks are built in float64 and cast to the input dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from lib import rng as rng_lib


# ----------------------------------------------------------------------------------------------------------
# Helpers.

def severity(s, x: torch.Tensor, T: int) -> torch.Tensor:
    """An int or [B] tensor of severities -> long [B] on x's device, checked to lie in {0..T}."""
    if isinstance(s, torch.Tensor):
        s = s.to(device=x.device, dtype=torch.long)
        s = s.expand(x.shape[0]) if s.ndim == 0 else s
    else:
        s = torch.full((x.shape[0],), int(s), device=x.device, dtype=torch.long)
    if s.shape != (x.shape[0],):
        raise ValueError(f"severity must be a scalar or have shape [{x.shape[0]}], got {tuple(s.shape)}")
    if s.numel() and (int(s.min()) < 0 or int(s.max()) > T):
        raise ValueError(f"severity must lie in 0..{T}, got {s.tolist()}")
    return s


def _rows(mask: torch.Tensor) -> torch.Tensor:
    """[B] bool -> [B, 1, 1, 1] for torch.where over images."""
    return mask.reshape(-1, 1, 1, 1)


def gaussian_kernel1d(K: int, sigma: float) -> torch.Tensor:
    """torchgeometry's kernel (§3.0): g[j] ∝ exp(-(j - ⌊K/2⌋)² / 2σ²), j = 0..K-1, summing to 1 (float64)."""
    if K < 1 or K % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd and positive, got {K}")
    j = torch.arange(K, dtype=torch.float64) - K // 2
    g = torch.exp(-j ** 2 / (2.0 * float(sigma) ** 2))
    return g / g.sum()


def gaussian_kernel2d(K: int, sigma: float) -> torch.Tensor:
    """Outer product g gᵀ of ``gaussian_kernel1d`` (float64 [K, K])."""
    g = gaussian_kernel1d(K, sigma)
    return g[:, None] * g[None, :]


def quantize_8bit(x: torch.Tensor, rounding: str = "floor") -> torch.Tensor:
    """The code's "discrete" mode (§3.1, Q6): y = ⌊255 (x+1)/2⌋ / 255 · 2 - 1 (``.int()`` truncation) or rounded."""
    v = 255.0 * (x + 1.0) / 2.0
    if rounding == "floor":
        v = torch.trunc(v)           # .int() truncates towards zero; v >= 0 on [-1, 1] data, so this is ⌊v⌋
    elif rounding == "round":
        v = torch.round(v)
    else:
        raise ValueError(f"rounding must be 'floor' or 'round', got {rounding!r}")
    return v / 255.0 * 2.0 - 1.0


def cosine_alpha_bar(T: int, s: float = 0.008) -> np.ndarray:
    """ᾱ_k, k = 0..T-1, of the noise baseline (§3.6): Nichol & Dhariwal's cosine, β clipped to [0, 0.999]."""
    u = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((u + s) / (1.0 + s) * np.pi / 2.0) ** 2
    f = f / f[0]
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def squared_distance(H: int, W: int, centre: torch.Tensor, device) -> torch.Tensor:
    """(r - r_c)² + (c - c_c)² for per-image centres [P, 2] (row, col): float64 [P, H, W]."""
    r = torch.arange(H, dtype=torch.float64, device=device).reshape(1, H, 1)
    c = torch.arange(W, dtype=torch.float64, device=device).reshape(1, 1, W)
    cr = centre[:, 0].to(device=device, dtype=torch.float64).reshape(-1, 1, 1)
    cc = centre[:, 1].to(device=device, dtype=torch.float64).reshape(-1, 1, 1)
    return (r - cr) ** 2 + (c - cc) ** 2


def gaussian_bump(H: int, W: int, centre: torch.Tensor, sigma: float, device) -> torch.Tensor:
    """G/max(G) = exp(-d²/2σ²) around per-image centres [P, 2] (row, col): float64 [P, 1, H, W].

    This is the normalised kernel of §3.0 divided by its maximum, at the pixels of the image window."""
    return torch.exp(-squared_distance(H, W, centre, device) / (2.0 * float(sigma) ** 2)).unsqueeze(1)


# ----------------------------------------------------------------------------------------------------------

class Degradation:
    """D(x, s; z) for s ∈ {0..T}; subclasses are cumulative or direct."""

    cumulative: bool = False

    def __init__(self, T: int):
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        self.T = int(T)

    def draw_latent(self, shape, generator, device, shared: bool = False):
        """The latent z of D for images of ``shape`` (None for deterministic operators)."""
        return None

    def __call__(self, x: torch.Tensor, s, z=None) -> torch.Tensor:
        """D(x, s; z) in x's dtype: autocast is switched off, so Algorithm 2's differences never run in bf16."""
        with torch.autocast(x.device.type, enabled=False):
            return self.forward(x, s, z)

    def forward(self, x: torch.Tensor, s, z=None) -> torch.Tensor:
        raise NotImplementedError

    def pair(self, x: torch.Tensor, s_prev: int, s: int, z=None):
        """(D(x, s_prev), D(x, s)) for integer severities s_prev <= s: the two terms of Algorithm 2."""
        return self(x, s_prev, z), self(x, s, z)


class CumulativeDegradation(Degradation):
    """D(x, s) = op[s-1](…op[0](x)), applied to the whole batch and frozen per row once s is reached."""

    cumulative = True

    def step_op(self, x: torch.Tensor, i: int, z=None) -> torch.Tensor:
        """op[i] on the whole batch (i is the 0-based step index)."""
        raise NotImplementedError

    def forward(self, x, s, z=None):
        s = severity(s, x, self.T)
        out = x
        for i in range(int(s.max()) if s.numel() else 0):
            out = torch.where(_rows(s > i), self.step_op(out, i, z), out)
        return out

    def pair(self, x, s_prev: int, s: int, z=None):
        """D(x, s) continues from D(x, s_prev) with op[s_prev..s-1]: s ops in all instead of s + s_prev
        (the same operations in the same order as two separate calls, so the result is identical)."""
        s_prev, s = int(s_prev), int(s)
        if not 0 <= s_prev <= s <= self.T:
            raise ValueError(f"pair needs 0 <= s_prev <= s <= {self.T}, got {s_prev}, {s}")
        with torch.autocast(x.device.type, enabled=False):
            d_prev = self.forward(x, s_prev, z)
            out = d_prev
            for i in range(s_prev, s):
                out = self.step_op(out, i, z)
        return d_prev, out


class DirectDegradation(Degradation):
    """D(x, s) = f(x, s-1) for s >= 1; rows with s = 0 are returned unchanged."""

    def apply(self, x: torch.Tensor, k: torch.Tensor, z) -> torch.Tensor:
        """f(x, k) with k = s-1 a long [B] tensor (rows with s = 0 get k = 0 and are discarded)."""
        raise NotImplementedError

    def forward(self, x, s, z=None):
        s = severity(s, x, self.T)
        if not bool((s > 0).any()):
            return x
        return torch.where(_rows(s > 0), self.apply(x, (s - 1).clamp(min=0), z), x)


# ----------------------------------------------------------------------------------------------------------
# §3.1 Gaussian blur (deblurring-diffusion-pytorch).

# routine -> padding; σ_i and K per routine are in `blur_schedule`.
BLUR_ROUTINES = {"constant": "circular", "special_6": "reflect", "exponential_reflect": "reflect",
                 "exponential": "circular", "incremental": "circular"}


def blur_schedule(routine: str, T: int, blur_size: int, blur_std: float) -> tuple[int, np.ndarray]:
    """Kernel size K and σ_i (i = 0..T-1) of the code's blur routines (§3.1 table)."""
    i = np.arange(T, dtype=np.float64)
    if routine == "constant":
        return blur_size, np.full(T, float(blur_std))
    if routine == "special_6":
        return 11, 0.35 + i / 100.0
    if routine in ("exponential", "exponential_reflect"):
        return blur_size, np.exp(blur_std * i)
    if routine == "incremental":
        return blur_size, blur_std * (i + 1.0)
    raise ValueError(f"unknown blur routine {routine!r}; valid: {sorted(BLUR_ROUTINES)}")


class GaussianBlur(CumulativeDegradation):
    """Cumulative depthwise Gaussian blur; ``mean_last``: the last step is the per-channel mean (--discrete)."""

    def __init__(self, T: int, routine: str = "special_6", blur_size: int = 11, blur_std: float = 0.01,
                 padding: Optional[str] = None, mean_last: bool = False):
        super().__init__(T)
        self.K, self.sigmas = blur_schedule(routine, T, blur_size, blur_std)
        self.padding = padding or BLUR_ROUTINES[routine]
        if self.padding not in ("circular", "reflect"):
            raise ValueError(f"blur padding must be 'circular' or 'reflect', got {self.padding!r}")
        self.mean_last = mean_last
        self.kernels = torch.stack([gaussian_kernel2d(self.K, s) for s in self.sigmas])  # float64 [T, K, K]
        self._cache: dict = {}

    def kernel(self, i: int, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = self.kernels.to(device=like.device, dtype=like.dtype)
        return self._cache[key][i]

    def blur(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """One step: the same K×K kernel on every channel, 'same' padding (K-1)/2 of the routine's mode."""
        C, p = x.shape[1], (self.K - 1) // 2
        w = self.kernel(i, x).expand(C, 1, self.K, self.K)
        return F.conv2d(F.pad(x, (p, p, p, p), mode=self.padding), w, groups=C)

    def step_op(self, x, i, z=None):
        y = self.blur(x, i)
        if self.mean_last and i == self.T - 1:
            y = y.mean(dim=(2, 3), keepdim=True).expand_as(y)
        return y


# ----------------------------------------------------------------------------------------------------------
# §3.2 Inpainting with Gaussian masks (defading-diffusion-pytorch).

MASK_ROUTINES = ("random", "centred")


class GaussianMask(CumulativeDegradation):
    """x ← x ⊙ m_i, m_i = 1 - G_i/max G_i with σ_i = kernel_std·(i + initial_mask) (same mask on every channel).

    ``centred`` (code: Incremental) puts the zero at ((H+1)//2 - 1, (W+1)//2 - 1), (63, 63) for 128²;
    ``random`` (Random_Incremental) at (H-1-rx, W-1-ry) with rx ~ U{0..H}, ry ~ U{0..W} drawn per image (z)."""

    def __init__(self, T: int, kernel_std: float = 0.1, initial_mask: float = 11, routine: str = "random"):
        super().__init__(T)
        if routine not in MASK_ROUTINES:
            raise ValueError(f"unknown mask routine {routine!r}; valid: {list(MASK_ROUTINES)}")
        self.routine = routine
        self.sigmas = kernel_std * (np.arange(T, dtype=np.float64) + initial_mask)

    def draw_latent(self, shape, generator, device, shared=False):
        """Mask centres [B, 2] (row, col), long; None for the centred routine."""
        if self.routine == "centred":
            return None
        B, _, H, W = shape
        rx = rng_lib.randint(0, H + 1, (B,), generator, device)
        ry = rng_lib.randint(0, W + 1, (B,), generator, device)
        return torch.stack([H - 1 - rx, W - 1 - ry], dim=1)

    def centres(self, x: torch.Tensor, z) -> torch.Tensor:
        H, W = x.shape[-2:]
        if self.routine == "centred":
            return torch.tensor([[(H + 1) // 2 - 1, (W + 1) // 2 - 1]], device=x.device)
        if z is None:
            raise ValueError("the random mask routine needs its latent z (the mask centres); see draw_latent")
        return z.to(x.device)

    def mask(self, x: torch.Tensor, i: int, z=None) -> torch.Tensor:
        """m_i, float64 [B or 1, 1, H, W]."""
        H, W = x.shape[-2:]
        return 1.0 - gaussian_bump(H, W, self.centres(x, z), self.sigmas[i], x.device)

    def step_op(self, x, i, z=None):
        return x * self.mask(x, i, z).to(x.dtype)


# ----------------------------------------------------------------------------------------------------------
# §3.3 Super-resolution (resolution-diffusion-pytorch, routine Incremental_factor_2).

SR_DOWNSAMPLE = ("bicubic", "area")


class SuperResolution(CumulativeDegradation):
    """Step i: resize the current image to N // 2^(i+1) and back to N with nearest-exact (block-constant)."""

    def __init__(self, T: int, downsample: str = "bicubic"):
        super().__init__(T)
        if downsample not in SR_DOWNSAMPLE:
            raise ValueError(f"unknown SR downsampling {downsample!r}; valid: {list(SR_DOWNSAMPLE)}")
        self.downsample = downsample

    def step_op(self, x, i, z=None):
        H, W = x.shape[-2:]
        size = (H // 2 ** (i + 1), W // 2 ** (i + 1))
        if min(size) < 1:
            raise ValueError(f"super-resolution step {i} would go below 1 pixel for {H}×{W} images (T too large)")
        if self.downsample == "bicubic":   # the code (Q9): bicubic, A = -0.75, no antialias
            y = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=False)
        else:                              # the paper's text: block averaging
            y = F.interpolate(x, size=size, mode="area")
        return F.interpolate(y, size=(H, W), mode="nearest-exact")


# ----------------------------------------------------------------------------------------------------------
# §3.5 Desaturation (decolor-diffusion, class DeColorization).

DECOLOR_ROUTINES = ("linear", "constant")


class Desaturation(CumulativeDegradation):
    """x ← f_i x + (1 - f_i) mean_c(x) (unweighted RGB mean); linear: f_i = 1 - 1/(T-i), so D(x, T) is grey."""

    def __init__(self, T: int, routine: str = "linear", total_remove: bool = False):
        super().__init__(T)
        if routine == "linear":
            f = 1.0 - 1.0 / (T - np.arange(T, dtype=np.float64))
        elif routine == "constant":
            f = np.full(T, 0.9)
        else:
            raise ValueError(f"unknown decolour routine {routine!r}; valid: {list(DECOLOR_ROUTINES)}")
        if total_remove:
            f[-1] = 0.0
        self.f = f

    def step_op(self, x, i, z=None):
        f = float(self.f[i])
        return f * x + (1.0 - f) * x.mean(dim=1, keepdim=True)


# ----------------------------------------------------------------------------------------------------------
# §3.6 Deterministic Gaussian noise ("hot" baseline).

class GaussianNoise(DirectDegradation):
    """D(x, s; z) = √ᾱ_{s-1} x + √(1-ᾱ_{s-1}) z with the cosine ᾱ of §3.6; z ~ N(0, I) per image."""

    def __init__(self, T: int, cosine_s: float = 0.008):
        super().__init__(T)
        self.alpha_bar = cosine_alpha_bar(T, cosine_s)

    def draw_latent(self, shape, generator, device, shared=False):
        return rng_lib.randn(shape, generator, device=device)

    def coefs(self, k: torch.Tensor, like: torch.Tensor):
        """(√ᾱ_k, √(1-ᾱ_k)) as [B, 1, 1, 1] in like's dtype."""
        a = torch.as_tensor(self.alpha_bar, dtype=torch.float64, device=like.device)[k].reshape(-1, 1, 1, 1)
        return a.sqrt().to(like.dtype), (1.0 - a).sqrt().to(like.dtype)

    def apply(self, x, k, z):
        if z is None:
            raise ValueError("the noise degradation needs its latent z (the noise)")
        a, b = self.coefs(k, x)
        return a * x + b * z


# ----------------------------------------------------------------------------------------------------------
# §3.8 Inpainting towards a constant colour, for generation (defading-generation-diffusion-pytorch, --reverse).

def colour_fill_schedule(T: int, H: int, W: int, kernel_std: float = 0.05, initial_mask: float = 1,
                         device="cpu", chunk: int = 64) -> torch.Tensor:
    """1 - α_k for k = 0..T-1, float64 [T, H, W]: 1 - α_k = Π_{j < T-1-k} m_j with centred masks σ_j = kernel_std(j+init).

    k = T-1 is the empty product, so α_{T-1} = 0 and D(x0, T) = c exactly (U12)."""
    centre = torch.tensor([[(H + 1) // 2 - 1, (W + 1) // 2 - 1]], device=device)
    d2 = squared_distance(H, W, centre, device)[0]
    sig = kernel_std * (torch.arange(T - 1, dtype=torch.float64, device=device) + initial_mask)
    running = torch.ones(1, H, W, dtype=torch.float64, device=device)
    cums = [running]                                                             # cums[n] = Π_{j<n} m_j
    for lo in range(0, T - 1, chunk):
        m = 1.0 - torch.exp(-d2 / (2.0 * sig[lo:lo + chunk, None, None] ** 2))
        running = torch.cumprod(m, dim=0) * running[-1:]
        cums.append(running)
    return torch.cat(cums).flip(0)


class ColourFill(DirectDegradation):
    """D(x, s; c) = α_{s-1} x + (1 - α_{s-1}) c, c a constant colour per image with channels U[-0.5, 0.5)."""

    def __init__(self, T: int, kernel_std: float = 0.05, initial_mask: float = 1):
        super().__init__(T)
        self.kernel_std, self.initial_mask = float(kernel_std), float(initial_mask)
        self._cache: dict = {}

    def one_minus_alpha(self, like: torch.Tensor) -> torch.Tensor:
        """1 - α_k as [T, H, W] in like's dtype (built once per size/device/dtype)."""
        H, W = like.shape[-2:]
        key = (H, W, like.device, like.dtype)
        if key not in self._cache:
            sched = colour_fill_schedule(self.T, H, W, self.kernel_std, self.initial_mask, like.device)
            self._cache[key] = sched.to(like.dtype)
        return self._cache[key]

    def draw_latent(self, shape, generator, device, shared=False):
        return rng_lib.rand((shape[0], shape[1], 1, 1), generator, device=device) - 0.5

    def apply(self, x, k, z):
        if z is None:
            raise ValueError("the colour-fill degradation needs its latent z (the colour)")
        oma = self.one_minus_alpha(x)[k].unsqueeze(1)     # [B, 1, H, W]
        return (1.0 - oma) * x + oma * z


# ----------------------------------------------------------------------------------------------------------
# §3.4 Snow (snowification/diffusion/forward_process_impl.py, class Snow): procedural, no assets.

# level -> (base mean c0, base std c1, zoom c2, motion-blur size L, thr start/end, blur σ start/end, br start/end)
SNOW_LEVELS = {
    1: dict(c0=0.1, c1=0.3, zoom=3.0, L=5, thr=(0.7, 0.3), mb=(0.5, 5.0), br=(0.95, 0.7)),
    2: dict(c0=0.55, c1=0.3, zoom=2.5, L=11, thr=(1.15, 0.7), mb=(0.05, 12.0), br=(0.95, 0.55)),
    3: dict(c0=0.55, c1=0.3, zoom=2.5, L=11, thr=(1.15, 0.7), mb=(0.05, 16.0), br=(0.95, 0.4)),
    4: dict(c0=0.55, c1=0.3, zoom=2.5, L=11, thr=(1.15, 0.55), mb=(0.05, 20.0), br=(0.95, 0.3)),
}
_GREY_WEIGHTS = (0.299, 0.587, 0.114)   # kornia.color.rgb_to_grayscale


@dataclass
class SnowPattern:
    """The snow latent: zoomed base field [P, H, W] and direction [P] (P = 1: shared by the batch)."""
    base: torch.Tensor
    vertical: torch.Tensor

    def to(self, device) -> "SnowPattern":
        return SnowPattern(self.base.to(device), self.vertical.to(device))


def clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """ImageNet-C ``clipped_zoom`` of [P, H, W]: centre crop of side ⌈H/zoom⌉, order-1 zoom, centre trim.

    ``scipy.ndimage.zoom(order=1)`` maps corner to corner, i.e. bilinear with align_corners=True, to the
    size ``round(side·zoom)`` (Python rounding, as scipy)."""
    H, W = x.shape[-2:]
    ch, cw = math.ceil(H / zoom), math.ceil(W / zoom)
    top, left = (H - ch) // 2, (W - cw) // 2
    crop = x[:, top:top + ch, left:left + cw].unsqueeze(1)
    out = F.interpolate(crop, size=(int(round(ch * zoom)), int(round(cw * zoom))), mode="bilinear",
                        align_corners=True).squeeze(1)
    t, l = (out.shape[-2] - H) // 2, (out.shape[-1] - W) // 2
    return out[:, t:t + H, l:l + W]


class Snow(DirectDegradation):
    """D(x0, s) = 2·clip(u + S_{s-1} + rot180(S_{s-1}), 0, 1) - 1 with u = (x0+1)/2 (fix_brightness)."""

    def __init__(self, T: int, level: int = 3, fix_brightness: bool = True):
        super().__init__(T)
        if level not in SNOW_LEVELS:
            raise ValueError(f"unknown snow level {level!r}; valid: {sorted(SNOW_LEVELS)}")
        self.p = SNOW_LEVELS[level]
        self.fix_brightness = fix_brightness
        self.thr = np.linspace(*self.p["thr"], T)
        self.mb = np.linspace(*self.p["mb"], T)
        self.br = np.linspace(*self.p["br"], T)

    def draw_latent(self, shape, generator, device, shared=False):
        """A snow pattern (one for the batch if ``shared``, else one per image)."""
        P = 1 if shared else shape[0]
        H, W = shape[-2:]
        base = self.p["c0"] + self.p["c1"] * rng_lib.randn((P, H, W), generator, device=device)
        vertical = rng_lib.rand((P,), generator, device=device) < 0.5
        return SnowPattern(clipped_zoom(base, self.p["zoom"]), vertical)

    def pre_blur(self, pattern: SnowPattern, k: torch.Tensor) -> torch.Tensor:
        """Thresholded, clipped snow before the motion blur: [B, H, W] for step indices k [B]."""
        thr = torch.as_tensor(self.thr, device=k.device)[k].reshape(-1, 1, 1).to(pattern.base.dtype)
        base = pattern.base.expand(k.shape[0], -1, -1) if pattern.base.shape[0] == 1 else pattern.base
        return torch.where(base < thr, torch.zeros_like(base), base).clamp(0.0, 1.0)

    def layer(self, pattern: SnowPattern, k: torch.Tensor) -> torch.Tensor:
        """S_k: [B, 1, H, W], motion-blurred along the pattern's direction with σ = mb_k (zero 'same' padding)."""
        snow = self.pre_blur(pattern, k)
        B, L = k.shape[0], self.p["L"]
        j = torch.arange(L, dtype=torch.float64, device=k.device) - L // 2
        sig = torch.as_tensor(self.mb, device=k.device)[k].reshape(-1, 1)
        g = torch.exp(-j ** 2 / (2.0 * sig ** 2))
        g = (g / g.sum(dim=1, keepdim=True)).to(snow.dtype)                    # [B, L]
        vertical = pattern.vertical.expand(B) if pattern.vertical.shape[0] == 1 else pattern.vertical
        w = torch.zeros(B, L, L, dtype=snow.dtype, device=snow.device)
        w[:, L // 2, :] = g                                                     # horizontal: middle row
        w = torch.where(vertical.reshape(-1, 1, 1), w.transpose(1, 2), w)      # rot90 (g is symmetric)
        out = F.conv2d(snow.unsqueeze(0), w.unsqueeze(1), padding=L // 2, groups=B)
        return out.squeeze(0).unsqueeze(1)

    def apply(self, x, k, z):
        if z is None:
            raise ValueError("the snow degradation needs its latent z (a SnowPattern)")
        u = (x + 1.0) / 2.0
        if not self.fix_brightness:
            br = torch.as_tensor(self.br, device=x.device)[k].reshape(-1, 1, 1, 1).to(x.dtype)
            if x.shape[1] == 3:
                grey = sum(w * u[:, c:c + 1] for c, w in enumerate(_GREY_WEIGHTS))
            else:
                grey = u.mean(dim=1, keepdim=True)
            u = br * u + (1.0 - br) * torch.maximum(u, 1.5 * grey + 0.5)
        S = self.layer(z.to(x.device), k).to(x.dtype)
        return 2.0 * (u + S + S.flip(-2, -1)).clamp(0.0, 1.0) - 1.0
