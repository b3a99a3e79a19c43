"""The secrets contract and the built-in ``do-nothing`` provider."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from magnus.services import BaseService


class BaseSecrets(BaseService):
    """Base of every secrets provider: hands secret values to user code by name."""

    service_type: ClassVar[str] = "secrets"

    @abstractmethod
    def get(self, name: str) -> str:
        """The secret's value; ``SecretNotFoundError`` naming the secret and provider if absent."""


class DoNothingSecrets(BaseSecrets):
    """Returns an empty string for every name: for pipelines that use no secrets."""

    service_name: ClassVar[str] = "do-nothing"

    def get(self, name: str) -> str:
        return ""
