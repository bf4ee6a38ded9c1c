"""lib/reports/paper_data.yaml is the one place for both papers' numbers and claims (issue 15): it loads, its claims are
well formed, a few cells match the papers, the modules' constants are read from it, and no module under lib/ types
a second copy of the papers' numbers."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lib.reports import paper_data

ROOT = Path(__file__).resolve().parents[1]
EPD = "edge_preserving"


def test_yaml_loads_and_claims_are_well_formed():
    assert paper_data.PATH == ROOT / "lib" / "reports" / "paper_data.yaml" and paper_data.PATH.is_file()
    claims = paper_data.claims()
    ids = [c["id"] for c in claims]
    assert len(ids) == len(set(ids)), "duplicate claim ids"
    assert all(re.fullmatch(r"(EPD|COLD)-\d+", i) for i in ids)
    for c in claims:
        assert isinstance(c["text"], str) and c["text"].strip(), c["id"]
        assert isinstance(c["notebook"], str) and c["notebook"].strip(), c["id"]
        assert isinstance(c["paper_number"], str), c["id"]
    # numbered 1..n per paper, in order (the ledger's ids "EPD-<n>" / "COLD-<n>" are the specs' claim numbers)
    for paper in ("EPD", "COLD"):
        assert [int(i.split("-")[1]) for i in ids if i.startswith(paper + "-")] == list(
            range(1, 1 + sum(i.startswith(paper + "-") for i in ids)))


def test_missing_key_is_a_clear_error_and_tables_are_copies():
    with pytest.raises(KeyError, match="no_such_table.*tables.*paper_data.yaml"):
        paper_data.table("no_such_table")
    t = paper_data.table("epd_table1_fid")
    t["afhq_cat"][EPD] = -1.0
    assert paper_data.table("epd_table1_fid")["afhq_cat"][EPD] == 13.06


def test_spot_values_against_the_papers():
    from lib.studies import cold_experiments as ce
    from lib.studies import cold_generation as cg
    from lib.studies import epd_experiments as E
    from lib.studies import cost as F
    assert E.EPD == EPD
    assert E.TABLE1_FID["afhq_cat"][EPD] == 13.06 and E.TABLE1_FID["afhq_cat"]["ddpm"] == 17.60
    assert E.TABLE1_FID["celeba"] == {"ihdm": 89.67, "ddpm": 28.17, "bndm": 26.35, EPD: 26.15}
    assert E.TABLE5_PR["lsun_church"] == {EPD: (0.65, 0.33), "ddpm": (0.47, 0.38)}
    assert isinstance(E.TABLE5_PR["celeba"][EPD], tuple)
    assert E.TPHI_FID_CHURCH == {0.25: 39.31, 0.5: 35.71, 0.75: 86.41}
    assert F.TABLE3["train_s_per_it"][EPD] == 1.12 and F.TABLE3["train_s_per_it"]["ddpm"] == 1.11
    assert F.TABLE3["inference_s_per_batch"] == {EPD: 301.5, "ddpm": 277.5, "bndm": 77.2}
    assert E.TABLE3 is F.TABLE3
    assert ce.PAPER_RESTORATION[("blur", "celeba")] == {"Sampled FID": 26.14, "Direct FID": 36.37}
    assert list(ce.PAPER_RESTORATION)[0] == ("blur", "mnist") and len(ce.PAPER_RESTORATION) == 6
    assert ce.PAPER_TABLE_NAMES["inpaint"] == "Table 2 (inpainting)"
    assert cg.PAPER_GENERATION == {"broken symmetry": {"CelebA FID": 49.45, "AFHQ FID": 54.68},
                                   "perfect symmetry": {},
                                   "estimated noise": {"CelebA FID": 23.11, "AFHQ FID": 20.59}, "fixed noise": {}}
    assert paper_data.table("epd_table2_latent_fid")["celeba_256"][EPD] == 13.89
    assert paper_data.table("epd_fig4_sdedit_fid")["afhq_cat"] == {"bndm": 51.05, "ddpm": 27.61, EPD: 23.50}


def test_ledger_claims_come_from_the_data_file():
    from lib.reports.paper_claims import CLAIMS, CLAIMS_BY_ID
    assert [c.id for c in CLAIMS] == [c["id"] for c in paper_data.claims()]
    assert CLAIMS_BY_ID["EPD-1"].paper_number.endswith("13.06 vs 17.60 (AFHQ-Cat)")
    assert CLAIMS_BY_ID["COLD-1"].paper == "COLD" and CLAIMS_BY_ID["EPD-22"].notebook.startswith("tests/")


def test_every_claims_notebook_exists():
    for c in paper_data.claims():
        nb = c["notebook"]
        if nb.startswith("tests/"):  # an analytic claim checked by a test, e.g. "tests/test_edge_preserving.py (U1)"
            assert (ROOT / nb.split()[0]).is_file(), (c["id"], nb)
        else:
            assert (ROOT / "notebooks" / f"{nb}.ipynb").is_file(), (c["id"], nb)


# Distinctive numbers of the papers' tables: none may be typed into lib/ again outside lib/reports/paper_data.yaml, neither
# as a number nor inside a (non-docstring) string such as a claim's text.
NUMBERS = ("13.06", "26.15", "23.17", "17.60", "28.17", "89.67", "119.34", "53.86", "301.5", "277.5", "13.89",
           "18.91", "22.86", "10.93", "13.62", "39.31", "35.71", "86.41", "23.50", "27.61", "51.05", "88.97",
           "88.78", "4.69", "26.14", "36.37", "80.08", "83.69", "49.45", "54.68", "23.11", "20.59", "18.65")


def _docstrings(tree: ast.AST) -> set:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def test_no_second_copy_of_the_papers_numbers_in_lib():
    values = {float(v) for v in NUMBERS}
    pattern = re.compile(r"(?<![\d.])(" + "|".join(re.escape(v.rstrip("0")) for v in NUMBERS) + r")0*(?![\d])")
    found = []
    for path in sorted((ROOT / "lib").rglob("*.py")):
        if path.name == "paper_data.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or isinstance(node.value, bool):
                continue
            if isinstance(node.value, float) and node.value in values:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
            elif isinstance(node.value, str) and id(node) not in docs and pattern.search(node.value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "papers' numbers typed outside lib/reports/paper_data.yaml:\n" + "\n".join(found)


def _numbers(obj) -> set:
    """Every number in a nested YAML value (and in its strings: claim texts and paper_number fields)."""
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out |= _numbers(k) | _numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out |= _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out.add(round(float(obj), 4))
    elif isinstance(obj, str):
        out |= {round(float(m), 4) for m in re.findall(r"\d+\.\d+", obj)}
    return out


def test_numbers_typed_in_notebook_text_agree_with_the_data_file():
    """The notebooks' introductions quote the papers' numbers for the reader; every two-decimal number quoted under
    "Paper" there must be one of the data file's, so a typo or a second, drifting copy fails here."""
    import json
    known = _numbers(paper_data._load())
    bad = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        text = "".join(cells[0]["source"]) if cells and cells[0]["cell_type"] == "markdown" else ""
        for para in text.split("\n\n"):
            if "paper" not in para.lower():
                continue
            for m in re.findall(r"(?<![\w.])\d+\.\d{2}(?![\d])", para):
                if float(m) >= 0.1 and round(float(m), 4) not in known:   # below 0.1: tolerances (0.05)
                    bad.append(f"{nb.name}: {m}")
    assert not bad, f"paper numbers in notebook text that lib/reports/paper_data.yaml does not hold: {bad}"
