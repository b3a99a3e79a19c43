"""The S3 catalog's virtualenv for the benchmark: ``bench/.work/venv-s3``, made once by the bench.

The S3 cell needs boto3 and moto's server, which the nox ``bench`` virtualenv does not hold (an
installed plugin would also change what every other workload loads), so it gets its own, made
with ``python -m venv`` and ``pip install -e packages/core -e 'packages/catalog-s3[testing]'``;
a marker file records the two packages' metadata, and the virtualenv is made again when it
changes. The packages are editable: the cell measures this repository's code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PACKAGES = (ROOT / "packages" / "core", ROOT / "packages" / "catalog-s3")


def ensure(work: Path) -> Path:
    """The interpreter of the S3 virtualenv under ``work``, made (or remade) when needed."""
    venv = work / "venv-s3"
    python = venv / "bin" / "python"
    marker = venv / "installed-with.txt"
    wanted = "\n".join((package / "pyproject.toml").read_text() for package in PACKAGES)
    if marker.is_file() and marker.read_text() == wanted and python.is_file():
        return python
    print(f"making {venv} (magnus-core and magnus-catalog-s3, editable)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    core, s3 = PACKAGES
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-e", str(core), "-e", f"{s3}[testing]"],
        check=True,
    )
    marker.write_text(wanted)
    return python
