"""The pytest plugin of ``magnus.testing``: fixtures for plugin authors' tests.

Loaded automatically by pytest through the ``pytest11`` entry point of magnus-core.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def magnus_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scratch working directory for a run, with no ``MAGNUS_*`` variables leaking in."""
    import os

    for key in list(os.environ):
        if key.startswith("MAGNUS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
