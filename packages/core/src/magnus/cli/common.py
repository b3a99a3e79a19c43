"""What every command shares: the group, logging, one-line errors, common options."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from magnus import __version__

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "FATAL", "CRITICAL"]
F = TypeVar("F", bound=Callable[..., Any])


def _pypi_magnus_installed() -> str:
    """Where PyPI's ``magnus`` (0.5 and earlier) is installed beside this one, or ``""``.

    Both distributions install the ``magnus`` import package, so one overwrites the other's
    files. Read from the folders on ``sys.path`` (a directory listing each), not through
    ``importlib.metadata``, which costs tens of milliseconds on every command.
    """
    import re

    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        if any(re.fullmatch(r"magnus-\d[^/]*\.(dist|egg)-info", name) for name in names):
            return entry or "."
    return ""


def setup_logging(level: str) -> None:
    where = _pypi_magnus_installed()
    if where:
        click.echo(
            f"warning: magnus from PyPI is installed in {where} beside magnus-core; both "
            "provide the `magnus` package and one overwrites the other's files: "
            "pip uninstall magnus magnus-core, then pip install ./packages/core again",
            err=True,
        )
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("magnus").setLevel(level)
    from magnus.redaction import RedactingFilter

    # On handlers, not loggers: a handler sees the records of every logger below it.
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())


def friendly_errors(function: F) -> F:
    """Turn magnus' errors into one line on stderr and exit status 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from magnus.exceptions import MagnusError

        try:
            return function(*args, **kwargs)
        except KeyboardInterrupt as exc:
            # Whatever was running recorded that it stopped; exit as a shell expects.
            from magnus.interrupts import signal_of

            signum = signal_of(exc)
            print(f"Interrupted by {signal.Signals(signum).name}", file=sys.stderr)
            sys.exit(128 + signum)
        except MagnusError as exc:
            if logging.getLogger("magnus").isEnabledFor(logging.DEBUG):
                raise
            from magnus.console import print_error

            print_error(str(exc))
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


log_level_option = click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="How much magnus itself logs.",
)
config_option = click.option(
    "-c",
    "--config-file",
    default=None,
    help="Configuration file (default: $MAGNUS_CONFIGURATION_FILE, magnus-config.yaml, built-ins).",
)

# What starting a run takes, said once for `execute`, `execute-job` and `validate`.
parameters_option = click.option(
    "-p", "--parameters-file", default="", help="Initial parameters (YAML)."
)
tag_option = click.option("--tag", default="", help="A free-text tag recorded in the run log.")
run_id_option = click.option(
    "--run-id", default="", help="Run id (default: generated, adjective-name-HHMM)."
)

reuse_option = click.option(
    "--reuse/--no-reuse",
    default=None,
    help="Reuse the result of any earlier run of a step with the same fingerprint (default: "
    "the configuration's 'reuse'); a step's own 'cache' decides for it.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="magnus")
def cli() -> None:
    """magnus: run data science pipelines anywhere, and record everything to reproduce them."""
