"""Helpers for the Vault plugin's tests: paths of their own, providers, policies, request counting.

Every test writes under a path prefix of its own on the session's server (``vault_prefix``), so
tests sharing a server never see each other's secrets, and tokens are given policies on that
prefix only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from fixtures.vault_server import VaultServer
from magnus_secrets_vault import VaultSecrets
from secrets_vault.support import AppRole, Exchange, RequestLog, reader_policy


@pytest.fixture(autouse=True)
def _no_vault_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Nothing of the developer's Vault setup leaks in: no VAULT_*/BAO_* and no ~/.vault-token."""
    for key in list(os.environ):
        if key.startswith(("VAULT_", "BAO_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def vault_prefix() -> str:
    """A path prefix no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def secret_path(vault_prefix: str) -> str:
    """The path the test's provider reads by default."""
    return f"{vault_prefix}/project"


@pytest.fixture
def root(vault_server: VaultServer) -> Any:
    """An hvac client with the session server's root token, for setting things up."""
    return vault_server.client()


@pytest.fixture
def make_provider(
    vault_server: VaultServer, secret_path: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., VaultSecrets]:
    """A provider on the session server reading ``secret_path``; keywords override settings.

    The token (the root token unless ``token=`` says otherwise) is put in ``VAULT_TOKEN``, where
    the default ``auth`` looks for it; ``token=None`` leaves the environment alone.
    """

    def make(token: str | None = "root", **settings: Any) -> VaultSecrets:
        if token is not None:
            monkeypatch.setenv("VAULT_TOKEN", vault_server.root_token if token == "root" else token)
        values: dict[str, Any] = {"url": vault_server.url, "path": secret_path, "timeout": 10}
        values.update(settings)
        return VaultSecrets.from_config(values)

    return make


@pytest.fixture
def make_approle(root: Any, vault_prefix: str) -> Callable[..., AppRole]:
    """Create an AppRole whose tokens may read under the test's prefix; keywords go to the role."""
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")

    def make(**role: Any) -> AppRole:
        name = f"role-{uuid.uuid4().hex[:8]}"
        policy = reader_policy(root, vault_prefix)
        root.auth.approle.create_or_update_approle(name, token_policies=[policy], **role)
        role_id = root.auth.approle.read_role_id(name)["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id(name)["data"]["secret_id"]
        return AppRole(name, role_id, secret_id)

    return make


@pytest.fixture
def request_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[RequestLog]:
    """Record every request sent through ``requests`` (hvac's transport); nothing is changed.

    It wraps ``requests.Session.send``, below hvac: the requests hvac really sends to the
    server are counted, whatever hvac does above.
    """
    log = RequestLog()
    send = requests.Session.send

    def recording_send(self: requests.Session, request: Any, **kwargs: Any) -> Any:
        response = send(self, request, **kwargs)
        path = urlsplit(request.url).path
        log.exchanges.append(Exchange(request.method, path, response.status_code, response))
        return response

    monkeypatch.setattr(requests.Session, "send", recording_send)
    yield log
