"""Helpers shared by the tests of every package (``tests/`` is on pytest's python path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_magnus(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the magnus command line in a subprocess, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "magnus.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def show_run(run_id: str, cwd: Path, *config: str) -> dict[str, Any]:
    """``magnus runs show RUN_ID --json`` parsed."""
    result = run_magnus("runs", "show", run_id, "--json", *config, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]
