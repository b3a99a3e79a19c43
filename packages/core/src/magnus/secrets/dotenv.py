"""The built-in ``dotenv`` secrets provider: secrets from a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import PrivateAttr

from magnus.exceptions import ConfigurationError
from magnus.secrets.base import BaseSecrets


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
