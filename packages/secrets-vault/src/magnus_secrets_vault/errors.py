"""Errors of the Vault secrets provider, other than a missing secret.

A missing path or key is core's ``SecretNotFoundError``: code that falls back when a secret is
absent catches that. Everything else -- no credentials, a denied read, a sealed or unreachable
server -- is a :class:`SecretsProviderError`, so that such a fallback never hides a broken
setup. Every message names the secret, the mount and the path it was read from; none holds a
secret value, a token, a role id or a secret id.
"""

from __future__ import annotations

from magnus.exceptions import MagnusError


class SecretsProviderError(MagnusError):
    """A secrets provider could not answer: the secret may exist, but it could not be read."""

    def __init__(self, message: str, *, name: str = "", mount: str = "", path: str = "") -> None:
        super().__init__(message)
        #: the secret name user code asked for
        self.name = name
        #: the KV mount and the path under it that were read
        self.mount = mount
        self.path = path


class VaultAuthError(SecretsProviderError):
    """No credentials were found where the configuration says, or the AppRole login failed."""


class VaultPermissionError(SecretsProviderError):
    """Vault answered 403: the token may not read the path, or it expired or was revoked."""


class VaultSealedError(SecretsProviderError):
    """Vault answered 503 or 501: it is sealed, in standby without a leader, or not initialised."""


class VaultUnreachableError(SecretsProviderError):
    """No answer from Vault: connection refused, DNS failure, TLS failure or timeout."""
