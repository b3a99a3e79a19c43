"""The hook implementation magnus loads through the ``magnus`` entry point ``vault``.

The provider class is imported inside the hook, and hvac only when a secret is first read, so
installing this plugin adds nothing to ``import magnus`` or ``magnus --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magnus import hookimpl

if TYPE_CHECKING:
    from magnus.secrets import BaseSecrets


@hookimpl
def register_secrets() -> list[type[BaseSecrets]]:
    """The ``vault`` secrets provider."""
    from magnus_secrets_vault.secrets import VaultSecrets

    return [VaultSecrets]
