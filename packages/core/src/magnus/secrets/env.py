"""The built-in ``env-secrets-manager`` secrets provider: secrets from environment variables."""

from __future__ import annotations

import os
from typing import ClassVar

from magnus.secrets.base import BaseSecrets


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
