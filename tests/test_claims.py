"""The verdict rule of the claims ledger (evaluation.md)."""
from lib import claims


def test_direction_reproduced_not_reproduced_and_inconclusive():
    lo, hi = [1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9, 2.05]
    assert claims.compare("c", "EPD", "a<b", "FD", {"a": lo}, {"b": hi})["verdict"] == claims.REPRODUCED
    assert claims.compare("c", "EPD", "a<b", "FD", {"a": hi}, {"b": lo})["verdict"] == claims.NOT_REPRODUCED
    close = claims.compare("c", "EPD", "a<b", "FD", {"a": [1.0, 1.2, 0.9]}, {"b": [1.1, 0.95, 1.05]})
    assert close["verdict"] == claims.INCONCLUSIVE
    two = claims.compare("c", "EPD", "a<b", "FD", {"a": [1.0, 1.1]}, {"b": [5.0, 5.1]}, dataset="mnist")
    assert two["verdict"] == claims.INCONCLUSIVE and "n=2" in two["detail"] and two["dataset"] == "mnist"


def test_tolerance_and_qualitative():
    assert claims.within_tolerance("c", "EPD", "≈1%", "ratio", [1.01, 1.02], 1.009, 0.03)["verdict"] == claims.REPRODUCED
    assert claims.within_tolerance("c", "EPD", "≈1%", "ratio", [1.2], 1.009, 0.03)["verdict"] == claims.NOT_REPRODUCED
    q = claims.qualitative("c", "EPD", "structure earlier", "fig.png")
    assert q["verdict"] == claims.QUALITATIVE and q["figure"] == "fig.png"
