"""Fixtures shared by every package's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest

pytest_plugins = ["fixtures.s3_server", "fixtures.vault_server", "fixtures.mlflow_server"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def _no_magnus_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MAGNUS_* variable of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("MAGNUS_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _fresh_plugins() -> Iterator[None]:
    """Each test starts with a plugin manager built from the current environment."""
    from magnus.plugins import reset_plugins

    reset_plugins()
    yield
    reset_plugins()


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch git project holding a copy of examples/, committed and clean, as the cwd."""
    import shutil

    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / ".gitignore").write_text("__pycache__/\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "test@example.com")
    _git(tmp_path, "config", "user.name", "Test")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # A previous test may have imported another copy of the examples package.
    for name in [m for m in sys.modules if m == "examples" or m.startswith("examples.")]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


@pytest.fixture
def run_magnus() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the magnus command line in a subprocess, as a user would."""
    return helpers.run_magnus


@pytest.fixture
def user_module(project: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Any]:
    """Write a python module into the project and import it (forgotten after the test)."""
    import importlib
    import textwrap

    def write(name: str, source: str) -> Any:
        (project / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
        importlib.invalidate_caches()
        module = importlib.import_module(name)
        return module

    return write
