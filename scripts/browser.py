"""Open generated pages the way a reader does: headless Chromium (``render_dom``, ``screenshot``) and a link
check (``local_links``, ``page_links``), used by scripts/build_index.py, scripts/screenshots.py and
tests/test_reports.py (standard library only; nothing in lib/ needs it)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import unquote, urlsplit

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> Optional[str]:
    """The headless browser binary: $CHROMIUM if set, else the first of CHROMIUM_CANDIDATES on PATH."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    return None


def _chromium(args: List[str], page: Path, timeout: int = 60) -> subprocess.CompletedProcess:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary found (install the chromium package or set $CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
               Path(page).resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def render_dom(page, timeout: int = 60) -> str:
    """The page's DOM after the browser loaded and ran it (``--dump-dom``)."""
    proc = _chromium(["--dump-dom", "--virtual-time-budget=5000"], Path(page), timeout)
    if proc.returncode != 0 or "<html" not in proc.stdout.lower():
        raise RuntimeError(f"chromium could not render {page}: rc={proc.returncode}\n{proc.stderr[-2000:]}")
    return proc.stdout


def screenshot(page, png, width: int = 1200, height: int = 900, timeout: int = 60) -> Path:
    """A PNG of the page as the browser shows it (window ``width`` × ``height``)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    proc = _chromium([f"--screenshot={png}", f"--window-size={width},{height}", "--virtual-time-budget=5000"],
                     Path(page), timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot of {page}: rc={proc.returncode}\n{proc.stderr[-2000:]}")
    return png


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: List[tuple] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append((tag, name, value))


def page_links(html_text: str) -> List[tuple]:
    """(tag, attribute, url) of every href/src in the page."""
    p = _Links()
    p.feed(html_text)
    return p.links


def local_links(page) -> Dict[str, List[str]]:
    """Classify a page's links: {"ok": [...], "missing": [...], "external": [...]}; local ones resolved as files."""
    page = Path(page)
    out: Dict[str, List[str]] = {"ok": [], "missing": [], "external": []}
    for _, _, url in page_links(page.read_text(errors="replace")):
        parts = urlsplit(url)
        if parts.scheme in ("data", "javascript", "mailto") or url.startswith("#"):
            continue
        if parts.scheme or parts.netloc or url.startswith("//"):
            out["external"].append(url)
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        out["ok" if target.exists() else "missing"].append(url)
    return out
