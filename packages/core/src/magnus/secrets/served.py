"""The names of the secrets served in a run, recorded in its run log so every process masks them.

A run may span several processes (``enable_parallel`` branches, an orchestrator's containers), and
a secret served in one may reach another (an inherited environment variable, a file in the
catalog). So the *names* of the secrets served during a run -- never their values -- are recorded
in its run log (``run_config["secrets_served"]``), and the rule is: **a step masks every secret
served in its own process and every secret any process of the run had recorded when the step
started** (:func:`mask_secrets_served_in_run`, called when a process joins a run and before each
step of a run spread over several processes). A secret first served in a sibling branch while a
step runs is masked from that process's next step on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol

from magnus.runlog.base import BaseRunLogStore

logger = logging.getLogger(__name__)

#: the ``run_config`` key listing the names of the secrets served in a run
SERVED_KEY = "secrets_served"


class SecretsServer(Protocol):
    """What serving a secret needs of a provider (``BaseSecrets``)."""

    def get(self, name: str) -> str:
        """The secret's value."""
        ...


class RunRecord(Protocol):
    """The run a step serves secrets in, as far as recording them goes (a ``RunContext``)."""

    run_id: str
    run_log_store: BaseRunLogStore

    @property
    def secrets(self) -> SecretsServer:
        """The run's secrets provider."""
        ...


# (run id, secret name) pairs this process knows the run log records: recorded here, or read
# from there and served here to be masked.
_known: set[tuple[str, str]] = set()
_known_lock = threading.Lock()
# Read and write the record a few times over: two processes may update it at the same moment
# and stores merge top-level keys only, so the later write could drop the earlier one's name.
_RECORD_TRIES = 5
# The run whose step is running here: a secret served now is recorded in its log.
_serving_run: ContextVar[RunRecord | None] = ContextVar("magnus_serving_run", default=None)


@contextlib.contextmanager
def recording_served(run: RunRecord) -> Iterator[None]:
    """Within the block (a step of ``run``), the name of every secret served is recorded."""
    token = _serving_run.set(run)
    try:
        yield
    finally:
        _serving_run.reset(token)


def note_served(name: str) -> None:
    """Record in the running step's run log that the secret ``name`` was served (once)."""
    run = _serving_run.get()
    if run is None or not name:
        return
    key = (run.run_id, name)
    with _known_lock:
        if key in _known:
            return
        _known.add(key)
    try:
        _record_names(run, {name})
    except Exception as exc:  # the task asked for a secret: that must not fail it
        logger.warning(
            "Could not record in run %s that the secret %r was served; other processes of the "
            "run will not mask it: %s",
            run.run_id,
            name,
            exc,
        )


def _recorded_names(run: RunRecord) -> set[str]:
    names = run.run_log_store.get_run_config(run.run_id).get(SERVED_KEY) or []
    return {n for n in names if isinstance(n, str)}


def _record_names(run: RunRecord, names: set[str]) -> None:
    for _ in range(_RECORD_TRIES):
        recorded = _recorded_names(run)
        if names <= recorded:
            return
        run.run_log_store.set_run_config(run.run_id, {SERVED_KEY: sorted(recorded | names)})
    logger.warning(
        "Run %s: the names of the served secrets could not be recorded after %d tries",
        run.run_id,
        _RECORD_TRIES,
    )


def mask_secrets_served_in_run(run: RunRecord) -> None:
    """Serve here every secret the run log says the run served, so that this process masks it.

    A secret that cannot be read here (the provider no longer has it) is reported by name; it is
    not masked in this process.
    """
    try:
        names = _recorded_names(run)
    except Exception as exc:
        logger.warning("Could not read which secrets run %s served: %s", run.run_id, exc)
        return
    with _known_lock:
        new = sorted(n for n in names if (run.run_id, n) not in _known)
        _known.update((run.run_id, n) for n in new)
    for name in new:
        try:
            run.secrets.get(name)
        except Exception as exc:
            logger.warning(
                "The secret %r was served in run %s but cannot be read in this process, so it "
                "is not masked here: %s",
                name,
                run.run_id,
                exc,
            )
