"""The built-in ``do-nothing`` secrets provider."""

from __future__ import annotations

from typing import ClassVar

from magnus.secrets.base import BaseSecrets


class DoNothingSecrets(BaseSecrets):
    """Returns an empty string for every name: for pipelines that use no secrets.

    It never raises ``SecretNotFoundError`` and so cannot pass the ``SecretsContract``; an empty
    value is never redacted (there is nothing to hide).
    """

    service_name: ClassVar[str] = "do-nothing"

    def _fetch(self, name: str) -> str:
        return ""
