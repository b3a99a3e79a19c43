"""The Vault provider passes the contract every magnus secrets provider passes.

Three ways of reading the same secret: KV v2 with a token, KV v1 with a token, and KV v2 with
an AppRole login. The contract needs a fresh provider per test, which each fixture gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from magnus_secrets_vault import VaultSecrets
from secrets_vault.support import AppRole, ensure_kv1

from magnus.testing.secrets import SECRET_NAME, SECRET_VALUE, SecretsContract


class TestKv2WithToken(SecretsContract):
    @pytest.fixture
    def secrets_provider(
        self, root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
    ) -> VaultSecrets:
        root.secrets.kv.v2.create_or_update_secret(
            path=secret_path, secret={SECRET_NAME: SECRET_VALUE, "other": "unrelated-value"}
        )
        return make_provider()


class TestKv1WithToken(SecretsContract):
    @pytest.fixture
    def secrets_provider(
        self, root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
    ) -> VaultSecrets:
        mount = ensure_kv1(root)
        root.secrets.kv.v1.create_or_update_secret(
            path=secret_path, secret={SECRET_NAME: SECRET_VALUE}, mount_point=mount
        )
        return make_provider(mount_point=mount, kv_version=1)


class TestKv2WithAppRole(SecretsContract):
    @pytest.fixture
    def secrets_provider(
        self,
        root: Any,
        secret_path: str,
        make_provider: Callable[..., VaultSecrets],
        make_approle: Callable[..., AppRole],
        monkeypatch: pytest.MonkeyPatch,
    ) -> VaultSecrets:
        root.secrets.kv.v2.create_or_update_secret(
            path=secret_path, secret={SECRET_NAME: SECRET_VALUE}
        )
        role = make_approle()
        monkeypatch.setenv("VAULT_ROLE_ID", role.role_id)
        monkeypatch.setenv("VAULT_SECRET_ID", role.secret_id)
        return make_provider(token=None, auth={"method": "approle"})
