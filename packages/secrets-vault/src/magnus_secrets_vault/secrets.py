"""The ``vault`` secrets provider: secrets from a Vault (or OpenBao) KV engine, read with hvac.

Naming
    ``get("db_password")`` is the key ``db_password`` of the secret at the configured ``path``.
    ``get("team/other#api_key")`` is the key ``api_key`` of the secret at ``team/other``, another
    path under the same mount. A name holding ``#`` is split at its first ``#``.

Caching
    A path is read whole, once per process, and every key is served from that read (core's
    ``BaseSecrets.get`` adds its own per-name cache and the redaction). A key that is absent
    makes the path be read again, so a key added since the first read is found. Nothing is ever
    written to disk, and a provider pickled to another process arrives with nothing cached.

Tokens
    A token is obtained at the first read -- from the environment or a file, or by an AppRole
    login -- and its lifetime is tracked: before each read, a token with less than a third of its
    TTL left is renewed (if renewable) and an AppRole token that cannot be renewed long enough is
    replaced by a fresh login. A read denied with 403 (the token expired or was revoked) is
    retried once after a fresh AppRole login, or, with ``method: token``, after re-reading the
    token's variable or file when it now holds another token (an agent rotated it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator

from magnus.redaction import get_redactor
from magnus.secrets import BaseSecrets
from magnus_secrets_vault.auth import Credential, CredentialError, VaultAuth, read_credential
from magnus_secrets_vault.errors import (
    SecretsProviderError,
    VaultAuthError,
    VaultPermissionError,
    VaultSealedError,
    VaultUnreachableError,
)

logger = logging.getLogger(__name__)

#: a token is renewed when less than this part of its TTL is left
RENEW_WHEN_LEFT = 1 / 3
#: separates a path from a key in a secret name: ``team/other#api_key``
PATH_SEPARATOR = "#"

# hvac raises one class per HTTP status and keeps no status code: this maps them back, for
# messages.
_STATUS_OF = {
    "InvalidRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "InvalidPath": 404,
    "RateLimitExceeded": 429,
    "InternalServerError": 500,
    "VaultNotInitialized": 501,
    "BadGateway": 502,
    "VaultDown": 503,
}


def _status(error: Exception) -> str:
    code = _STATUS_OF.get(type(error).__name__)
    return f"HTTP {code}" if code else type(error).__name__


def _vault_reason(error: Any) -> str:
    """Vault's own error text, masked and shortened; Vault's errors never quote stored data."""
    errors = getattr(error, "errors", None) or []
    text = "; ".join(" ".join(str(e).split()) for e in errors)
    return get_redactor().redact_text(text)[:200]


@dataclass
class _Lease:
    """How long the current token lives, as far as this process knows."""

    #: the TTL the token was last granted, in seconds: the yardstick for "a third left"
    period: float
    #: ``time.monotonic()`` when it expires, measured from *before* the request that told us
    expires_at: float
    renewable: bool

    def due(self) -> bool:
        return self.expires_at - time.monotonic() < self.period * RENEW_WHEN_LEFT


def _lease(ttl: Any, period: Any, renewable: Any, asked_at: float) -> _Lease | None:
    """The lease of a token with ``ttl`` seconds left; ``None`` for one that never expires."""
    if not ttl:  # root tokens and other tokens without a TTL report 0
        return None
    ttl = float(ttl)
    return _Lease(max(float(period or 0), ttl), asked_at + ttl, bool(renewable))


class VaultSecrets(BaseSecrets):
    """Secrets from a KV (v1 or v2) engine of HashiCorp Vault or OpenBao.

    ``get(name)`` serves the key ``name`` of the secret at ``path`` in the KV engine mounted at
    ``mount_point``; ``get("other/path#key")`` reads another path of the same mount. Values
    that are not strings (numbers, lists, objects) are served as JSON; a key whose value is
    null counts as absent.

    Credentials are read from the places ``auth`` names, never from this configuration, so
    ``run_config`` holds no token, role id or secret id. See the module docstring for caching and
    token renewal.
    """

    service_name: ClassVar[str] = "vault"

    url: str
    mount_point: str = "secret"
    path: str
    kv_version: Literal[1, 2] = 2
    namespace: str | None = None
    #: TLS verification: ``true``, ``false``, or the path of a CA bundle
    verify: bool | str = True
    #: seconds to wait for Vault to connect and to answer, per request
    timeout: float = Field(default=30.0, gt=0)
    auth: VaultAuth = Field(default_factory=VaultAuth)

    # Per-process state; private attributes are never recorded and are reset by pickling
    # (BaseSecrets.__getstate__), so neither the token nor cached values travel.
    _client: Any = PrivateAttr(default=None)
    _lease: _Lease | None = PrivateAttr(default=None)
    _token_source: str = PrivateAttr(default="")
    _paths: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {url!r}")
        return url.rstrip("/")

    @field_validator("mount_point", "path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        value = value.strip("/")
        if not value:
            raise ValueError("must not be empty")
        return value

    @property
    def description(self) -> str:
        namespace = f", namespace {self.namespace!r}" if self.namespace else ""
        return f"vault KV v{self.kv_version} mount {self.mount_point!r} at {self.url}{namespace}"

    # ---------------------------------------------------------------------------------------------
    # reading
    # ---------------------------------------------------------------------------------------------

    def _fetch(self, name: str) -> str:
        path, key = self._split(name)
        data = self._paths.get(path)
        if data is None or key not in data:
            # First read of the path, or a key it lacked when read: read it (again), so that a
            # key added since is found; a missing secret is never remembered as missing.
            data = self._read_path(name, path)
            if data is None:
                self._paths.pop(path, None)
                raise self.not_found(name, f"path {path!r} does not exist")
            self._paths[path] = data
        if key not in data:
            raise self.not_found(name, f"path {path!r} has no key {key!r}")
        value = data[key]
        if value is None:
            raise self.not_found(name, f"key {key!r} of path {path!r} is null")
        return value if isinstance(value, str) else json.dumps(value)

    def _split(self, name: str) -> tuple[str, str]:
        """``(path, key)`` of a secret name: ``key`` or ``path#key``."""
        if PATH_SEPARATOR not in name:
            return self.path, name
        path, _, key = name.partition(PATH_SEPARATOR)
        path = path.strip("/")
        if not path or not key:
            raise SecretsProviderError(
                f"The secret name {name!r} is not valid for the vault secrets provider: write "
                f"'key' for a key of path {self.path!r}, or 'path#key' (both parts non-empty) "
                f"for a key of another path of mount {self.mount_point!r}",
                name=name,
                mount=self.mount_point,
                path=path,
            )
        return path, key

    def _read_path(self, name: str, path: str) -> dict[str, Any] | None:
        """Every key of the secret at ``path``; ``None`` if there is none."""
        import hvac.exceptions

        with self._vault_errors(name, path):
            client = self._ready_client()
            try:
                return self._read(client, path)
            except hvac.exceptions.Forbidden:
                # Most often an expired or revoked token: get a fresh one if we can, and retry
                # once. A second 403 is reported (as permission denied) by _vault_errors.
                if not self._reacquire_token():
                    raise
            return self._read(self._client, path)

    def _read(self, client: Any, path: str) -> dict[str, Any] | None:
        import hvac.exceptions

        try:
            if self.kv_version == 2:
                # raise_on_deleted_version is passed explicitly: leaving it out is deprecated
                # (hvac 3 changes the default). True makes a deleted latest version a 404, which
                # reads as a missing path rather than as a secret without keys.
                answer = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.mount_point, raise_on_deleted_version=True
                )
                data = answer["data"]["data"]
            else:
                answer = client.secrets.kv.v1.read_secret(path=path, mount_point=self.mount_point)
                data = answer["data"]
        except hvac.exceptions.InvalidPath:
            return None
        return dict(data or {})

    # ---------------------------------------------------------------------------------------------
    # tokens
    # ---------------------------------------------------------------------------------------------

    def _ready_client(self) -> Any:
        """The hvac client, logged in, with a token renewed if it was running out."""
        if self._client is None:
            self._connect()
        else:
            self._keep_token_fresh()
        return self._client

    def _new_client(self, token: str) -> Any:
        import hvac

        # url and token are always explicit: given None, hvac.Client falls back to VAULT_ADDR,
        # VAULT_TOKEN and ~/.vault-token on its own, which would bypass the configuration. An
        # empty token (before an AppRole login) sends no token header at all.
        return hvac.Client(
            url=self.url,
            token=token,
            verify=self.verify,
            timeout=self.timeout,
            namespace=self.namespace,
        )

    def _connect(self) -> None:
        if self.auth.method == "approle":
            client = self._new_client("")
            self._approle_login(client)
        else:
            credential = self._read_token()
            client = self._new_client(credential.value)
            self._use_token(client, credential)
        # Kept only once logged in: a failed login is tried afresh by the next read.
        self._client = client

    def _read_token(self) -> Credential:
        credential = read_credential("Vault token", self.auth.token_env, self.auth.token_file)
        # Not a served secret, but it must not reach a log either if user code prints it.
        get_redactor().register(credential.value, name="Vault token")
        return credential

    def _use_token(self, client: Any, credential: Credential) -> None:
        """Switch ``client`` to a token read from the environment or a file; learn its TTL."""
        import hvac.exceptions

        client.token = credential.value
        self._token_source = credential.source
        asked_at = time.monotonic()
        try:
            data = client.auth.token.lookup_self()["data"]
        except hvac.exceptions.Forbidden:
            # A token without the default policy may not look itself up (and a dead one cannot
            # either): its TTL is unknown, so it is not renewed. The read says if it works.
            self._lease = None
            return
        self._lease = _lease(
            data.get("ttl"), data.get("creation_ttl"), data.get("renewable"), asked_at
        )

    def _approle_login(self, client: Any) -> None:
        import hvac.exceptions

        auth = self.auth
        role_id = read_credential("AppRole role id", auth.role_id_env, auth.role_id_file)
        secret_id = read_credential("AppRole secret id", auth.secret_id_env, auth.secret_id_file)
        redactor = get_redactor()
        redactor.register(role_id.value, name="Vault AppRole role id")
        redactor.register(secret_id.value, name="Vault AppRole secret id")
        asked_at = time.monotonic()
        try:
            answer = client.auth.approle.login(
                role_id=role_id.value, secret_id=secret_id.value, mount_point=auth.mount_point
            )
        except (
            hvac.exceptions.InvalidRequest,
            hvac.exceptions.Unauthorized,
            hvac.exceptions.Forbidden,
            hvac.exceptions.InvalidPath,
        ) as exc:
            reason = _vault_reason(exc)
            raise CredentialError(
                f"the AppRole login at auth mount {auth.mount_point!r} with the role id from "
                f"{role_id} and the secret id from {secret_id} was refused "
                f"({_status(exc)}{': ' + reason if reason else ''})"
            ) from None
        login = answer["auth"]
        client.token = login["client_token"]
        redactor.register(client.token, name="Vault token")
        self._token_source = f"the AppRole login at auth mount {auth.mount_point!r}"
        self._lease = _lease(
            login.get("lease_duration"),
            login.get("lease_duration"),
            login.get("renewable"),
            asked_at,
        )
        logger.debug("Logged in to Vault at %s through AppRole", self.url)

    def _keep_token_fresh(self) -> None:
        """Renew a token with less than a third of its TTL left, or log in again (AppRole)."""
        import hvac.exceptions

        lease = self._lease
        if lease is None or not lease.due():
            return
        approle = self.auth.method == "approle"
        if lease.renewable:
            asked_at = time.monotonic()
            try:
                login = self._client.auth.token.renew_self()["auth"]
            except (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized):
                raise  # the read would fail the same way: report it as sealed
            except hvac.exceptions.VaultError:
                # Expired or revoked in the meantime (403), or at its max TTL (Vault answers
                # 500 "past the max TTL, cannot renew"): this token cannot be renewed.
                login = None
            if login is not None:
                # Not _lease(): a renewal granting 0 s means "used up", not "never expires".
                ttl = float(login.get("lease_duration") or 0)
                renewed = _Lease(lease.period, asked_at + ttl, bool(login.get("renewable")))
                # A renewal capped by the token's max TTL can leave it due again at once: an
                # AppRole token is then replaced; any other is renewed until it runs out.
                if not renewed.due() or not approle:
                    self._lease = renewed
                    logger.debug("Renewed the Vault token (%s s left)", login.get("lease_duration"))
                    return
            elif not approle:
                self._lease = None  # dead: the next read gets a 403 and reports it
                return
        if approle:
            self._approle_login(self._client)

    def _reacquire_token(self) -> bool:
        """After a 403: a fresh token if one can be had (AppRole, or a rotated token source)."""
        if self.auth.method == "approle":
            logger.info(
                "Vault denied a read at %s; logging in again through AppRole and retrying once",
                self.url,
            )
            self._approle_login(self._client)
            return True
        try:
            credential = self._read_token()
        except CredentialError:
            return False
        if credential.value == self._client.token:
            return False
        logger.info("The Vault token in %s changed; retrying the denied read once", credential)
        self._use_token(self._client, credential)
        return True

    # ---------------------------------------------------------------------------------------------
    # errors
    # ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _vault_errors(self, name: str, path: str) -> Iterator[None]:
        """Turn hvac, requests and credential errors into magnus errors naming the secret.

        The originals are dropped (``from None``): hvac puts response bodies in some of its
        messages, and a provider of secrets should not pass on text it has not vetted.
        """
        import hvac.exceptions
        import requests.exceptions

        where = (
            f"secret {name!r} (mount {self.mount_point!r}, path {path!r}) from Vault at {self.url}"
        )
        names = {"name": name, "mount": self.mount_point, "path": path}
        try:
            yield
        except CredentialError as exc:
            raise VaultAuthError(f"Cannot read {where}: {exc}", **names) from None
        except hvac.exceptions.Forbidden:
            source = self._token_source or "the configuration"
            raise VaultPermissionError(
                f"Permission denied (HTTP 403) reading {where}: the token from {source} may "
                "not read this path (check its policies), or it has expired or been revoked",
                **names,
            ) from None
        except (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized) as exc:
            raise VaultSealedError(
                f"Cannot read {where}: Vault is sealed or not ready ({_status(exc)}); unseal it "
                "or wait for it to become active",
                **names,
            ) from None
        except hvac.exceptions.VaultError as exc:
            reason = _vault_reason(exc)
            raise SecretsProviderError(
                f"Cannot read {where}: Vault answered {_status(exc)}"
                f"{': ' + reason if reason else ''}",
                **names,
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise VaultUnreachableError(
                f"Cannot read {where}: no answer from Vault ({type(exc).__name__}); is the url "
                "right and the server up?",
                **names,
            ) from None
