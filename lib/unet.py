"""One time-conditioned U-Net in the ADM / improved-diffusion style, as used by IHDM and EPD.

Written from the specs (``epd_spec.md`` §4.1, ``baselines_spec.md`` §2.6); the layout follows
improved-diffusion's ``UNetModel`` with IHDM's conventions:

* ``attention_levels`` are **level indices** ℓ (level ℓ has resolution N/2^ℓ), not downsampling rates.
* The time input ``t`` is a float tensor [B] fed raw into a sinusoidal embedding (max period 1e4,
  [cos, sin] order), so an integer index (749), a blur level (k = 120) or a continuous time (0.37) all work.
* No scale-shift norm, no class conditioning, no ResBlock up/down: none of the reproduced configs use them.
* GroupNorm runs in float32 and casts back, so the net runs under bf16 autocast; ``forward`` returns
  the input's dtype.

Usage::

    net = UNet(UNetConfig.epd_afhq128())
    out = net(x, t)          # x [B, 3, 128, 128], t [B] (or a python number)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------------------------------------
# Configuration. Defaults = the EPD paper's AFHQ-Cat 128² U-Net (official `configs/afhq_cat_128`).

@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3                                # Image channels (3 RGB, 1 grayscale).
    out_channels: Optional[int] = None                  # Output channels; None = in_channels.
    model_channels: int = 128                           # Base width ch; level ℓ has ch * channel_mult[ℓ] channels.
    channel_mult: tuple[int, ...] = (1, 2, 3, 4, 5)     # Width multiplier per level; len-1 downsamplings.
    num_res_blocks: int = 2                             # ResBlocks per level on the way down (+1 on the way up).
    attention_levels: tuple[int, ...] = (2,)            # LEVEL indices with self-attention (level ℓ: N/2^ℓ pixels).
    dropout: float = 0.1                                # Dropout inside every ResBlock.
    num_heads: int = 1                                  # Attention heads (the "new" qkv order).
    num_groups: int = 32                                # GroupNorm groups; largest divisor of C that is <= this.
    time_embed_mult: int = 4                            # Time-MLP width = time_embed_mult * model_channels.
    conv_resample: bool = True                          # Learned conv resampling (else avg-pool / plain nearest).

    def __post_init__(self):
        # Accept lists (e.g. from JSON) but store tuples so the config stays hashable and comparable.
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        object.__setattr__(self, "attention_levels", tuple(int(a) for a in self.attention_levels))
        if self.in_channels < 1 or (self.out_channels is not None and self.out_channels < 1):
            raise ValueError(f"in_channels/out_channels must be >= 1: {self}")
        if self.model_channels < 1 or len(self.channel_mult) == 0 or min(self.channel_mult) < 1:
            raise ValueError(f"model_channels and channel_mult must be positive and non-empty: {self}")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1: {self}")
        bad = [a for a in self.attention_levels if not 0 <= a < len(self.channel_mult)]
        if bad:
            raise ValueError(f"attention_levels {bad} out of range 0..{len(self.channel_mult) - 1} "
                             f"(they are level indices, not resolutions): {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1): {self}")
        if self.num_groups < 1 or self.time_embed_mult < 1:
            raise ValueError(f"num_groups and time_embed_mult must be >= 1: {self}")
        for c in {self.model_channels * m for m in self.channel_mult}:
            if c % self.num_heads != 0:
                raise ValueError(f"num_heads={self.num_heads} does not divide width {c}: {self}")

    @property
    def resolved_out_channels(self) -> int:
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def downsample_factor(self) -> int:
        """Input height and width must be multiples of this (2^(levels-1))."""
        return 2 ** (len(self.channel_mult) - 1)

    # Presets ----------------------------------------------------------------------------------------------

    @classmethod
    def epd_afhq128(cls, in_channels: int = 3) -> "UNetConfig":
        """EPD AFHQ-Cat 128² (epd_spec §4.1): 128 ch, mult 1..5, 2 blocks, attention at 32×32, dropout 0.1."""
        return cls(in_channels=in_channels)

    @classmethod
    def ihdm(cls, name: str) -> "UNetConfig":
        """IHDM per-dataset U-Nets (baselines_spec §2.5); ``name`` is a key of ``IHDM_PRESETS``."""
        if name not in IHDM_PRESETS:
            raise ValueError(f"unknown IHDM preset {name!r}; valid: {sorted(IHDM_PRESETS)}")
        return cls(**IHDM_PRESETS[name])

    @classmethod
    def ihdm_cifar10(cls) -> "UNetConfig":
        """IHDM `cifar10/default_cifar10_configs.py`: mult (1,2,2,2), 4 blocks, attention at 8×8 and 4×4."""
        return cls.ihdm("cifar10")

    @classmethod
    def tiny(cls, in_channels: int = 1, model_channels: int = 32) -> "UNetConfig":
        """CPU smoke-test net: 1.11 M params at 32 ch (0.28 M at 16), attention at 8×8 for 32×32 inputs.

        One Adam step on 32×1×32×32 takes about 0.33 s (32 ch) or 0.14 s (16 ch) on 2 idle CPU cores."""
        return cls(in_channels=in_channels, model_channels=model_channels, channel_mult=(1, 2, 2), num_res_blocks=1,
                   attention_levels=(2,), dropout=0.0)

    # Serialisation ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown UNetConfig keys {unknown}; valid: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# IHDM configs (`configs/<dataset>/...`). Committed presets must never change; add new names instead.
IHDM_PRESETS: dict[str, dict[str, Any]] = {
    "mnist": dict(in_channels=1, channel_mult=(1, 2, 2), num_res_blocks=4, attention_levels=(2,)),
    "mnist_small": dict(in_channels=1, model_channels=64, channel_mult=(1, 1, 1), num_res_blocks=4,
                        attention_levels=(2,)),
    "cifar10": dict(channel_mult=(1, 2, 2, 2), num_res_blocks=4, attention_levels=(2, 3)),
    "afhq64": dict(channel_mult=(1, 2, 3, 4), num_res_blocks=2, attention_levels=(2, 3)),
    "afhq256": dict(num_res_blocks=3, attention_levels=(2, 3, 4), dropout=0.3),
    "ffhq128": dict(num_res_blocks=2, attention_levels=(2, 3, 4)),      # [ours] also CelebA-/AFHQ-Cat-128.
    "ffhq256": dict(num_res_blocks=3, attention_levels=(2, 3, 4), dropout=0.3),
    "lsun_church128": dict(num_res_blocks=4, attention_levels=(2, 3, 4)),
}


# ----------------------------------------------------------------------------------------------------------
# Small building blocks.

def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 1e4) -> torch.Tensor:
    """Sinusoidal embedding of raw (possibly non-integer) times t [B] -> [B, dim], [cos, sin] order."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def group_count(channels: int, num_groups: int) -> int:
    """Largest group count <= num_groups that divides channels (32 for every paper width)."""
    g = min(num_groups, channels)
    while channels % g:
        g -= 1
    return g


