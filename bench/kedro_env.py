"""Kedro's virtualenv for the benchmark: ``bench/.work/venv-kedro``, made once by the bench.

Kedro cannot share the nox virtualenv's pins with ours, so it gets its own, made with
``python -m venv`` and ``pip install -c bench/constraints-kedro.txt kedro==1.7.0``; a marker
file records what was installed, and the virtualenv is made again when the constraints change.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
KEDRO = "kedro==1.7.0"
CONSTRAINTS = BENCH / "constraints-kedro.txt"


def ensure(work: Path) -> Path:
    """The interpreter of Kedro's virtualenv under ``work``, made (or remade) when needed."""
    venv = work / "venv-kedro"
    python = venv / "bin" / "python"
    marker = venv / "installed-with.txt"
    wanted = f"{KEDRO}\n{CONSTRAINTS.read_text()}"
    if marker.is_file() and marker.read_text() == wanted and python.is_file():
        return python
    print(f"making {venv} ({KEDRO})", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS), KEDRO],
        check=True,
    )
    marker.write_text(wanted)
    return python
