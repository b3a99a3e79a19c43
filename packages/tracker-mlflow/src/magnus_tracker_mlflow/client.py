"""Calls to an MLflow tracking server, bounded in time and left alone while it is unreachable.

MLflow calls are bounded (``request_timeout`` seconds, ``max_retries`` retries: MLflow reads both
from the environment). A server that cannot be reached is not asked again for
:data:`RETRY_AFTER_SECONDS`, so a pipeline does not wait on it once per call.

``mlflow`` is imported only inside the functions that call it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from magnus.exceptions import MagnusError

# Under "magnus" so that ``--log-level`` and magnus' console handler apply to these messages.
logger = logging.getLogger("magnus.mlflow")

#: how long an unreachable server is left alone before magnus tries it again
RETRY_AFTER_SECONDS = 60.0
#: MLflow's default backoff factor is 2 (with 7 retries: minutes); 1 keeps retries short
BACKOFF_FACTOR = 1

TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
TIMEOUT_VARIABLE = "MLFLOW_HTTP_REQUEST_TIMEOUT"
RETRIES_VARIABLE = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
BACKOFF_VARIABLE = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
QUIET_VARIABLE = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


class MLflowUnavailableError(MagnusError):
    """The MLflow tracking server could not be reached (now, or recently)."""


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` means the server did not answer, rather than answered with an error.

    MLflow wraps transport failures (refused, timed out, retries exhausted) in a plain
    ``MlflowException`` raised while handling the ``requests`` error; a server that answered
    gives a ``RestException``. Only the former should make magnus stop asking for a while.
    """
    from mlflow.exceptions import RestException

    if isinstance(error, RestException):
        return False
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):  # ConnectionError, TimeoutError, socket errors
            return True
        module = type(current).__module__
        if module.startswith(("requests.", "urllib3.")):
            return True
        current = current.__cause__ or current.__context__
    return "Max retries exceeded" in str(error)


def root_cause(error: BaseException) -> BaseException:
    """The first error of a chain: MLflow's own message repeats the URL and urllib3's pool."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return error


def hide_password(uri: str) -> str:
    """``uri`` without the password of its user-info part: run_config never holds a secret."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@contextlib.contextmanager
def environment(settings: Mapping[str, str]) -> Iterator[None]:
    """Set ``settings`` in ``os.environ`` for the block only, then put back what was there.

    MLflow reads its HTTP timeouts and retries from the environment on every request and offers
    no per-client setting, so this is how a tracker bounds its calls without changing the
    environment the user's code (and every shell task) sees.
    """
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``mlflow.log_metric``...) at ``uri`` for the block only.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into ``os.environ`` and
    ``set_tracking_uri(None)`` deletes it, so both the module's setting and the variable are
    saved and restored here; MLflow offers no public way to read the module's own setting.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous_setting = getattr(tracking_utils, "_tracking_uri", None)
    previous_variable = os.environ.get(TRACKING_URI_VARIABLE)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_setting)
        if previous_variable is None:
            os.environ.pop(TRACKING_URI_VARIABLE, None)
        else:
            os.environ[TRACKING_URI_VARIABLE] = previous_variable


def quiet() -> dict[str, str]:
    """Keep MLflow from printing two "View run" lines whenever the tracker closes a run.

    They would land in the console once per step (and cost a request each); a user who set
    the variable either way keeps their choice.
    """
    return {} if QUIET_VARIABLE in os.environ else {QUIET_VARIABLE: "true"}


class BoundedClient:
    """An ``MlflowClient`` of one server whose calls are bounded and skipped while it is down.

    ``http_settings`` gives the MLflow HTTP variables to set around each call; it is asked on
    every call, so the environment the user exports meanwhile still counts.
    """

    def __init__(self, uri: str, http_settings: Callable[[], dict[str, str]]) -> None:
        self.uri = uri
        self._http_settings = http_settings
        self._client: Any = None
        self.unreachable_until = 0.0
        self.unreachable_reason = ""

    def _mlflow(self) -> Any:
        """The client writing to this server (never the fluent API's global URI)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def check(self, what: str) -> None:
        """Raise :class:`MLflowUnavailableError` while a failure to reach the server is fresh."""
        if time.monotonic() < self.unreachable_until:
            raise MLflowUnavailableError(
                f"MLflow not asked to {what}: {self.unreachable_reason} less than "
                f"{RETRY_AFTER_SECONDS:.0f} s ago"
            )

    def call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``MlflowClient.<method>``, bounded, and remember when the server is down.

        Raises :class:`MLflowUnavailableError` at once while a recent failure to reach the
        server is fresh, and when this call cannot reach it; other errors pass unchanged.
        """
        self.check(what)
        client = self._mlflow()
        with environment({**self._http_settings(), **quiet()}):
            try:
                return getattr(client, method)(*args, **kwargs)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                self.trip(exc, what)
                raise MLflowUnavailableError(
                    f"could not {what}: {self.unreachable_reason}"
                ) from exc

    @contextlib.contextmanager
    def noting_unreachable(self, what: str) -> Iterator[None]:
        """Open the circuit (see :meth:`call`) when the block fails to reach the server."""
        try:
            yield
        except Exception as exc:
            if unreachable(exc):
                self.trip(exc, what)
            raise

    def trip(self, error: BaseException, what: str) -> None:
        """Remember the server as unreachable for a while, and say so once."""
        self.unreachable_until = time.monotonic() + RETRY_AFTER_SECONDS
        root = root_cause(error)
        self.unreachable_reason = (
            f"the MLflow tracking server {hide_password(self.uri)} could not be reached "
            f"({type(root).__name__}: {root})"
        )
        logger.warning(
            "%s while trying to %s; magnus goes on and keeps every metric in the run log",
            self.unreachable_reason,
            what,
        )
