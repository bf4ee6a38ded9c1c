"""Screenshots of the index and of three reports as a reader sees them (headless Chromium), to look at before
committing the results:

    python scripts/screenshots.py                      # results/index.png + results/report_<nb>.png (3 reports)
    python scripts/screenshots.py --results DIR --profile smoke --out /tmp/shots

The reports are results/<nb>/<profile>/report.html of REPORTS (the first three that exist); each screenshot is
the top ``--height`` pixels of the page (run config, headline figure, table; the claims further down on longer
reports).  Needs a chromium binary (``apt-get install chromium``); exits 1 without one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "scripts") not in sys.path:  # scripts/browser.py also when this file is loaded by path
    sys.path.append(str(ROOT / "scripts"))

import browser  # noqa: E402

REPORTS = ("epd_table1_unconditional", "cold_restoration", "epd_ablation_transition_fn", "epd_sdedit_strokes",
           "cold_generation_blur")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results"), help="results folder (default: results/)")
    ap.add_argument("--profile", default="quick", help="which reports: results/<nb>/<PROFILE>/report.html")
    ap.add_argument("--out", default=None, help="folder of the PNGs (default: the results folder)")
    ap.add_argument("--n", type=int, default=3, help="number of reports (default 3)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400, help="report screenshot height in pixels")
    args = ap.parse_args(argv)
    if browser.find_chromium() is None:
        print("no chromium binary found (apt-get install chromium): no screenshots", file=sys.stderr)
        return 1
    res = Path(args.results)
    out = Path(args.out or res)
    shots = []
    index = res / "index.html"
    if index.is_file():
        shots.append(browser.screenshot(index, out / "index.png", width=args.width, height=1400))
    else:
        print(f"no {index}: run scripts/build_index.py first", file=sys.stderr)
    pages = [(nb, res / nb / args.profile / "report.html") for nb in REPORTS]
    for nb, page in [p for p in pages if p[1].is_file()][:args.n]:
        shots.append(browser.screenshot(page, out / f"report_{nb}.png", width=args.width, height=args.height))
    for s in shots:
        print(f"screenshot: {s}")
    return 0 if shots else 1


if __name__ == "__main__":
    sys.exit(main())
