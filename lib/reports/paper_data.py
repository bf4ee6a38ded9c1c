"""The papers' numbers and claims as data: ``lib/reports/paper_data.yaml`` (one commented section per paper table, and the
claims list), read once and handed out as plain dicts / lists.

    from lib.reports import paper_data
    paper_data.table("epd_table1_fid")["afhq_cat"]["edge_preserving"]   # 13.06
    paper_data.claims()[0]["id"]                                          # "EPD-1"

Every call returns a fresh copy, so a caller that edits its table cannot change anyone else's.  A missing key is a
``KeyError`` that names the key, the section and the file.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Dict, List

import yaml

PATH = Path(__file__).with_name("paper_data.yaml")


@functools.lru_cache(maxsize=None)
def _load() -> dict:
    with open(PATH, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict) or not isinstance(doc.get("claims"), list):
        raise ValueError(f"{PATH}: expected a mapping with 'tables' (a mapping) and 'claims' (a list)")
    return doc


def _get(section: str, key: str) -> Any:
    items = _load()[section]
    if key not in items:
        raise KeyError(f"{key!r} is not in the {section!r} section of {PATH} (it has: {', '.join(map(str, items))})")
    return copy.deepcopy(items[key])


def table(key: str) -> Any:
    """The table ``key`` of the ``tables`` section (a plain dict, or a value for a one-line entry)."""
    return _get("tables", key)


def table_names() -> List[str]:
    return list(_load()["tables"])


def claims() -> List[Dict[str, str]]:
    """The claims list: ``[{"id", "text", "paper_number", "notebook"}, ...]`` in the file's order."""
    out = copy.deepcopy(_load()["claims"])
    for i, c in enumerate(out):
        missing = [k for k in ("id", "text", "paper_number", "notebook") if k not in c]
        if missing:
            raise KeyError(f"claim #{i + 1} ({c.get('id', '?')}) in {PATH} lacks {', '.join(missing)}")
    return out


def num(x: float) -> str:
    """A paper number for a sentence, shortest form (13.06, 301.5; 17.60 reads 17.6)."""
    return f"{x:g}"
