"""The model and sample caches are keyed by the source of the core files (``lib.experiment.MODEL_CODE``,
``lib.studies.epd_experiments.SAMPLER_CODE``): any byte changed there, a comment included, re-keys every trained
model and every cached sample, so the next run retrains everything (hours at the default profile).  These tests
make such an edit loud: when it is intended, update the recorded hash below in the same commit and say in the
commit message that the committed results must be regenerated."""
from lib.experiment import MODEL_CODE, code_hash
from lib.studies.epd_experiments import SAMPLER_CODE

RECORDED = {"model": "4b5778b5c012", "sampler": "62b653d67ebc"}


def test_model_code_hash_is_the_recorded_one():
    assert code_hash(MODEL_CODE) == RECORDED["model"], (
        "a MODEL_CODE file changed (even a comment): every trained model's cache key changes and all models "
        "retrain; if that is intended, update RECORDED['model'] in tests/test_cache_keys.py")


def test_sampler_code_hash_is_the_recorded_one():
    assert code_hash(SAMPLER_CODE) == RECORDED["sampler"], (
        "a SAMPLER_CODE file changed: every cached sample is re-drawn; if intended, update RECORDED['sampler']")

