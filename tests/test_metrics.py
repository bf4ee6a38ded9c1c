"""Tests for lib/metrics: analytic checks of every metric, the offline Inception load path, and the
project-trained MNIST classifier extractor (trained once per session into a temporary cache)."""
import time

import numpy as np
import pytest
import torch

from lib.metrics import (ClassifierExtractor, InceptionExtractor, MissingWeightsError, evaluate_samples,
                         feature_stats, fid_from_features, frechet_distance, get_extractor,
                         high_frequency_power, inception_available, precision_recall, radial_power_spectrum,
                         reference_stats, rmse, ssim, swd, to_uint8_rgb, train_classifier_extractor,
                         load_classifier_extractor)
from lib.metrics.features import FID_WEIGHTS_FILENAME, find_inception_weights, reference_path


def _gaussian_blur(x, sigma):
    from torchvision.transforms.functional import gaussian_blur
    return gaussian_blur(x, kernel_size=2 * int(3 * sigma) + 1, sigma=sigma)


@pytest.fixture(scope="module")
def digits():
    from lib.data import load_dataset
    ds = load_dataset("mnist")
    return ds.float(), ds.labels


#----------------------------------------------------------------------------
# Quantisation, SSIM, RMSE.

def test_to_uint8_rgb_quantises_and_repeats_gray():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 1.7]).reshape(1, 1, 2, 3)
    u8 = to_uint8_rgb(x)
    assert u8.shape == (1, 2, 3, 3) and u8.dtype == np.uint8
    assert u8[0, :, :, 0].ravel().tolist() == [0, 0, 128, 191, 255, 255]
    assert (u8[..., 0] == u8[..., 1]).all() and (u8[..., 0] == u8[..., 2]).all()
    u8_in = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert np.array_equal(to_uint8_rgb(u8_in), u8_in.permute(0, 2, 3, 1).numpy())
    assert np.array_equal(to_uint8_rgb(u8_in.float() / 127.5 - 1), to_uint8_rgb(u8_in))


def test_ssim_rmse_identity_offset_and_noise():
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 200, (4, 3, 32, 32), generator=g).float()
    x = _gaussian_blur(u8.round() / 127.5 - 1, 1.0)
    assert np.allclose(ssim(x, x), 1.0) and np.array_equal(rmse(x, x), np.zeros(4))
    # A constant offset of 51 grey levels is 0.2 in [0, 1] units (no clipping: values stay <= 200 + 51).
    base = torch.randint(0, 200, (3, 1, 16, 16), generator=g).float()
    a, b = base / 127.5 - 1, (base + 51) / 127.5 - 1
    assert np.allclose(rmse(a, b), 0.2, atol=1e-12)
    noise = torch.randn(x.shape, generator=g)
    s_small, s_large = ssim(x, x + 0.05 * noise), ssim(x, x + 0.3 * noise)
    assert (s_small < 1).all() and (s_large < s_small).all()
    assert (rmse(x, x + 0.3 * noise) > rmse(x, x + 0.05 * noise)).all()

#----------------------------------------------------------------------------
# Fréchet distance.

def test_frechet_distance_of_features_with_themselves_is_zero():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2000, 32)) @ rng.normal(size=(32, 32)) + 3.0
    mu, sigma = feature_stats(feats)
    assert mu.shape == (32,) and sigma.shape == (32, 32)
    assert abs(fid_from_features(feats, feats)) < 1e-6 * np.trace(sigma)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    var1, var2 = rng.uniform(0.2, 3.0, size=d), rng.uniform(0.2, 3.0, size=d)
    exact = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    fd = frechet_distance((mu1, np.diag(var1)), (mu2, np.diag(var2)))
    assert fd == pytest.approx(exact, rel=1e-8)
    n = 100_000
    a = mu1 + np.sqrt(var1) * rng.normal(size=(n, d))
    b = mu2 + np.sqrt(var2) * rng.normal(size=(n, d))
    assert fid_from_features(a, b) == pytest.approx(exact, rel=0.03)
    assert fid_from_features(a, a + 1.0) == pytest.approx(d, rel=1e-6)   # pure mean shift by 1 per axis

