"""The secrets contract and the built-in ``do-nothing``, ``dotenv`` and ``env-secrets-manager``.

``BaseSecrets.get(name)`` is what magnus (and ``get_secret``) calls. It is a template method:

1. a value served before in this process is returned from a per-process cache;
2. otherwise ``_fetch(name)`` -- the one method a provider implements -- reads it from the source;
3. every served value is registered with the process-wide redactor (``magnus.redaction``), so no
   provider can forget to keep its secrets out of logs and the run log.

A provider such as a Vault plugin therefore implements ``_fetch`` and gets caching and redaction
for free. A provider that overrides ``get`` itself still works: its ``get`` is wrapped so that what
it returns is registered with the redactor (it does its own caching, if any).

Missing secrets raise ``SecretNotFoundError(name, provider.description)``, naming the secret and
where it was looked for, never a value; they are not cached, so a secret that appears later is
found. The cache and anything else a provider loads live in pydantic private attributes: they are
not fields, so ``record()`` (the run log's ``run_config``) and ``repr`` never show them, and they
are reset when a provider is pickled to another process -- secrets are cached per process and
never written anywhere.

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

import copy
import functools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic import PrivateAttr
from pydantic.fields import ModelPrivateAttr

from magnus.exceptions import ConfigurationError, SecretNotFoundError
from magnus.redaction import get_redactor
from magnus.services import BaseService

if TYPE_CHECKING:
    from magnus.context import RunContext

logger = logging.getLogger(__name__)

#: the ``run_config`` key listing the names of the secrets served in a run
SERVED_KEY = "secrets_served"
# Marks a ``get`` that already registers what it serves, so it is not wrapped twice.
_REGISTERS = "_magnus_registers_served_values"


class BaseSecrets(BaseService):
    """Base of every secrets provider: hands secret values to user code by name.

    Implement :meth:`_fetch`; override :attr:`description` to say where secrets are looked for.
    """

    service_type: ClassVar[str] = "secrets"

    _cache: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        own_get = cls.__dict__.get("get")
        if own_get is not None and not getattr(own_get, _REGISTERS, False):
            cls.get = _registering(own_get)  # type: ignore[method-assign,assignment]

    @property
    def description(self) -> str:
        """Where this provider looks for secrets, for error messages (e.g. "dotenv file '.env'")."""
        return self.service_name or type(self).__name__

    def get(self, name: str) -> str:
        """The secret's value; ``SecretNotFoundError`` naming the secret and provider if absent."""
        try:
            value = self._cache[name]
        except KeyError:
            value = self._fetch(name)
            self._cache[name] = value
            if value:
                _note_served(name)
        # Registered on every serve, not only the first: cheap, and robust to a cleared redactor.
        get_redactor().register(value, name=name)
        return value

    def _fetch(self, name: str) -> str:
        """Read the secret ``name`` from the source; raise ``SecretNotFoundError`` if absent."""
        raise NotImplementedError(
            f"The secrets provider {type(self).__name__} implements neither _fetch(name) "
            "nor get(name)"
        )

    def not_found(self, name: str, detail: str = "") -> SecretNotFoundError:
        """The error for a missing secret: names it and this provider, never a value."""
        where = f"{self.description} ({detail})" if detail else self.description
        return SecretNotFoundError(name, where)

    def __getstate__(self) -> dict[Any, Any]:
        # Pickling sends a provider to another process: private attributes (the cache, loaded
        # files) go back to their defaults so that no served value travels with it.
        state = super().__getstate__()
        state["__pydantic_private__"] = {
            key: _private_default(attribute)
            for key, attribute in self.__private_attributes__.items()
        }
        return state


setattr(BaseSecrets.get, _REGISTERS, True)


def _private_default(attribute: ModelPrivateAttr) -> Any:
    # Spelled out: ModelPrivateAttr.get_default changed signature across pydantic 2 releases.
    factory = cast("Callable[[], Any] | None", attribute.default_factory)
    if factory is not None:
        return factory()
    return copy.deepcopy(attribute.default)


