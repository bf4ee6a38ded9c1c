"""Tests for lib/unet.py: shapes, zero-init head, time conditioning, paper preset, config round trip, bf16."""
import json
import math

import pytest
import torch
from torch import nn

from lib.unet import (IHDM_PRESETS, AttentionBlock, GroupNorm32, UNet, UNetConfig, count_parameters, group_count,
                      measure_flops, timestep_embedding)


def _perturb_zero_init(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every zero-initialised conv (ResBlock conv2, attention proj_out, head) small random weights.

    With them at zero, every ResBlock is its skip path and the time embedding cannot reach the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)) and not m.weight.any():
                m.weight.copy_(0.05 * torch.randn(m.weight.shape, generator=g))
    return net


def _batch(cfg: UNetConfig, b: int = 2, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, cfg.in_channels, size, size, generator=g)


# ----------------------------------------------------------------------------------------------------------
# Shapes and init.

@pytest.mark.parametrize("cfg, out_ch", [
    (UNetConfig.tiny(in_channels=1), 1),
    (UNetConfig.tiny(in_channels=3), 3),
    (UNetConfig.from_dict({**UNetConfig.tiny(in_channels=3).to_dict(), "out_channels": 6}), 6),
])
def test_output_shape(cfg, out_ch):
    torch.manual_seed(0)
    net = UNet(cfg)
    x = _batch(cfg, b=3, size=32)
    y = net(x, torch.tensor([0.0, 0.37, 749.0]))
    assert y.shape == (3, out_ch, 32, 32)
    assert y.dtype == x.dtype


def test_zero_head_then_one_step_moves_it():
    torch.manual_seed(0)
    cfg = UNetConfig.tiny()
    net = UNet(cfg)
    x, target = _batch(cfg, b=4, seed=1), _batch(cfg, b=4, seed=2)
    t = torch.tensor([0.0, 1.0, 10.0, 749.0])
    assert torch.equal(net(x, t), torch.zeros_like(x))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = ((net(x, t) - target) ** 2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        assert net(x, t).abs().max() > 1e-4


# ----------------------------------------------------------------------------------------------------------
# Time conditioning.

def test_timestep_embedding_values():
    t = torch.tensor([0.0, 0.37, 749.0])
    emb = timestep_embedding(t, 32)
    assert emb.shape == (3, 32)
    # [cos, sin] order: t = 0 gives ones then zeros; column 0 has frequency 1, column 15 has 1e4^(-15/16).
    assert torch.equal(emb[0], torch.cat([torch.ones(16), torch.zeros(16)]))
    assert emb[1, 0].item() == pytest.approx(math.cos(0.37), abs=1e-6)
    assert emb[2, 16].item() == pytest.approx(math.sin(749.0), abs=1e-4)
    assert emb[2, 15].item() == pytest.approx(math.cos(749.0 * 1e4 ** (-15 / 16)), abs=1e-5)
    assert timestep_embedding(t, 33).shape == (3, 33)        # odd dim: zero-padded


def test_time_changes_output_after_perturbing_zero_init():
    torch.manual_seed(0)
    cfg = UNetConfig.tiny()
    net = _perturb_zero_init(UNet(cfg)).eval()
    x = _batch(cfg, b=1).expand(3, -1, -1, -1)
    with torch.no_grad():
        y = net(x, torch.tensor([0.0, 0.37, 749.0]))
        y_again = net(x, torch.tensor([0.0, 0.37, 749.0]))
    assert torch.equal(y, y_again)
    assert (y[0] - y[1]).abs().max() > 1e-3
    assert (y[1] - y[2]).abs().max() > 1e-3


def test_time_dependent_target_is_learned():
    torch.manual_seed(0)
    cfg = UNetConfig.tiny()
    net = UNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = _batch(cfg, b=1, size=8).expand(4, -1, -1, -1)
    t = torch.tensor([0.0, 749.0]).repeat(2)
    target = torch.where(t == 0, -1.0, 1.0)[:, None, None, None].expand_as(x)   # same x, target set by t only
    for _ in range(12):                                   # measured gap after 12 steps: 0.47
        opt.zero_grad()
        ((net(x, t) - target) ** 2).mean().backward()
        opt.step()
    with torch.no_grad():
        y0, y1 = net(x[:1], 0.0), net(x[:1], 749.0)
    assert (y1 - y0).mean() > 0.1


def test_scalar_time_broadcasts():
    torch.manual_seed(0)
    cfg = UNetConfig.tiny()
    net = _perturb_zero_init(UNet(cfg)).eval()
    x = _batch(cfg, b=3)
    with torch.no_grad():
        ref = net(x, torch.full((3,), 5.0))
        assert torch.equal(net(x, 5.0), ref)
        assert torch.equal(net(x, 5), ref)
        assert torch.equal(net(x, torch.tensor(5.0)), ref)
        with pytest.raises(ValueError, match="t must be"):
            net(x, torch.zeros(2))


# ----------------------------------------------------------------------------------------------------------
# The paper preset.

def test_epd_afhq128_preset():
    cfg = UNetConfig.epd_afhq128()
    assert cfg == UNetConfig()
    assert (cfg.model_channels, cfg.channel_mult, cfg.num_res_blocks, cfg.attention_levels, cfg.dropout) == \
        (128, (1, 2, 3, 4, 5), 2, (2,), 0.1)
    torch.manual_seed(0)
    net = UNet(cfg).eval()
    n = count_parameters(net)
    print(f"epd_afhq128 parameters: {n:,}")
    # Measured: 146,512,003 (widths 128..640, 2 blocks down / 3 up). Exact, so any layout change shows up.
    assert n == 146_512_003

    # Attention at level 2 only (32×32): 2 blocks down + 3 up, plus the middle block's one at 8×8.
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[2:])))
             for m in net.modules() if isinstance(m, AttentionBlock)]
    with torch.no_grad():
        y = net(torch.randn(1, 3, 128, 128), torch.tensor([749.0]))
    for h in hooks:
        h.remove()
    assert y.shape == (1, 3, 128, 128)
    assert sorted(seen) == [(8, 8)] + [(32, 32)] * 5
    assert net.mid[0].attn is not None and net.mid[1].attn is None


