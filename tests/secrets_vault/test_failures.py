"""A server that is sealed, killed or not there: errors that name the secret, never a value."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.vault_server import VaultServer, start_vault_server
from magnus_secrets_vault import (
    SecretsProviderError,
    VaultSealedError,
    VaultSecrets,
    VaultUnreachableError,
)

from magnus.exceptions import SecretNotFoundError


def own_provider(
    server: VaultServer, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> VaultSecrets:
    monkeypatch.setenv("VAULT_TOKEN", server.root_token)
    return VaultSecrets(url=server.url, path="team/project", timeout=5, **settings)


def test_a_sealed_server_is_reported_as_sealed(
    vault_server_factory: Callable[..., VaultServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = vault_server_factory()
    root = server.client()
    root.secrets.kv.v2.create_or_update_secret(path="team/project", secret={"k": "before-seal"})
    root.secrets.kv.v2.create_or_update_secret(path="team/other", secret={"k": "never-read"})
    provider = own_provider(server, monkeypatch)
    assert provider.get("k") == "before-seal"

    root.sys.seal()
    assert server.health() == 503

    with pytest.raises(VaultSealedError) as caught:
        provider.get("team/other#k")
    message = str(caught.value)
    assert "Vault is sealed or not ready (HTTP 503)" in message
    assert "secret 'team/other#k' (mount 'secret', path 'team/other')" in message
    assert "never-read" not in message
    assert isinstance(caught.value, SecretsProviderError)
    assert not isinstance(caught.value, SecretNotFoundError)  # no silent fallback on a sealed Vault
    # what this process already read is still served from its cache
    assert provider.get("k") == "before-seal"
    # a provider that never logged in fails the same way (at its token lookup)
    with pytest.raises(VaultSealedError):
        own_provider(server, monkeypatch).get("k")


def test_a_closed_port_is_reported_as_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("VAULT_TOKEN", "some-token-value")
    provider = VaultSecrets(url=f"http://127.0.0.1:{port}", path="team/project", timeout=5)

    with pytest.raises(VaultUnreachableError) as caught:
        provider.get("db_password")

    message = str(caught.value)
    assert f"from Vault at http://127.0.0.1:{port}" in message
    assert "no answer from Vault (ConnectionError)" in message
    assert "'db_password' (mount 'secret', path 'team/project')" in message
    assert "some-token-value" not in message


def test_a_server_that_dies_mid_run_is_reported_as_unreachable(
    vault_server_factory: Callable[..., VaultServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = vault_server_factory()
    server.client().secrets.kv.v2.create_or_update_secret(
        path="team/project", secret={"k": "alive-value"}
    )
    provider = own_provider(server, monkeypatch)
    assert provider.get("k") == "alive-value"

    server.kill()

    with pytest.raises(VaultUnreachableError, match="'team/other#k'"):
        provider.get("team/other#k")
    assert provider.get("k") == "alive-value"  # cached before the server died


def test_a_vault_that_cannot_start_fails_the_fixture_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as caught:
        start_vault_server(tmp_path, config='listener "tcp" { this is not HCL')

    message = str(caught.value)
    assert "OpenBao (healthy, serving secret/) did not become ready" in message
    assert f"log {tmp_path / 'bao.log'}" in message
    assert "error" in message.split("bao.log:", 1)[1].lower()  # the server's own words follow
