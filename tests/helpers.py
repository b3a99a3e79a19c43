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


RUN_HOOKS = """
import json

from magnus import hookimpl


def _write(hook, run_log):
    record = {"hook": hook, "status": run_log.status, "steps": sorted(run_log.steps)}
    with open("run-hooks.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\\n")


@hookimpl
def before_run(run_log):
    _write("before_run", run_log)


@hookimpl
def after_run(run_log):
    _write("after_run", run_log)
"""


def write_run_hooks(project: Path) -> None:
    """An observer plugin module, ``run_hooks``: enable it with ``MAGNUS_PLUGINS=run_hooks``.

    Every process appends what it saw of ``before_run``/``after_run`` to ``run-hooks.jsonl``.
    """
    (project / "run_hooks.py").write_text(RUN_HOOKS)


def run_hooks_seen(project: Path) -> list[dict[str, Any]]:
    """What the ``run_hooks`` observer recorded, in order, across every process."""
    lines = (project / "run-hooks.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]
