"""How the Vault provider authenticates: where its credentials come from, never what they are.

The configuration names *places* -- an environment variable, a file -- and the credentials are
read from them when a token is needed (at the first read, and again whenever a token has to be
re-acquired). So ``run_config`` in the run log holds variable names and file paths only, and a
rotated secret id or a token file rewritten by an agent is picked up without a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict


class VaultAuth(BaseModel):
    """The ``auth`` block of the ``vault`` secrets configuration.

    ``method: token`` reads a token from the environment variable ``token_env`` or, when that is
    unset or empty, from ``token_file``. ``method: approle`` logs in at the AppRole mount
    ``mount_point`` with a role id and a secret id, each read the same way (``*_env`` first,
    then ``*_file``), and logs in again whenever its token expires or is revoked.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["token", "approle"] = "token"
    # ``None`` turns a variable off, e.g. to make sure only ``token_file`` is ever used.
    token_env: str | None = "VAULT_TOKEN"
    token_file: str | None = None
    role_id_env: str | None = "VAULT_ROLE_ID"
    role_id_file: str | None = None
    secret_id_env: str | None = "VAULT_SECRET_ID"
    secret_id_file: str | None = None
    mount_point: str = "approle"


@dataclass(frozen=True)
class Credential:
    """A credential and where it was read from; ``repr`` and ``str`` show only the place."""

    value: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return self.source


class CredentialError(Exception):
    """A credential is missing or unreadable, or Vault refused it; the message says which.

    Internal: the provider turns it into a ``VaultAuthError`` naming the secret it was reading.
    """


def read_credential(what: str, env: str | None, file: str | None) -> Credential:
    """The credential from the variable ``env`` if set and non-empty, else from ``file``.

    Surrounding whitespace is dropped: token files usually end with a newline. Raises
    :class:`CredentialError` naming every place tried, or the file that could not be read.
    """
    tried: list[str] = []
    if env:
        value = os.environ.get(env, "").strip()
        if value:
            return Credential(value, f"environment variable {env!r}")
        tried.append(f"environment variable {env!r} (unset or empty)")
    if file:
        path = Path(file).expanduser()
        if path.is_file():
            try:
                value = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise CredentialError(
                    f"cannot read the {what} file {str(path)!r}: {type(exc).__name__}"
                ) from None
            if value:
                return Credential(value, f"file {str(path)!r}")
            tried.append(f"file {str(path)!r} (empty)")
        else:
            tried.append(f"file {str(path)!r} (does not exist)")
    if not tried:
        raise CredentialError(
            f"no {what}: neither an environment variable nor a file is configured"
        )
    raise CredentialError(f"no {what} found: tried {' and '.join(tried)}")
