"""Latent-space diffusion for Table 2 (epd_spec §6.4): a small convolutional autoencoder and its latent wrapper.

The paper's autoencoder is unspecified (type, downsampling factor, latent channels, scaling). Here:
a plain deterministic conv autoencoder (no KL/VQ), downsampling 2^``down`` (32² digits, down=2 -> 8×8×4 latents),
with a tanh bottleneck so latents lie in [-1, 1] like images (the samplers clip their output to [-1, 1]);
no further scale factor. Every diffusion process then runs on the latent tensor unchanged (EPD's Sobel edge map
is applied to the latent channels as it would be to image channels, Q17).

    space = LatentSpace.train_or_load(x_train, latent_channels=4, down=2, steps=1500, seed=0)
    z = space.encode(x_train)              # [N, 4, 8, 8] in [-1, 1]  -> study.train_model(process, z, ...)
    images = space.decode(z_samples)       # [N, C, 32, 32] in [-1, 1]

``LatentSpace.load(path)`` reads a checkpoint written by ``save`` (e.g. a paper-scale autoencoder trained
elsewhere).
"""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn


@dataclass(frozen=True)
class AEConfig:
    in_channels: int = 1                # Image channels.
    latent_channels: int = 4            # Latent channels (LDM's f=4 KL autoencoders use 3-4).
    width: int = 32                     # Base conv width (doubles per downsampling, capped at 4x).
    down: int = 2                       # Downsampling steps: factor 2^down per side.


def _block(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(min(8, c_out), c_out), nn.SiLU())


