"""The master list of both papers' claims, transcribed from the specs (used by lib/reports/ledger.py); the claims live in
lib/reports/paper_data.yaml (read through lib/reports/paper_data.py).

``"EPD-<n>"`` is claim n of ../shared/reference/epd_spec.md §7 and ``"COLD-<n>"`` is claim C<n> of
../shared/reference/cold_spec.md §8; each with the paper's number(s) and the notebook planned to measure it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from lib.reports import paper_data


@dataclass(frozen=True)
class Claim:
    id: str            # "EPD-<n>" / "COLD-<n>"
    text: str          # the claim as the spec states it
    paper_number: str  # the paper's number(s) with their metric and source ("" when the paper gives none)
    notebook: str      # the notebook planned to measure it

    @property
    def paper(self) -> str:
        return self.id.split("-")[0]


# The list itself is data: the ``claims`` section of lib/reports/paper_data.yaml (ids, texts, the papers' numbers with their
# sources, planned notebooks), in the file's order (EPD first, then Cold Diffusion).
CLAIMS: tuple = tuple(Claim(c["id"], c["text"], c["paper_number"], c["notebook"]) for c in paper_data.claims())
CLAIMS_BY_ID: Dict[str, Claim] = {c.id: c for c in CLAIMS}
