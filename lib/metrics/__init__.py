"""Evaluation metrics, one protocol for every notebook (shared/reference/evaluation.md).

    >>> from lib.metrics import evaluate_samples, get_extractor
    >>> row = evaluate_samples(fake, real, get_extractor("mnistclf"), ref_key="mnist-train-5000")
    >>> row["FD_mnistclf"], row["precision"], row["recall"], row["SWD_per_level"]

Modules: ``fid`` (Fréchet distance via pytorch-fid), ``features`` (Inception and project-trained classifier
extractors, reference cache), ``prdc`` (improved precision/recall), ``image`` (SSIM, RMSE, the uint8
quantisation), ``spectrum`` (radially averaged power spectrum), ``swd`` (Laplacian-pyramid SWD).
"""
from __future__ import annotations

from typing import Optional, Union

from lib.metrics.features import (EXTRACTORS, ClassifierExtractor, FeatureExtractor, InceptionExtractor,
                                  MissingWeightsError, content_hash, find_inception_weights, get_extractor,
                                  inception_available, load_classifier_extractor, load_committed_extractor,
                                  make_committed_weights, reference_features, reference_stats,
                                  train_classifier_extractor, used_extractors)
from lib.metrics.fid import feature_stats, fid_from_features, frechet_distance
from lib.metrics.image import rmse, ssim, to_uint8_rgb
from lib.metrics.prdc import precision_recall
from lib.metrics.spectrum import high_frequency_power, radial_power_spectrum
from lib.metrics.swd import swd


def evaluate_samples(fake, real, extractor: Union[str, FeatureExtractor], ref_key: Optional[str] = None,
                     k: int = 3, swd_kwargs: Optional[dict] = None, cache_dir=None) -> dict:
    """The standard metric row for generated images ``fake`` against reference images ``real``.

    Both are [N, C, H, W] in [-1, 1] (or uint8). Returns {extractor column: Fréchet distance, "precision",
    "recall" (k-NN, same features), "SWD_mean", "SWD_per_level" (fine -> coarse), "SWD_sizes", "n_fake",
    "n_real", "extractor": extractor.info()}. With ``ref_key`` the reference features are cached
    (``reference_features``); without it they are recomputed.
    """
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    fake_feats = extractor.features(fake)
    real_feats = (reference_features(extractor, real, ref_key, cache_dir) if ref_key is not None
                  else extractor.features(real))
    pr = precision_recall(real_feats, fake_feats, k=k)
    sw = swd(real, fake, **(swd_kwargs or {}))
    return {extractor.name: fid_from_features(fake_feats, real_feats),
            "precision": pr["precision"], "recall": pr["recall"],
            "SWD_mean": sw["mean"], "SWD_per_level": sw["per_level"], "SWD_sizes": sw["sizes"],
            "n_fake": int(len(fake)), "n_real": int(len(real)), "extractor": extractor.info()}


__all__ = ["evaluate_samples", "feature_stats", "frechet_distance", "fid_from_features", "FeatureExtractor",
           "InceptionExtractor", "ClassifierExtractor", "MissingWeightsError", "EXTRACTORS", "get_extractor",
           "train_classifier_extractor", "load_classifier_extractor", "load_committed_extractor",
           "make_committed_weights", "used_extractors", "inception_available", "find_inception_weights", "reference_features",
           "reference_stats", "content_hash", "precision_recall", "ssim", "rmse", "to_uint8_rgb",
           "radial_power_spectrum", "high_frequency_power", "swd"]