def test_tiny_preset():
    cfg = UNetConfig.tiny()
    assert (cfg.in_channels, cfg.model_channels, cfg.channel_mult, cfg.dropout) == (1, 32, (1, 2, 2), 0.0)
    # Measured: 1,112,801 (32 ch) and 280,177 (16 ch).
    assert count_parameters(UNet(cfg)) == 1_112_801
    assert count_parameters(UNet(UNetConfig.tiny(model_channels=16))) == 280_177


def test_ihdm_presets():
    c = UNetConfig.ihdm_cifar10()
    assert c == UNetConfig.ihdm("cifar10")
    assert (c.channel_mult, c.num_res_blocks, c.attention_levels, c.dropout) == ((1, 2, 2, 2), 4, (2, 3), 0.1)
    for name in IHDM_PRESETS:
        UNetConfig.ihdm(name)                               # validates (levels in range, heads divide widths)
    assert UNetConfig.ihdm("mnist").in_channels == 1
    assert 28 % UNetConfig.ihdm("mnist").downsample_factor == 0
    with pytest.raises(ValueError, match="valid"):
        UNetConfig.ihdm("celeba")


# ----------------------------------------------------------------------------------------------------------
# Config validation and serialisation.

def test_bad_input_size_raises():
    net = UNet(UNetConfig.tiny())
    with pytest.raises(ValueError, match="divisible"):
        net(torch.zeros(1, 1, 30, 32), torch.zeros(1))
    with pytest.raises(ValueError, match="expected x"):
        net(torch.zeros(1, 3, 32, 32), torch.zeros(1))


def test_config_round_trip_and_validation():
    for cfg in (UNetConfig(), UNetConfig.tiny(3), UNetConfig.ihdm_cifar10(),
                UNetConfig(out_channels=6, conv_resample=False)):
        d = json.loads(json.dumps(cfg.to_dict()))           # lists after JSON
        assert isinstance(d["channel_mult"], list)
        back = UNetConfig.from_dict(d)
        assert back == cfg and isinstance(back.channel_mult, tuple) and hash(back) == hash(cfg)
    with pytest.raises(ValueError, match="unknown UNetConfig keys"):
        UNetConfig.from_dict({"attention_resolutions": [16]})
    with pytest.raises(ValueError, match="level indices"):
        UNetConfig(channel_mult=(1, 2), attention_levels=(16,))
    with pytest.raises(ValueError, match="num_heads"):
        UNetConfig(model_channels=32, channel_mult=(1, 2), attention_levels=(), num_heads=3)


