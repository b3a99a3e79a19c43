"""The secrets contract: ``BaseSecrets`` caches what it serves and registers it for redaction.

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

The names of the secrets served in a run are recorded in its run log: see
:mod:`magnus.secrets.served`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any, ClassVar, cast

from pydantic import PrivateAttr
from pydantic.fields import ModelPrivateAttr

from magnus.exceptions import SecretNotFoundError
from magnus.redaction import get_redactor
from magnus.secrets.served import note_served
from magnus.services import BaseService

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
                note_served(name)
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
            note_served(name)
        return value

    setattr(wrapper, _REGISTERS, True)
    return wrapper