class AutoEncoder(nn.Module):
    """Conv encoder (stride-2 convs) / decoder (transposed convs), tanh at the bottleneck and the output."""

    def __init__(self, config: AEConfig = AEConfig()):
        super().__init__()
        self.config = config
        widths = [config.width * min(2 ** i, 4) for i in range(config.down + 1)]
        enc = [_block(config.in_channels, widths[0])]
        for i in range(config.down):
            enc += [nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.SiLU(), _block(widths[i + 1],
                                                                                                   widths[i + 1])]
        enc += [nn.Conv2d(widths[-1], config.latent_channels, 3, padding=1)]
        dec = [_block(config.latent_channels, widths[-1])]
        for i in reversed(range(config.down)):
            dec += [nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1), nn.SiLU(),
                    _block(widths[i], widths[i])]
        dec += [nn.Conv2d(widths[0], config.in_channels, 3, padding=1)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _key(config: AEConfig, train: dict, x: torch.Tensor) -> str:
    h = hashlib.sha256(json.dumps([asdict(config), train], sort_keys=True).encode())
    h.update(str(tuple(x.shape)).encode())
    h.update(x.contiguous().numpy().tobytes())
    h.update(inspect.getsource(AutoEncoder).encode() + inspect.getsource(_block).encode())
    return h.hexdigest()[:16]


def train_autoencoder(x: torch.Tensor, config: AEConfig, steps: int = 1500, batch_size: int = 64, lr: float = 2e-3,
                      seed: int = 0, device="cpu") -> tuple:
    """Adam on the per-pixel MSE of reconstructions of ``x`` ([N, C, H, W] in [-1, 1]); (model, loss log)."""
    torch.manual_seed(seed)
    ae = AutoEncoder(config).to(device)
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    log = []
    for step in range(steps):
        xb = x[torch.randint(0, len(x), (batch_size,), generator=g)].to(device)
        loss = torch.mean((ae(xb) - xb) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % max(1, steps // 50) == 0 or step == steps - 1:
            log.append({"step": step + 1, "loss": loss.item()})
    return ae.eval(), log


class LatentSpace:
    """A trained autoencoder with batched, no-grad ``encode`` / ``decode`` and its provenance (``info``)."""

    def __init__(self, ae: AutoEncoder, info: dict):
        self.ae, self.info = ae.eval(), info

    @classmethod
    def train_or_load(cls, x: torch.Tensor, latent_channels: int = 4, down: int = 2, width: int = 32,
                      steps: int = 1500, batch_size: int = 64, lr: float = 2e-3, seed: int = 0, device="cpu",
                      cache_dir: Optional[Path] = None) -> "LatentSpace":
        """Train (or reuse, by content key of config + data + code) the autoencoder on ``x``."""
        from lib.experiment import RUNS_DIR
        config = AEConfig(in_channels=x.shape[1], latent_channels=latent_channels, width=width, down=down)
        train = dict(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
        path = Path(cache_dir or RUNS_DIR / "models") / f"autoencoder-{_key(config, train, x)}" / "ae.pt"
        if path.exists():
            return cls.load(path)
        ae, log = train_autoencoder(x, config, steps, batch_size, lr, seed, device)
        space = cls(ae.cpu(), {"config": asdict(config), "train": train, "log": log, "path": str(path)})
        space.save(path)
        return space

    @classmethod
    def load(cls, path) -> "LatentSpace":
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        ae = AutoEncoder(AEConfig(**ckpt["config"]))
        ae.load_state_dict(ckpt["state"])
        return cls(ae, {**ckpt["info"], "path": str(path)})

    def save(self, path) -> None:
        from lib import io
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        io.torch_save({"config": asdict(self.ae.config), "state": self.ae.state_dict(), "info": self.info}, path)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        return torch.cat([self.ae.encode(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        return torch.cat([self.ae.decode(z[i:i + batch_size]) for i in range(0, len(z), batch_size)])

    def latent_shape(self, image_shape) -> tuple:
        c = self.ae.config
        return (c.latent_channels, image_shape[-2] >> c.down, image_shape[-1] >> c.down)

    def reconstruction(self, x: torch.Tensor) -> dict:
        """RMSE/SSIM of decode(encode(x)) vs x: the floor any latent model's samples inherit."""
        from lib.metrics import rmse, ssim
        rec = self.decode(self.encode(x))
        return {"AE_RMSE": float(rmse(rec, x).mean()), "AE_SSIM": float(ssim(rec, x).mean()),
                "latent_std": float(self.encode(x).std()), "latent_absmax": float(self.encode(x).abs().max())}


def latent_figure(z: torch.Tensor, n: int = 8):
    """The first latent channels of n latents as grayscale tiles (rows: samples, cols: channels)."""
    import matplotlib.pyplot as plt
    z = z[:n].float()
    c = z.shape[1]
    fig, axes = plt.subplots(len(z), c, figsize=(1.1 * c, 1.1 * len(z)), squeeze=False)
    for i in range(len(z)):
        for j in range(c):
            axes[i, j].imshow(z[i, j].numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            axes[i, j].axis("off")
    fig.tight_layout()
    return fig


def latent_claims(per_seed: dict, fd_col: str, **context) -> list:
    """Claims 11-12 (Table 2): latent FID ordering EPD vs DDPM and BNDM, tested on our single latent setting; the
    paper's FIDs are ``epd_table2_latent_fid`` of lib/reports/paper_data.yaml."""
    from lib.reports import claims, paper_data
    epd, ddpm, bndm = (per_seed[m][fd_col] for m in ("edge_preserving", "ddpm", "bndm"))
    t2 = paper_data.table("epd_table2_latent_fid")
    c, a = t2["celeba_256"], t2["afhq_cat_512"]
    n = {row: {arm: paper_data.num(v) for arm, v in vals.items()} for row, vals in t2.items()}
    nc, na = n["celeba_256"], n["afhq_cat_512"]
    return [
        claims.compare("11a", "epd", f"Latent space (CelebA 256²): EPD FID > DDPM ({nc['edge_preserving']} vs "
                       f"{nc['ddpm']}; Table 2)", fd_col, {"ddpm": ddpm}, {"edge_preserving": epd},
                       paper_values={"CelebA EPD": c["edge_preserving"], "CelebA DDPM": c["ddpm"]}, **context),
        claims.compare("11b", "epd", f"Latent space (CelebA 256²): EPD FID > BNDM ({nc['edge_preserving']} vs "
                       f"{nc['bndm']}; Table 2)", fd_col, {"bndm": bndm}, {"edge_preserving": epd},
                       paper_values={"CelebA EPD": c["edge_preserving"], "CelebA BNDM": c["bndm"]}, **context),
        claims.compare("12a", "epd", f"Latent space (AFHQ-Cat 512²): EPD FID < DDPM ({na['edge_preserving']} vs "
                       f"{na['ddpm']}; Table 2)", fd_col, {"edge_preserving": epd}, {"ddpm": ddpm},
                       paper_values={"AFHQ-Cat EPD": a["edge_preserving"], "AFHQ-Cat DDPM": a["ddpm"]}, **context),
        claims.compare("12b", "epd", f"Latent space (AFHQ-Cat 512²): EPD FID > BNDM ({na['edge_preserving']} vs "
                       f"{na['bndm']}; Table 2)", fd_col, {"bndm": bndm}, {"edge_preserving": epd},
                       paper_values={"AFHQ-Cat EPD": a["edge_preserving"], "AFHQ-Cat BNDM": a["bndm"]}, **context),
    ]