def _registering(get: Callable[[Any, str], str]) -> Callable[[Any, str], str]:
    """Wrap a provider's own ``get`` so that whatever it serves is registered for redaction."""

    @functools.wraps(get)
    def wrapper(self: Any, name: str) -> str:
        value = get(self, name)
        get_redactor().register(value, name=name)
        if value:
            _note_served(name)
        return value

    setattr(wrapper, _REGISTERS, True)
    return wrapper


# ------------------------------------------------------------------ secrets served in a run

# (run id, secret name) pairs this process knows the run log records: recorded here, or read
# from there and served here to be masked.
_known: set[tuple[str, str]] = set()
_known_lock = threading.Lock()
# Read and write the record a few times over: two processes may update it at the same moment
# and stores merge top-level keys only, so the later write could drop the earlier one's name.
_RECORD_TRIES = 5


def _note_served(name: str) -> None:
    """Record in the current run's log that the secret ``name`` was served (once per process)."""
    from magnus.context import current_run

    run = current_run.get()
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


def _recorded_names(run: RunContext) -> set[str]:
    names = run.run_log_store.get_run_config(run.run_id).get(SERVED_KEY) or []
    return {n for n in names if isinstance(n, str)}


def _record_names(run: RunContext, names: set[str]) -> None:
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


def mask_secrets_served_in_run(run: RunContext) -> None:
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


class DoNothingSecrets(BaseSecrets):
    """Returns an empty string for every name: for pipelines that use no secrets.

    It never raises ``SecretNotFoundError`` and so cannot pass the ``SecretsContract``; an empty
    value is never redacted (there is nothing to hide).
    """

    service_name: ClassVar[str] = "do-nothing"

    def _fetch(self, name: str) -> str:
        return ""


class DotenvSecrets(BaseSecrets):
    """Secrets from a ``.env`` file, parsed by python-dotenv.

    The usual ``.env`` conventions hold: ``KEY=value``, an optional ``export`` in front, single or
    double quotes (in which ``=`` and ``#`` are plain characters and, in double quotes, escapes such
    as ``\\n`` work), values over several lines in quotes, ``# comments`` and blank lines. Values
    are taken literally: ``${OTHER}`` is *not* expanded from the environment, since a secret's
    value must not depend on the process that reads it and passwords may contain ``${``.

    The file (``location``, relative to the working directory) is read on the first ``get`` and
    kept for the life of the process. A missing file is a ``ConfigurationError`` naming the file,
    not a ``SecretNotFoundError``: the configuration points at nothing, and code that falls back
    when one secret is absent must not silently fall back for all of them. A key declared without
    a value (a line holding just ``KEY``) counts as absent: handing user code an empty password
    would hide the mistake.
    """

    service_name: ClassVar[str] = "dotenv"

    location: str = ".env"

    _values: dict[str, str | None] | None = PrivateAttr(default=None)

    @property
    def description(self) -> str:
        return f"dotenv file {self.location!r}"

    def _load(self) -> dict[str, str | None]:
        if self._values is None:
            # Imported here so that importing magnus does not import python-dotenv.
            from dotenv import dotenv_values

            path = Path(self.location)
            if not path.is_file():
                raise ConfigurationError(
                    f"The dotenv secrets file {self.location!r} does not exist "
                    f"(looked for {path.absolute()}); set 'location' in the secrets config"
                )
            self._values = dict(dotenv_values(path, interpolate=False, encoding="utf-8"))
        return self._values

    def _fetch(self, name: str) -> str:
        values = self._load()
        if name not in values:
            raise self.not_found(name)
        value = values[name]
        if value is None:
            raise self.not_found(name, "declared there without a value")
        return value


class EnvSecretsManager(BaseSecrets):
    """Secrets from environment variables: ``get(name)`` reads ``<prefix><name><suffix>``."""

    service_name: ClassVar[str] = "env-secrets-manager"

    prefix: str = ""
    suffix: str = ""

    def _variable(self, name: str) -> str:
        return f"{self.prefix}{name}{self.suffix}"

    def _fetch(self, name: str) -> str:
        variable = self._variable(name)
        try:
            return os.environ[variable]
        except KeyError:
            raise self.not_found(name, f"environment variable {variable!r}") from None