def test_group_count_and_small_widths():
    assert group_count(640, 32) == 32 and group_count(16, 32) == 16 and group_count(48, 32) == 24
    # 16 channels: GroupNorm(16) at level 0, and 48-channel decoder concats get 24 groups.
    cfg = UNetConfig(in_channels=3, model_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                     attention_levels=(1,), dropout=0.0)
    net = UNet(cfg)
    groups = {m.num_channels: m.num_groups for m in net.modules() if isinstance(m, nn.GroupNorm)}
    assert groups[16] == 16 and groups[48] == 24 and groups[32] == 32
    assert net(_batch(cfg), 3.0).shape == (2, 3, 16, 16)


def test_conv_resample_off():
    cfg = UNetConfig.from_dict({**UNetConfig.tiny().to_dict(), "conv_resample": False})
    net = UNet(cfg)
    assert count_parameters(net) < count_parameters(UNet(UNetConfig.tiny()))
    assert net(_batch(cfg), 1.0).shape == (2, 1, 16, 16)


# ----------------------------------------------------------------------------------------------------------
# Mixed precision and FLOPs.

def test_bf16_autocast_cpu():
    torch.manual_seed(0)
    cfg = UNetConfig.tiny(in_channels=3)
    net = _perturb_zero_init(UNet(cfg)).eval()
    x, t = _batch(cfg, b=2, size=32), torch.tensor([3.0, 400.0])
    with torch.no_grad():
        ref = net(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x, t)
    assert y.dtype == torch.float32                        # forward returns the input dtype
    assert torch.isfinite(y).all()
    rel = (y - ref).norm() / ref.norm()
    assert 0 < rel < 5e-2                                   # bf16 really ran, and stayed close


def test_groupnorm32_computes_in_float32():
    gn = GroupNorm32(2, 4)
    x = (1000 + torch.randn(2, 4, 8, 8)).to(torch.bfloat16)   # large mean: bf16 variance would be garbage
    y = gn(x)
    assert y.dtype == torch.bfloat16
    ref = nn.functional.group_norm(x.float(), 2)
    assert torch.allclose(y.float(), ref, atol=0.05)


def test_measure_flops_counts_convs_and_attention():
    base = UNetConfig.tiny()
    no_attn = UNetConfig.from_dict({**base.to_dict(), "attention_levels": []})
    x, t = torch.randn(1, 1, 32, 32), torch.zeros(1)
    f_attn, f_plain = measure_flops(UNet(base), x, t), measure_flops(UNet(no_attn), x, t)
    assert measure_flops(UNet(base), torch.randn(2, 1, 32, 32), torch.zeros(2)) == 2 * f_attn
    # Level 2 (8×8, 64 ch) has 1 + 2 attention blocks: qkv 1×1, out proj 1×1, and QK^T + AV (2·2·L²·C).
    L, C = 64, 64
    per_block = 2 * L * C * 3 * C + 2 * L * C * C + 4 * L * L * C
    assert f_attn - f_plain == 3 * per_block
    assert 4e8 < f_attn < 6e8                               # measured 497,352,704 forward FLOPs at 32×32


def test_measure_flops_counts_the_cpu_flash_attention_kernel():
    # Contiguous q, k, v make the CPU SDPA take aten._scaled_dot_product_flash_attention_for_cpu (our U-Net's
    # transposed views escape it); measure_flops used to raise TypeError there.
    class SDPA(nn.Module):
        def forward(self, q, t):
            return nn.functional.scaled_dot_product_attention(q, q.clone(), q.clone())

    B, H, L, D = 2, 4, 64, 16
    q = torch.randn(B, H, L, D)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        SDPA()(q, None)
    assert any("flash_attention_for_cpu" in e.name for e in prof.events())   # the path this test is about
    assert measure_flops(SDPA(), q, None) == 4 * B * H * L * L * D          # QKᵀ + AV: 2 matmuls × 2 FLOP/MAC
