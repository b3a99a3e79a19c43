"""A real headless browser for the tests of HTML pages: Debian's ``chromium``, driven by its
command line (no Python package needed).

A missing browser fails the test that needs it, never skips it: ``nox -s tests`` installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]


def chromium() -> str:
    """The browser's path; an ``AssertionError`` saying how to install it when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, (
        "chromium is not installed: the HTML tests need a real browser "
        "(apt-get install -y chromium; `nox -s tests` does it when run as root)"
    )
    return found


def _run(page: Path, *flags: str) -> str:
    result = subprocess.run(
        [chromium(), *FLAGS, *flags, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def rendered_dom(page: Path) -> str:
    """The page's DOM after its scripts ran, as HTML text."""
    dom = _run(page, "--dump-dom")
    # The page's script marks the body when it has drawn everything: a script error shows here.
    assert re.search(r"<body[^>]*data-ready", dom), (
        f"the page's script did not finish:\n{dom[:2000]}"
    )
    return dom


def screenshot(page: Path, picture: Path) -> Path:
    """A 1400x1000 screenshot of the page, saved for a look at ``picture``."""
    _run(page, f"--screenshot={picture}", "--window-size=1400,1000")
    assert picture.stat().st_size > 0
    return picture
