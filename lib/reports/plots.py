"""Figures shared by the notebooks: image grids, forward-process strips, loss curves."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def to_display(x: torch.Tensor) -> np.ndarray:
    """[C,H,W] in [-1,1] -> [H,W(,3)] in [0,1] for imshow."""
    a = ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def grid(images: torch.Tensor, nrow: Optional[int] = None, pad: int = 1) -> np.ndarray:
    """Tile [N,C,H,W] images in [-1,1] into one [H',W'(,3)] array in [0,1] (white padding)."""
    n, c, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    out = np.ones((ncol * (h + pad) + pad, nrow * (w + pad) + pad, 3))
    for i in range(n):
        r, q = divmod(i, nrow)
        tile = to_display(images[i])
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = \
            tile[..., None] if tile.ndim == 2 else tile
    return out


def image_grid_figure(panels: Dict[str, torch.Tensor], nrow: Optional[int] = None, title: str = "",
                      panel_size: float = 3.2):
    """One subplot per named set of images (e.g. one per method)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size * len(panels), panel_size + 0.4), squeeze=False)
    for ax, (name, imgs) in zip(axes[0], panels.items()):
        ax.imshow(grid(imgs, nrow), interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def strip_figure(rows: Dict[str, Sequence[torch.Tensor]], col_labels: Sequence[str], title: str = "",
                 cell: float = 1.3):
    """Rows of single images (e.g. a forward process at several t per method); images [C,H,W] in [-1,1]."""
    nr, nc = len(rows), len(col_labels)
    fig, axes = plt.subplots(nr, nc, figsize=(cell * nc + 1.2, cell * nr + 0.5), squeeze=False)
    for i, (name, imgs) in enumerate(rows.items()):
        for j, img in enumerate(imgs):
            ax = axes[i, j]
            ax.imshow(to_display(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def loss_curves_figure(logs: Dict[str, Sequence[dict]], title: str = "training loss"):
    """Loss vs step per model; each process's loss has its own scale, so each gets its own axis."""
    fig, axes = plt.subplots(1, len(logs), figsize=(3.6 * len(logs), 3), squeeze=False)
    for ax, (name, log) in zip(axes[0], logs.items()):
        ax.plot([e["step"] for e in log], [e["loss"] for e in log])
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
