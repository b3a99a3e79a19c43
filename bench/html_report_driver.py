"""Paint a ``magnus report`` page in headless chromium and read how long its drawing took.

``python html_report_driver.py PAGE`` loads PAGE with Debian's ``chromium`` from its command line
(``--dump-dom``, the flags of the HTML tests) and reads the ``data-draw-ms`` attribute the page's
script sets on ``<body>`` when it has drawn everything: ``performance.now()`` at that moment,
milliseconds from the start of the navigation. That is the paint time, without the browser's own
start-up and shut-down. Prints ``{"seconds": paint, "bytes": size of PAGE, "browser_seconds":
wall time of the whole chromium run}`` last; fails when the script did not finish.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
_DRAWN = re.compile(r'<body[^>]*\bdata-draw-ms="(\d+(?:\.\d+)?)"')


def paint(page: Path) -> dict[str, float]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    start = time.perf_counter()
    result = subprocess.run(
        [browser, *FLAGS, "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        check=False,
    )
    browser_seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"chromium failed: {result.stderr[-1000:]}")
    drawn = _DRAWN.search(result.stdout)
    if drawn is None:
        raise SystemExit("the page's script did not finish: no data-draw-ms on <body>")
    return {
        "seconds": float(drawn.group(1)) / 1000,
        "bytes": page.stat().st_size,
        "browser_seconds": browser_seconds,
    }


if __name__ == "__main__":
    print(json.dumps(paint(Path(sys.argv[1]))))