# GroupNorm computed in float32 and cast back (improved-diffusion's GroupNorm32), so bf16 autocast is safe.
class GroupNorm32(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(),
                            self.eps).to(x.dtype)


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


# ResBlock: GN-SiLU-conv, + Linear(SiLU(emb)) bias, GN-SiLU-Dropout-conv(zero), skip identity or 1×1 conv.
class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_ch: int, dropout: float, num_groups: int):
        super().__init__()
        self.norm1 = GroupNorm32(group_count(in_ch, num_groups), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_ch, out_ch)
        self.norm2 = GroupNorm32(group_count(out_ch, num_groups), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb)).to(h.dtype)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


# Self-attention over all pixels: GN, 1×1 qkv, "new" order (split q/k/v, then heads), zero-init output proj.
class AttentionBlock(nn.Module):
    def __init__(self, channels: int, num_heads: int, num_groups: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = GroupNorm32(group_count(channels, num_groups), channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        flat = x.reshape(b, c, hgt * wid)
        q, k, v = self.qkv(self.norm(flat)).chunk(3, dim=1)                    # each [B, C, L]
        q, k, v = (z.reshape(b, self.num_heads, c // self.num_heads, -1).transpose(-1, -2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v)                             # [B, heads, L, C/heads]
        a = a.transpose(-1, -2).reshape(b, c, hgt * wid)
        return (flat + self.proj_out(a)).reshape(b, c, hgt, wid)


# Downsample: stride-2 3×3 conv (conv_resample) or 2×2 average pooling.
class Downsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


# Upsample: nearest ×2, then a 3×3 conv (conv_resample).
class Upsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


# A ResBlock optionally followed by attention: one encoder/decoder stage that produces (or eats) one skip.
class ResAttn(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_ch: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_ch, cfg.dropout, cfg.num_groups)
        self.attn = AttentionBlock(out_ch, cfg.num_heads, cfg.num_groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


# ----------------------------------------------------------------------------------------------------------
# The U-Net (improved-diffusion `UNetModel` layout, IHDM attention-level semantics; baselines_spec §2.6).

class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        ch = cfg.model_channels
        emb_ch = cfg.time_embed_mult * ch
        widths = [ch * m for m in cfg.channel_mult]
        num_levels = len(widths)

        # Time MLP: sinusoid(t, ch) -> Linear(ch, 4ch) -> SiLU -> Linear(4ch, 4ch).
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))

        # Stem (ch * mult[0] = ch in every paper config) and encoder; every stage output is a skip.
        self.stem = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        skip_ch = [widths[0]]
        cur = widths[0]
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                self.down.append(ResAttn(cur, width, emb_ch, cfg, level in cfg.attention_levels))
                cur = width
                skip_ch.append(cur)
            if level != num_levels - 1:
                self.down.append(Downsample(cur, cfg.conv_resample))
                skip_ch.append(cur)

        # Middle: ResBlock - Attention - ResBlock at the lowest resolution (always has attention).
        self.mid = nn.ModuleList([ResAttn(cur, cur, emb_ch, cfg, attention=True),
                                  ResAttn(cur, cur, emb_ch, cfg, attention=False)])

        # Decoder: num_res_blocks + 1 stages per level on concat(h, skip); Upsample after each level but 0.
        self.up = nn.ModuleList()
        for level in reversed(range(num_levels)):
            width = widths[level]
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(ResAttn(cur + skip_ch.pop(), width, emb_ch, cfg, level in cfg.attention_levels))
                cur = width
            if level != 0:
                self.up.append(Upsample(cur, cfg.conv_resample))
        assert not skip_ch

        # Head: GN -> SiLU -> zero-initialised 3×3 conv.
        self.out_norm = GroupNorm32(group_count(cur, cfg.num_groups), cur)
        self.out_conv = zero_init(nn.Conv2d(cur, cfg.resolved_out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        """x [B, C, H, W], t float [B] or a scalar (broadcast) -> [B, out_channels, H, W] in x.dtype."""
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"expected x of shape [B, {cfg.in_channels}, H, W], got {tuple(x.shape)}; {cfg}")
        f = cfg.downsample_factor
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"input size {tuple(x.shape[2:])} is not divisible by 2^(len(channel_mult)-1) = {f}"
                             f" for {cfg}")
        t = torch.as_tensor(t, device=x.device)
        if t.numel() == 1:
            t = t.reshape(1).expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or have shape [{x.shape[0]}], got {tuple(t.shape)}")

        emb = self.time_embed(timestep_embedding(t, cfg.model_channels))
        h = self.stem(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, ResAttn) else block(h)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for block in self.up:
            if isinstance(block, ResAttn):
                skip = skips.pop()
                h = block(torch.cat([h, skip.to(h.dtype)], dim=1), emb)
            else:
                h = block(h)
        out = self.out_conv(F.silu(self.out_norm(h)))
        return out.to(x.dtype)


# ----------------------------------------------------------------------------------------------------------
# Accounting helpers.

def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def measure_flops(model: nn.Module, x: torch.Tensor, t) -> int:
    """Forward FLOPs of ``model(x, t)`` counted by ``FlopCounterMode`` (a multiply-add counts as 2).

    Convolutions, matmuls and attention are counted; norms and pointwise ops are not. The CPU SDPA kernel
    is not in torch's FLOP registry, so it is mapped to the same formula as the GPU kernels.
    """
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
    aten = torch.ops.aten
    extra = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        # custom_mapping wraps a raw (shape) formula itself; torch's ``sdpa_flop`` is already wrapped and
        # raised TypeError here whenever the CPU flash kernel ran (contiguous q, k, v).
        def _cpu_flash_flop(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
            return sdpa_flop_count(q_shape, k_shape, v_shape)
        extra[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_flash_flop
    with FlopCounterMode(display=False, custom_mapping=extra) as counter:
        model(x, t)
    return counter.get_total_flops()
