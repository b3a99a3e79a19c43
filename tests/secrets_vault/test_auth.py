"""Authentication: tokens from the environment or files, AppRole, renewal, re-acquisition, 403."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
from fixtures.vault_server import VaultServer
from magnus_secrets_vault import (
    VaultAuthError,
    VaultPermissionError,
    VaultSecrets,
)
from secrets_vault.support import AppRole, RequestLog, reader_policy


@pytest.fixture
def stored(root: Any, secret_path: str) -> dict[str, str]:
    """A secret at the test's path, and what it holds."""
    secret = {"db_password": "stored-password"}
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret=secret)
    return secret


def reader_token(root: Any, prefix: str, **options: Any) -> str:
    """A token that may read under ``prefix`` (and, by the default policy, look itself up)."""
    policy = reader_policy(root, prefix)
    return str(root.auth.token.create(policies=[policy], **options)["auth"]["client_token"])


# -------------------------------------------------------------------------------------------------
# where a token comes from
# -------------------------------------------------------------------------------------------------


def test_token_from_a_variable_of_our_choosing(
    root: Any,
    vault_prefix: str,
    stored: dict[str, str],
    make_provider: Callable[..., VaultSecrets],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEAM_VAULT_TOKEN", reader_token(root, vault_prefix))
    provider = make_provider(token=None, auth={"token_env": "TEAM_VAULT_TOKEN"})

    assert provider.get("db_password") == "stored-password"


def test_token_from_a_file_when_the_variable_is_unset(
    root: Any,
    vault_prefix: str,
    stored: dict[str, str],
    make_provider: Callable[..., VaultSecrets],
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(reader_token(root, vault_prefix) + "\n")  # as agents write it
    provider = make_provider(token=None, auth={"token_file": str(token_file)})

    assert provider.get("db_password") == "stored-password"


def test_the_variable_wins_over_the_file_unless_turned_off(
    root: Any,
    vault_prefix: str,
    stored: dict[str, str],
    make_provider: Callable[..., VaultSecrets],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(reader_token(root, vault_prefix))
    monkeypatch.setenv("VAULT_TOKEN", "not-a-valid-token")

    with pytest.raises(VaultPermissionError, match="environment variable 'VAULT_TOKEN'"):
        make_provider(token=None, auth={"token_file": str(token_file)}).get("db_password")
    only_file = make_provider(token=None, auth={"token_env": None, "token_file": str(token_file)})
    assert only_file.get("db_password") == "stored-password"


def test_hvac_fallbacks_are_never_used(
    vault_server: VaultServer,
    stored: dict[str, str],
    make_provider: Callable[..., VaultSecrets],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # hvac.Client() on its own reads VAULT_ADDR, VAULT_TOKEN and ~/.vault-token.
    (Path.home() / ".vault-token").write_text(vault_server.root_token)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")

    with pytest.raises(VaultAuthError) as caught:
        make_provider(token=None, auth={"token_env": "NOT_SET_ANYWHERE"}).get("db_password")
    assert "environment variable 'NOT_SET_ANYWHERE'" in str(caught.value)

    monkeypatch.setenv("NOW_SET", vault_server.root_token)
    provider = make_provider(token=None, auth={"token_env": "NOW_SET"})
    assert provider.get("db_password") == "stored-password"  # the url of the config, not VAULT_ADDR


def test_no_token_says_which_variable_and_file_were_tried(
    secret_path: str, make_provider: Callable[..., VaultSecrets], tmp_path: Path
) -> None:
    missing_file = tmp_path / "no-such-token"
    provider = make_provider(token=None, auth={"token_file": str(missing_file)})

    with pytest.raises(VaultAuthError) as caught:
        provider.get("db_password")

    message = str(caught.value)
    assert "no Vault token found" in message
    assert "environment variable 'VAULT_TOKEN' (unset or empty)" in message
    assert f"file {str(missing_file)!r} (does not exist)" in message
    assert "'db_password'" in message and "mount 'secret'" in message and secret_path in message
    assert (caught.value.name, caught.value.mount, caught.value.path) == (
        "db_password",
        "secret",
        secret_path,
    )


def test_an_empty_token_file_is_no_token(
    make_provider: Callable[..., VaultSecrets], tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("\n")
    provider = make_provider(
        token=None, auth={"token_env": None, "token_file": str(tmp_path / "token")}
    )

    with pytest.raises(VaultAuthError, match=r"\(empty\)"):
        provider.get("db_password")


# -------------------------------------------------------------------------------------------------
# AppRole
# -------------------------------------------------------------------------------------------------


def test_approle_with_ids_from_files(
    stored: dict[str, str],
    make_approle: Callable[..., AppRole],
    make_provider: Callable[..., VaultSecrets],
    tmp_path: Path,
) -> None:
    role = make_approle()
    (tmp_path / "role-id").write_text(role.role_id)
    (tmp_path / "secret-id").write_text(role.secret_id + "\n")
    provider = make_provider(
        token=None,
        auth={
            "method": "approle",
            "role_id_env": None,
            "role_id_file": str(tmp_path / "role-id"),
            "secret_id_env": None,
            "secret_id_file": str(tmp_path / "secret-id"),
        },
    )

    assert provider.get("db_password") == "stored-password"


def test_approle_on_another_mount_with_variables_of_our_choosing(
    root: Any,
    vault_prefix: str,
    stored: dict[str, str],
    make_provider: Callable[..., VaultSecrets],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mount = f"approle-{vault_prefix}"
    root.sys.enable_auth_method("approle", path=mount)
    policy = reader_policy(root, vault_prefix)
    root.auth.approle.create_or_update_approle("r", token_policies=[policy], mount_point=mount)
    monkeypatch.setenv(
        "MY_ROLE", root.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"]
    )
    monkeypatch.setenv(
        "MY_SECRET",
        root.auth.approle.generate_secret_id("r", mount_point=mount)["data"]["secret_id"],
    )
    provider = make_provider(
        token=None,
        auth={
            "method": "approle",
            "mount_point": mount,
            "role_id_env": "MY_ROLE",
            "secret_id_env": "MY_SECRET",
        },
    )

    assert provider.get("db_password") == "stored-password"


def test_a_refused_approle_login_names_where_the_ids_came_from_not_the_ids(
    make_approle: Callable[..., AppRole],
    make_provider: Callable[..., VaultSecrets],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role = make_approle()
    monkeypatch.setenv("VAULT_ROLE_ID", role.role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", "0f0f0f0f-wrong-secret-id")
    provider = make_provider(token=None, auth={"method": "approle"})

    with pytest.raises(VaultAuthError) as caught:
        provider.get("db_password")

    message = str(caught.value)
    assert "AppRole login at auth mount 'approle'" in message
    assert "environment variable 'VAULT_SECRET_ID'" in message
    assert "refused (HTTP 400" in message
    assert "wrong-secret-id" not in message and role.role_id not in message


def test_approle_without_a_secret_id_says_where_it_looked(
    make_approle: Callable[..., AppRole],
    make_provider: Callable[..., VaultSecrets],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_ROLE_ID", make_approle().role_id)
    provider = make_provider(
        token=None, auth={"method": "approle", "secret_id_file": "/nowhere/sid"}
    )

    with pytest.raises(VaultAuthError) as caught:
        provider.get("db_password")
    assert "no AppRole secret id found" in str(caught.value)
    assert "'VAULT_SECRET_ID' (unset or empty)" in str(caught.value)
    assert "'/nowhere/sid' (does not exist)" in str(caught.value)


# -------------------------------------------------------------------------------------------------
# permission denied, revoked and rotated tokens
# -------------------------------------------------------------------------------------------------


def test_a_token_whose_policy_cannot_read_the_path_gets_a_403_error(
    root: Any,
    secret_path: str,
    stored: dict[str, str],
    make_provider: Callable[..., VaultSecrets],
) -> None:
    token = reader_token(root, "some-other-team")
    provider = make_provider(token=token)

    with pytest.raises(VaultPermissionError) as caught:
        provider.get("db_password")

    message = str(caught.value)
    assert message.startswith("Permission denied (HTTP 403) reading secret 'db_password'")
    assert f"(mount 'secret', path {secret_path!r})" in message
    assert "environment variable 'VAULT_TOKEN'" in message
    assert token not in message and "stored-password" not in message
    assert (caught.value.name, caught.value.mount, caught.value.path) == (
        "db_password",
        "secret",
        secret_path,
    )


def test_a_revoked_token_is_reported_when_it_cannot_be_replaced(
    root: Any,
    vault_prefix: str,
    stored: dict[str, str],
    make_provider: Callable[..., VaultSecrets],
) -> None:
    token = reader_token(root, vault_prefix)
    provider = make_provider(token=token)
    assert provider.get("db_password") == "stored-password"

    root.auth.token.revoke(token)

    with pytest.raises(VaultPermissionError, match="expired or been revoked"):
        provider.get(f"{vault_prefix}/elsewhere#key")


def test_a_revoked_approle_token_is_replaced_by_a_new_login_and_the_read_retried(
    root: Any,
    vault_prefix: str,
    stored: dict[str, str],
    make_approle: Callable[..., AppRole],
    make_provider: Callable[..., VaultSecrets],
    monkeypatch: pytest.MonkeyPatch,
    request_log: RequestLog,
) -> None:
    root.secrets.kv.v2.create_or_update_secret(
        path=f"{vault_prefix}/later", secret={"k": "later-v"}
    )
    role = make_approle()
    monkeypatch.setenv("VAULT_ROLE_ID", role.role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", role.secret_id)
    provider = make_provider(token=None, auth={"method": "approle"})
    request_log.clear()
    assert provider.get("db_password") == "stored-password"
    (login,) = [e for e in request_log.exchanges if e.path == "/v1/auth/approle/login"]
    first_token = login.response.json()["auth"]["client_token"]

    root.auth.token.revoke(first_token)
    request_log.clear()

    assert provider.get(f"{vault_prefix}/later#k") == "later-v"
    assert [(e.method, e.path, e.status) for e in request_log.exchanges] == [
        ("GET", f"/v1/secret/data/{vault_prefix}/later", 403),
        ("POST", "/v1/auth/approle/login", 200),
        ("GET", f"/v1/secret/data/{vault_prefix}/later", 200),
    ]


def test_a_token_rotated_in_its_file_is_picked_up_after_a_403(
    root: Any,
    vault_prefix: str,
    stored: dict[str, str],
    make_provider: Callable[..., VaultSecrets],
    tmp_path: Path,
) -> None:
    # Vault Agent rewrites its sink file with a new token when the old one goes away.
    root.secrets.kv.v2.create_or_update_secret(
        path=f"{vault_prefix}/later", secret={"k": "later-v"}
    )
    token_file = tmp_path / "sink"
    old = reader_token(root, vault_prefix)
    token_file.write_text(old)
    provider = make_provider(token=None, auth={"token_env": None, "token_file": str(token_file)})
    assert provider.get("db_password") == "stored-password"

    root.auth.token.revoke(old)
    token_file.write_text(reader_token(root, vault_prefix))

    assert provider.get(f"{vault_prefix}/later#k") == "later-v"


# -------------------------------------------------------------------------------------------------
# long runs: renewal before expiry
# -------------------------------------------------------------------------------------------------


def test_a_renewable_token_is_renewed_before_it_expires(
    root: Any,
    vault_prefix: str,
    make_provider: Callable[..., VaultSecrets],
    request_log: RequestLog,
) -> None:
    steps = 19
    for i in range(steps):
        root.secrets.kv.v2.create_or_update_secret(
            path=f"{vault_prefix}/s{i}", secret={"k": f"value-{i}"}
        )
    options = {"ttl": "3s", "explicit_max_ttl": "60s", "renewable": True}
    token = reader_token(root, vault_prefix, **options)
    unused_twin = reader_token(root, vault_prefix, **options)  # the control: nobody renews it
    provider = make_provider(token=token)
    request_log.clear()

    started = time.monotonic()
    # A read every 0.25 s for 4.5 s, well past the 3 s TTL. Renewal is due with 1 s left, so
    # a read may come up to 0.75 s late (a loaded machine) before the token would expire.
    for i in range(steps):
        assert provider.get(f"{vault_prefix}/s{i}#k") == f"value-{i}"
        if i < steps - 1:
            time.sleep(0.25)
    took = time.monotonic() - started

    assert took > 4.0
    renewals = request_log.count("POST", "/v1/auth/token/renew-self")
    assert 2 <= renewals <= 4  # when less than a third (1 s) was left, not on every read
    assert request_log.count("GET", "/v1/auth/token/lookup-self") == 1
    assert all(e.status == 200 for e in request_log.exchanges)
    # Still alive: the lookup succeeds (its whole-second ttl may read 0 on a loaded machine).
    assert root.auth.token.lookup(token)["data"]["ttl"] >= 0
    with pytest.raises(hvac.exceptions.Forbidden):  # the same token, not renewed, expired
        root.auth.token.lookup(unused_twin)


def test_an_approle_token_at_its_max_ttl_is_replaced_by_a_new_login_with_no_read_denied(
    root: Any,
    vault_prefix: str,
    make_approle: Callable[..., AppRole],
    make_provider: Callable[..., VaultSecrets],
    monkeypatch: pytest.MonkeyPatch,
    request_log: RequestLog,
) -> None:
    steps = 11
    for i in range(steps):
        root.secrets.kv.v2.create_or_update_secret(
            path=f"{vault_prefix}/s{i}", secret={"k": f"value-{i}"}
        )
    # Renewable, but never past 3 s: only a new login keeps the run going.
    role = make_approle(token_ttl="2s", token_max_ttl="3s")
    monkeypatch.setenv("VAULT_ROLE_ID", role.role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", role.secret_id)
    provider = make_provider(token=None, auth={"method": "approle"})
    request_log.clear()

    for i in range(steps):  # a read every 0.4 s for 4 s
        assert provider.get(f"{vault_prefix}/s{i}#k") == f"value-{i}"
        if i < steps - 1:
            time.sleep(0.4)

    assert request_log.count("POST", "/v1/auth/approle/login") >= 2
    assert request_log.count("POST", "/v1/auth/token/renew-self") >= 1
    # replaced before it ran out: no read was ever denied (a renewal past the max TTL may be)
    reads = [e for e in request_log.exchanges if e.path.startswith("/v1/secret/")]
    assert [e.status for e in reads] == [200] * steps, request_log.paths()
