"""docs/spec_references.md: the in-repo key to the spec ids (§x, Qn, Cn, Un) that comments and reports cite."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "spec_references.md").read_text()


def test_every_cited_in_file_exists():
    lists = re.findall(r"\*Cited in:\*\s*(.+)", PAGE)
    assert len(lists) > 100
    files = {f.strip().rstrip(".") for line in lists for f in line.split(",")}
    assert sorted(f for f in files if not (ROOT / f).exists()) == []


def _quirks_cited(paths):
    return {int(q) for p in paths for q in re.findall(r"\bQ(\d+)\b", (ROOT / p).read_text())}


def test_every_quirk_cited_by_a_process_has_a_section():
    headers = set(re.findall(r"^### (\w+) Q(\d+)\b", PAGE, flags=re.M))
    for spec, files in {"epd_spec": ["lib/processes/edge_preserving.py", "lib/schedules.py"],
                        "cold_spec": ["lib/processes/cold.py", "lib/degradations.py"]}.items():
        cited = _quirks_cited(files)
        assert cited, spec
        assert sorted(q for q in cited if (spec, str(q)) not in headers) == [], spec
