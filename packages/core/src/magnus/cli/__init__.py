"""The ``magnus`` command line and ``main``; the group and what every command shares are in
``common``.

The commands live by family: ``running`` (execute, execute-job, retry, validate), ``callbacks``
(what an orchestrator calls back: one step, one branch, a fan, the run's start and end) and
``looking`` (runs show/list/diff, explain, report, dag, plugins). Only click is imported at
start-up; everything else is imported by the command that needs it, so
``magnus --help`` stays fast. Errors reach the user as one message, never a traceback (unless
``--log-level DEBUG``). Exit status: 0 success, 1 the run failed, 2 bad input.
"""

from __future__ import annotations

from magnus.cli import callbacks, looking, running  # noqa: F401  (each registers its commands)
from magnus.cli.common import cli

__all__ = ["cli", "main"]


def main() -> None:
    """The console-script entry point."""
    cli()