#----------------------------------------------------------------------------
# Precision / recall.

def _mixture(rng, modes, per_mode, d=8, d_noise=3, spacing=20.0):
    """Modes at spacing * e_m (~28 apart), each a unit Gaussian in the first d_noise axes."""
    noise = lambda: np.pad(rng.normal(size=(per_mode, d_noise)), ((0, 0), (0, d - d_noise)))
    return np.concatenate([spacing * np.eye(d)[m] + noise() for m in modes])


def test_precision_recall_identical_disjoint_and_half_the_modes():
    rng = np.random.default_rng(0)
    real = _mixture(rng, range(8), 150)
    assert precision_recall(real, real) == dict(precision=1.0, recall=1.0)
    far = real + 1000.0
    assert precision_recall(real, far) == dict(precision=0.0, recall=0.0)
    half = _mixture(rng, range(4), 300)                   # same count, only modes 0..3
    pr = precision_recall(real, half, k=3)
    assert pr["precision"] > 0.9
    assert 0.4 < pr["recall"] < 0.55
    fresh = _mixture(rng, range(8), 150)                  # an independent draw of the same mixture
    pr = precision_recall(real, fresh)
    assert pr["precision"] > 0.9 and pr["recall"] > 0.9

#----------------------------------------------------------------------------
# Radially averaged power spectrum.

def test_radial_spectrum_white_noise_is_flat_and_blur_falls():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(300, 1, 32, 32, generator=g) * 2 - 1
    freqs, power = radial_power_spectrum(noise)
    assert freqs[0] == 0 and freqs[-1] == 0.5 and len(freqs) == 17
    low, high = power[(freqs >= 0.05) & (freqs <= 0.2)].mean(), power[(freqs >= 0.3)].mean()
    assert abs(high / low - 1) < 0.1
    # Parseval: the 2-D power sums to the pixel variance ((2/255)^2 * 256^2 / 12 for uniform noise in [0,1]).
    from lib.metrics.spectrum import power_spectrum_2d
    assert power_spectrum_2d(noise)[0].sum() == pytest.approx(1 / 12, rel=0.03)
    assert high_frequency_power(noise, 0.25) == pytest.approx(1 - np.pi * 0.25 ** 2, abs=0.02)

    blurred = _gaussian_blur(noise, 1.5) * 4
    _, pb = radial_power_spectrum(blurred)
    assert (np.diff(pb[1:12]) < 0).all()                 # falls with frequency
    assert pb[freqs >= 0.3].mean() < 0.01 * pb[(freqs >= 0.05) & (freqs <= 0.2)].mean()
    assert high_frequency_power(blurred) < 0.05 < high_frequency_power(noise)

#----------------------------------------------------------------------------
# SWD.

def test_swd_zero_for_identical_sets_and_frequency_resolved(digits):
    x = digits[0][::20]                                   # 250 digits, 32x32
    same = swd(x, x, seed=0)
    assert same["sizes"] == [32, 16, 8] and same["per_level"] == [0.0, 0.0, 0.0]
    g = torch.Generator().manual_seed(0)
    noisy = swd(x, (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1))
    assert noisy["per_level"][0] > 0.05 and min(noisy["per_level"]) > 0   # pixel noise: mostly the finest level
    blurred = swd(x, _gaussian_blur(x, 1.0))
    assert blurred["per_level"][0] > 0.05
    assert blurred["per_level"][0] > 2 * blurred["per_level"][-1]
    assert swd(x[:40], x.flip(0)[:40], seed=3) == swd(x[:40], x.flip(0)[:40], seed=3)     # seeded


#----------------------------------------------------------------------------
# Inception: offline load path.

