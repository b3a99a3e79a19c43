"""magnus-secrets-vault: secrets from HashiCorp Vault or OpenBao KV engines for magnus.

Configure it as ``secrets: {type: vault, config: {...}}``; see :class:`VaultSecrets`. hvac is
imported only when a secret is first read.
"""

from __future__ import annotations

from magnus_secrets_vault.auth import VaultAuth
from magnus_secrets_vault.errors import (
    SecretsProviderError,
    VaultAuthError,
    VaultPermissionError,
    VaultSealedError,
    VaultUnreachableError,
)
from magnus_secrets_vault.secrets import VaultSecrets

__all__ = [
    "SecretsProviderError",
    "VaultAuth",
    "VaultAuthError",
    "VaultPermissionError",
    "VaultSealedError",
    "VaultSecrets",
    "VaultUnreachableError",
]
