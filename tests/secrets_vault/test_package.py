"""The magnus-secrets-vault distribution: metadata, plugin, configuration model, run_config."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from fixtures.vault_server import VaultServer
from magnus_secrets_vault import VaultSecrets
from packaging.requirements import Requirement
from packaging.version import Version

from magnus.exceptions import ConfigurationError
from magnus.plugins import get_plugins

REPO = Path(__file__).resolve().parents[2]


def test_metadata_entry_point_and_core_range() -> None:
    dist = metadata.distribution("magnus-secrets-vault")
    assert dist.version == "0.1.0"
    requirements = {Requirement(r).name: Requirement(r) for r in dist.requires or []}
    core_version = metadata.version("magnus-core")
    assert requirements["magnus-core"].specifier.contains(core_version, prereleases=True)
    assert Version(core_version) >= Version("0.6")
    assert "hvac" in requirements
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "magnus"]
    assert (entry_point.name, entry_point.value) == ("vault", "magnus_secrets_vault.plugin")


def test_the_plugin_registers_the_vault_provider() -> None:
    plugins = get_plugins()

    assert plugins.service_class("secrets", "vault") is VaultSecrets
    assert plugins.services("secrets")["vault"].distribution == "magnus-secrets-vault"


def test_configuring_the_provider_imports_no_hvac() -> None:
    # hvac (and requests under it) cost import time: only a first read brings them in.
    code = (
        "import sys\n"
        "from magnus.plugins import get_plugins\n"
        "Vault = get_plugins().service_class('secrets', 'vault')\n"
        "Vault.from_config({'url': 'http://vault:8200', 'path': 'a/b'}).record()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('hvac', 'requests')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_defaults() -> None:
    provider = VaultSecrets.from_config({"url": "https://vault:8200/", "path": "/team/project/"})

    assert (provider.url, provider.path, provider.mount_point) == (
        "https://vault:8200",
        "team/project",
        "secret",
    )
    assert (provider.kv_version, provider.namespace, provider.verify) == (2, None, True)
    assert provider.auth.method == "token" and provider.auth.token_env == "VAULT_TOKEN"
    assert provider.auth.mount_point == "approle"
    assert provider.description == "vault KV v2 mount 'secret' at https://vault:8200"


def test_run_config_names_where_credentials_come_from_and_holds_none(
    vault_server: VaultServer,
    root: Any,
    secret_path: str,
    make_provider: Callable[..., VaultSecrets],
) -> None:
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"k": "served-value"})
    provider = make_provider(namespace=None, verify=False)
    assert provider.get("k") == "served-value"  # logged in: a token is held now

    record = provider.record()

    assert record == {
        "service_name": "vault",
        "service_type": "secrets",
        "url": vault_server.url,
        "mount_point": "secret",
        "path": secret_path,
        "kv_version": 2,
        "namespace": None,
        "verify": False,
        "timeout": 10.0,
        "auth": {
            "method": "token",
            "token_env": "VAULT_TOKEN",
            "token_file": None,
            "role_id_env": "VAULT_ROLE_ID",
            "role_id_file": None,
            "secret_id_env": "VAULT_SECRET_ID",
            "secret_id_file": None,
            "mount_point": "approle",
        },
    }
    for shown in (json.dumps(record), repr(provider), str(provider)):
        assert vault_server.root_token not in shown
        assert "served-value" not in shown


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"path": "a"}, "missing required key 'url'"),
        ({"url": "http://v:8200"}, "missing required key 'path'"),
        ({"url": "http://v:8200", "path": "a", "token": "s.x"}, "unknown key 'token'"),
        (
            {"url": "http://v:8200", "path": "a", "auth": {"token": "s.x"}},
            "unknown key 'auth.token'",
        ),
        (
            {"url": "http://v:8200", "path": "a", "auth": {"secret_id": "x"}},
            "unknown key 'auth.secret_id'",
        ),
        (
            {"url": "http://v:8200", "path": "a", "auth": {"method": "kubernetes"}},
            "key 'auth.method'",
        ),
        ({"url": "http://v:8200", "path": "a", "kv_version": 3}, "key 'kv_version'"),
        ({"url": "vault:8200", "path": "a"}, "key 'url'"),
        ({"url": "http://v:8200", "path": "/"}, "key 'path'"),
        ({"url": "http://v:8200", "path": "a", "mount_point": ""}, "key 'mount_point'"),
        ({"url": "http://v:8200", "path": "a", "timeout": 0}, "key 'timeout'"),
    ],
)
def test_bad_settings_are_refused_by_name(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as caught:
        VaultSecrets.from_config(config)
    assert "'vault'" in str(caught.value)
    assert "s.x" not in str(caught.value)