@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("FID_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("FID_ALLOW_DOWNLOAD", raising=False)
    import pytorch_fid.inception as pfi

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")
    monkeypatch.setattr(pfi, "load_state_dict_from_url", no_download)
    return tmp_path / "torch_home" / "hub" / "checkpoints" / FID_WEIGHTS_FILENAME


def test_inception_without_weights_raises_one_clear_error(empty_torch_home, tmp_path):
    assert not inception_available()
    with pytest.raises(MissingWeightsError) as err:
        InceptionExtractor()
    assert isinstance(err.value, FileNotFoundError)
    message = str(err.value)
    assert str(empty_torch_home) in message and "FID_INCEPTION_WEIGHTS" in message
    with pytest.raises(MissingWeightsError, match="nowhere.pth"):
        get_extractor("inception", weights_path=str(tmp_path / "nowhere.pth"))


def test_inception_loads_local_weights_offline(empty_torch_home, tmp_path, monkeypatch):
    import torchvision
    import pytorch_fid.inception as pfi
    start = time.time()
    # A random-init FID Inception with pytorch-fid's exact structure, saved as a stand-in weights file.
    with monkeypatch.context() as m:
        m.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(torchvision.models.Inception3, "load_state_dict", lambda self, sd, *a, **k: None)
        fake_state = pfi.fid_inception_v3().state_dict()
    empty_torch_home.parent.mkdir(parents=True)
    torch.save(fake_state, empty_torch_home)
    assert inception_available()
    with pytest.warns(UserWarning, match="not pytorch-fid's released file"):
        ext = InceptionExtractor()
    assert ext.weights_path == empty_torch_home and not ext.info()["weights_verified"]
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    feats = ext.features(x)
    assert feats.shape == (2, 2048) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert ext.name == "FID_inception" and ext.info()["dim"] == 2048
    # An explicit path comes first; the env var second.
    moved = tmp_path / "elsewhere.pth"
    empty_torch_home.rename(moved)
    assert find_inception_weights(str(moved)) == moved and not inception_available()
    monkeypatch.setenv("FID_INCEPTION_WEIGHTS", str(moved))
    assert find_inception_weights() == moved
    print(f"fake-weights Inception test: {time.time() - start:.1f} s")

#----------------------------------------------------------------------------
# MNIST classifier extractor (trained once into a temporary cache).

@pytest.fixture(scope="module")
def mnistclf(tmp_path_factory):
    cache = tmp_path_factory.mktemp("extractors")
    start = time.time()
    ext = train_classifier_extractor("mnistclf", cache_dir=cache)
    print(f"mnistclf: trained in {time.time() - start:.1f} s, held-out accuracy {ext.heldout_accuracy:.4f}")
    return ext, cache


def test_mnistclf_trains_caches_and_is_deterministic(mnistclf, digits):
    ext, cache = mnistclf
    assert isinstance(ext, ClassifierExtractor) and not ext.loaded_from_cache
    assert ext.heldout_accuracy > 0.95 and ext.info()["heldout_count"] == 500
    assert ext.name == "FD_mnistclf" and ext.dim == 128
    assert ext.path.parent == cache and ext.path.name.startswith("mnistclf_")
    x = digits[0][:400]
    f1, f2 = ext.features(x), ext.features(x, batch_size=37)
    assert f1.shape == (400, 128) and np.array_equal(f1, ext.features(x)) and np.allclose(f1, f2, atol=1e-5)
    again = get_extractor("mnistclf", cache_dir=cache)
    assert again.loaded_from_cache and again.info()["train_data_hash"] == ext.info()["train_data_hash"]
    assert again.heldout_accuracy == ext.heldout_accuracy and np.array_equal(again.features(x), f1)


@pytest.fixture(scope="module")
def committed_mnistclf():
    """The committed digit classifier (lib/metrics/weights): loaded, never trained, so the fast tier needs no
    training run (the trained-here path has its own test, test_mnistclf_trains_caches_and_is_deterministic)."""
    from lib.metrics import get_extractor
    return get_extractor("mnistclf")


def test_classifier_extractor_loads_from_its_file_without_training_data(committed_mnistclf, digits, tmp_path):
    """What a GPU run gets (scripts/gpu_pack.py): the trained file alone, elsewhere, gives the same features."""
    import torch as _torch
    ext = committed_mnistclf
    run_hash = _torch.load(ext.path, map_location="cpu", weights_only=False)["meta"]["run_hash"]
    moved = tmp_path / f"mnistclf_{run_hash}.pt"                # the name train_classifier_extractor gives it
    moved.write_bytes(ext.path.read_bytes())
    again = load_classifier_extractor(moved, verbose=False)
    assert (again.name, again.heldout_accuracy) == (ext.name, ext.heldout_accuracy)
    x = digits[0][:64]
    assert np.array_equal(again.features(x), ext.features(x))
    renamed = tmp_path / "mnistclf_000000000000.pt"
    renamed.write_bytes(ext.path.read_bytes())
    with pytest.raises(ValueError, match="does not match its own run hash"):
        load_classifier_extractor(renamed)
    with pytest.raises(FileNotFoundError, match="get_extractor"):
        load_classifier_extractor(tmp_path / "cifarclf_missing.pt")


def test_mnistclf_fd_separates_real_from_noise(committed_mnistclf, digits):
    ext = committed_mnistclf
    images = digits[0]
    a, b = images[0::4], images[1::4]                      # two disjoint sets, 125 of each class each
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(a.shape, generator=g).clamp(-1, 1)
    fa = ext.features(a)
    fd_real = fid_from_features(fa, ext.features(b))
    fd_noise = fid_from_features(fa, ext.features(noise))
    fd_blur = fid_from_features(fa, ext.features(_gaussian_blur(b, 1.0)))
    assert fd_real < 0.05 * fd_noise
    assert fd_real < fd_blur < fd_noise


def test_evaluate_samples_and_reference_cache(committed_mnistclf, digits, tmp_path):
    ext = committed_mnistclf
    real, fake = digits[0][0:1000:2], digits[0][1:1000:2]
    row = evaluate_samples(fake, real, ext, ref_key="mnist first 1000 / even", cache_dir=tmp_path,
                           swd_kwargs=dict(patches_per_image=8, n_projections=64))
    assert set(row) >= {"FD_mnistclf", "precision", "recall", "SWD_mean", "SWD_per_level", "n_fake", "n_real",
                        "extractor"}
    assert row["n_fake"] == row["n_real"] == 500 and row["extractor"]["heldout_accuracy"] > 0.95
    assert row["FD_mnistclf"] == pytest.approx(fid_from_features(ext.features(fake), ext.features(real)), rel=1e-6)
    assert row["precision"] > 0.5 and row["recall"] > 0.5 and len(row["SWD_per_level"]) == 3
    path = reference_path(ext, real, "mnist first 1000 / even", tmp_path)
    assert path.is_file() and path.name.startswith(ext.cache_id + "_mnist-first-1000-even-")
    mu, sigma = reference_stats(ext, real, "mnist first 1000 / even", tmp_path)
    mu2, sigma2 = feature_stats(ext.features(real))
    assert np.allclose(mu, mu2) and np.allclose(sigma, sigma2)


def test_get_extractor_lists_valid_names(monkeypatch):
    monkeypatch.delenv("DIFFUSION_DATA_ROOT", raising=False)
    with pytest.raises(ValueError, match="inception.*mnistclf.*cifarclf"):
        get_extractor("vgg")
    # cifarclf without a data folder loads its committed weights (test_committed_cifarclf_loads_...); with the
    # committed file missing it needs the folder to train (test_changed_or_missing_committed_weights_are_refused).

#----------------------------------------------------------------------------
# Committed extractor weights (a fixed artefact, as Inception's are for FID).

def test_committed_mnistclf_loads_with_the_recorded_hash_and_never_trains(monkeypatch, digits):
    import hashlib
    import json
    from lib.metrics import features
    record = json.loads((features.WEIGHTS_DIR / "mnistclf.json").read_text())
    sha = hashlib.sha256((features.WEIGHTS_DIR / record["file"]).read_bytes()).hexdigest()
    assert sha == record["sha256"] and record["heldout_accuracy"] > 0.95 and "make_committed_weights" in record["command"]
    monkeypatch.setattr(features, "train_classifier_extractor",
                        lambda *a, **k: pytest.fail("get_extractor('mnistclf') trained instead of loading"))
    ext = get_extractor("mnistclf")
    assert ext.origin == "committed" and ext.weights_sha256 == sha and ext.heldout_accuracy == record["heldout_accuracy"]
    assert ext.cache_id == f"mnistclf-{sha[:12]}"               # Feature caches are keyed by the weights.
    info = ext.info()
    assert (info["weights_sha256"], info["weights_origin"], info["heldout_accuracy"]) == (sha, "committed", 0.992)
    ext.features(digits[0][:8])
    assert {"name": "mnistclf", "column": "FD_mnistclf", "weights_sha256": sha, "weights_origin": "committed",
            "heldout_accuracy": record["heldout_accuracy"], "heldout_count": 500} in features.used_extractors()


def test_committed_cifarclf_loads_with_the_recorded_hash_without_the_dataset(monkeypatch):
    import hashlib
    import json
    from lib.metrics import features
    record = json.loads((features.WEIGHTS_DIR / "cifarclf.json").read_text())
    sha = hashlib.sha256((features.WEIGHTS_DIR / record["file"]).read_bytes()).hexdigest()
    assert sha == record["sha256"] and record["heldout_accuracy"] > 0.75
    assert json.loads(record["train_data"])["classes_present"] == 10 and "/work/" not in record["train_data"]
    monkeypatch.setattr(features, "train_classifier_extractor",
                        lambda *a, **k: pytest.fail("get_extractor('cifarclf') trained instead of loading"))
    ext = get_extractor("cifarclf")  # no data_root: the committed file needs no CIFAR-10 folder
    assert ext.origin == "committed" and ext.weights_sha256 == sha and ext.cache_id == f"cifarclf-{sha[:12]}"
    f = ext.features(torch.zeros(4, 3, 32, 32).uniform_(-1, 1, generator=torch.Generator().manual_seed(0)))
    assert f.shape == (4, record["feature_dim"]) and torch.isfinite(torch.as_tensor(f)).all()


def test_changed_or_missing_committed_weights_are_refused(tmp_path):
    from lib.metrics import features
    for name in ("mnistclf.pt", "mnistclf.json"):
        (tmp_path / name).write_bytes((features.WEIGHTS_DIR / name).read_bytes())
    assert features.load_committed_extractor("mnistclf", weights_dir=tmp_path).origin == "committed"
    blob = bytearray((tmp_path / "mnistclf.pt").read_bytes())
    blob[-100] ^= 1
    (tmp_path / "mnistclf.pt").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        features.load_committed_extractor("mnistclf", weights_dir=tmp_path)
    (tmp_path / "mnistclf.pt").unlink()
    with pytest.raises(MissingWeightsError, match="missing"):
        features.load_committed_extractor("mnistclf", weights_dir=tmp_path)


def test_metrics_json_records_the_extractor_and_the_data(tmp_path, digits):
    import json
    from lib import data, experiment
    ext = get_extractor("mnistclf")
    ext.features(digits[0][:4])
    data.load_dataset("mnist", max_images=30, cache_dir=None)
    path = experiment.Run("nb", "smoke", [0], results_dir=tmp_path).save_metrics({"x": 1})
    m = json.loads(path.read_text())
    assert any(e["weights_sha256"] == ext.weights_sha256 and e["heldout_accuracy"] == ext.heldout_accuracy
               for e in m["extractors"])
    assert any(d.get("count") == 30 and len(d["class_histogram"]) == 10 for d in m["datasets"])
