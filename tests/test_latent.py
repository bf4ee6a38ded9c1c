"""lib/studies/latent.py: the small autoencoder, its cached training, and the latent wrapper."""
from __future__ import annotations

import torch

from lib.studies import latent
from tests.conftest import smooth_images


def test_autoencoder_shapes_and_range():
    ae = latent.AutoEncoder(latent.AEConfig(in_channels=1, latent_channels=4, width=8, down=2))
    x = smooth_images(2, 1, 32)
    z = ae.encode(x)
    assert z.shape == (2, 4, 8, 8) and z.abs().max() <= 1
    assert ae.decode(z).shape == x.shape


def test_train_reduces_loss_and_caches(tmp_path):
    x = smooth_images(16, 1, 16)
    space = latent.LatentSpace.train_or_load(x, latent_channels=2, down=1, width=8, steps=60, batch_size=8,
                                             cache_dir=tmp_path)
    log = space.info["log"]
    assert log[-1]["loss"] < log[0]["loss"]
    again = latent.LatentSpace.train_or_load(x, latent_channels=2, down=1, width=8, steps=60, batch_size=8,
                                             cache_dir=tmp_path)
    torch.testing.assert_close(again.encode(x), space.encode(x))     # loaded, not retrained
    assert space.latent_shape(x.shape) == (2, 8, 8)
    rec = space.reconstruction(x)
    assert 0 <= rec["AE_RMSE"] <= 1 and rec["latent_absmax"] <= 1


def test_latent_diffusion_roundtrip_smoke():
    from lib.studies import study
    from lib.profiles import get_profile
    prof = get_profile("smoke", train_steps=2)
    x = smooth_images(8, 1, 16)
    space = latent.LatentSpace(latent.AutoEncoder(latent.AEConfig(1, 4, 8, 1)), {})
    z = space.encode(x)
    proc = study.process_for_profile("edge_preserving", prof, lambda_min=1e-5)
    from lib.train import TrainConfig, train
    from lib.unet import UNet
    net = UNet(prof.unet(4, 4))
    res = train(proc, net, z, TrainConfig(steps=2, batch_size=4, hflip=False), progress=False)
    zs = study.sample_model(proc, res.ema, 2, z.shape[1:], 0, prof, progress=False)
    assert space.decode(zs).shape == (2, 1, 16, 16)


def test_latent_claims_ids():
    ps = {m: {"FD_x": [v]} for m, v in (("edge_preserving", 2.0), ("ddpm", 1.0), ("bndm", 1.5), ("ihdm", 9.0))}
    entries = latent.latent_claims(ps, "FD_x", dataset="toy")
    assert [e["id"] for e in entries] == ["11a", "11b", "12a", "12b"]
    assert all(e["verdict"] == "inconclusive" for e in entries)
