"""Reading: KV v2 and v1, ``path#key``, value types, the per-process cache, missing secrets."""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from magnus_secrets_vault import SecretsProviderError, VaultSecrets
from secrets_vault.support import RequestLog, ensure_kv1

from magnus.exceptions import SecretNotFoundError


def test_kv2_serves_each_key_of_the_path(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    root.secrets.kv.v2.create_or_update_secret(
        path=secret_path, secret={"db_password": "hunter2-db", "api_key": "key-123456"}
    )
    provider = make_provider()

    assert provider.get("db_password") == "hunter2-db"
    assert provider.get("api_key") == "key-123456"


def test_kv2_serves_the_latest_version(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"k": "version-one"})
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"k": "version-two"})

    assert make_provider().get("k") == "version-two"


def test_kv1_serves_each_key_of_the_path(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    mount = ensure_kv1(root)
    root.secrets.kv.v1.create_or_update_secret(
        path=secret_path, secret={"db_password": "kv1-password"}, mount_point=mount
    )
    provider = make_provider(mount_point=mount, kv_version=1)

    assert provider.get("db_password") == "kv1-password"
    assert provider.get(f"{secret_path}#db_password") == "kv1-password"


def test_path_hash_key_reads_another_path_of_the_mount(
    root: Any, vault_prefix: str, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"api_key": "mine-1234"})
    root.secrets.kv.v2.create_or_update_secret(
        path=f"{vault_prefix}/shared/apis", secret={"api_key": "shared-5678", "a#b": "hash-key"}
    )
    provider = make_provider()

    assert provider.get("api_key") == "mine-1234"
    assert provider.get(f"{vault_prefix}/shared/apis#api_key") == "shared-5678"
    assert provider.get(f"/{vault_prefix}/shared/apis/#api_key") == "shared-5678"
    # split at the first '#': the rest is the key, '#' and all
    assert provider.get(f"{vault_prefix}/shared/apis#a#b") == "hash-key"
    # the configured path is one path like any other
    assert provider.get(f"{secret_path}#api_key") == "mine-1234"


@pytest.mark.parametrize("name", ["#key", "some/path#", "/#key"])
def test_a_malformed_path_hash_key_name_is_an_error(
    name: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    with pytest.raises(SecretsProviderError, match="path#key") as caught:
        make_provider().get(name)
    assert caught.value.name == name


def test_values_that_are_not_strings_are_served_as_json(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    root.secrets.kv.v2.create_or_update_secret(
        path=secret_path,
        secret={"port": 5432, "hosts": ["a", "b"], "tls": {"on": True}, "nothing": None},
    )
    provider = make_provider()

    assert provider.get("port") == "5432"
    assert json.loads(provider.get("hosts")) == ["a", "b"]
    assert json.loads(provider.get("tls")) == {"on": True}
    with pytest.raises(SecretNotFoundError, match="is null"):
        provider.get("nothing")


def test_a_map_of_a_thousand_elements_in_one_process_reads_the_path_once(
    root: Any,
    secret_path: str,
    make_provider: Callable[..., VaultSecrets],
    request_log: RequestLog,
) -> None:
    # What a map of 1,000 elements does in one process: every element asks for the shared
    # password and for one of 100 keys, by both names, so that most gets miss core's per-name
    # cache and reach _fetch. (100, not 1,000 keys: Vault refuses a JSON body with thousands of
    # strings, and core's redactor recompiles its pattern for every new value it registers.)
    keys = 100
    secret = {f"key_{i}": f"value-{i:04d}" for i in range(keys)}
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={**secret, "db": "pw-db"})
    provider = make_provider()
    request_log.clear()

    for element in range(1000):
        key = f"key_{element % keys}"
        assert provider.get("db") == "pw-db"
        assert provider.get(key) == secret[key]
        assert provider.get(f"{secret_path}#{key}") == secret[key]

    # One read of the path; the token's TTL is looked up once, when the token is first used.
    assert request_log.count("GET", f"/v1/secret/data/{secret_path}") == 1
    assert request_log.paths() == [
        "GET /v1/auth/token/lookup-self",
        f"GET /v1/secret/data/{secret_path}",
    ]


def test_each_path_is_read_once(
    root: Any,
    vault_prefix: str,
    secret_path: str,
    make_provider: Callable[..., VaultSecrets],
    request_log: RequestLog,
) -> None:
    other = f"{vault_prefix}/other"
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"a": "aaaa", "b": "bbbb"})
    root.secrets.kv.v2.create_or_update_secret(path=other, secret={"a": "cccc"})
    provider = make_provider()
    request_log.clear()

    for _ in range(3):
        assert [provider.get("a"), provider.get("b"), provider.get(f"{other}#a")] == [
            "aaaa",
            "bbbb",
            "cccc",
        ]

    assert request_log.count("GET", f"/v1/secret/data/{secret_path}") == 1
    assert request_log.count("GET", f"/v1/secret/data/{other}") == 1


def test_a_pickled_provider_reads_afresh_and_carries_no_token(
    root: Any, vault_server: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"k": "pickled-value"})
    provider = make_provider()
    assert provider.get("k") == "pickled-value"

    data = pickle.dumps(provider)
    assert vault_server.root_token.encode() not in data
    assert b"pickled-value" not in data
    # the copy in "another process" logs in and reads on its own
    assert pickle.loads(data).get("k") == "pickled-value"


def test_reading_warns_about_nothing(
    root: Any, vault_prefix: str, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    # hvac warns (DeprecationWarning) when raise_on_deleted_version is left out: we pass it.
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"k": "no-warnings"})
    provider = make_provider()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert provider.get("k") == "no-warnings"
        with pytest.raises(SecretNotFoundError):
            provider.get(f"{vault_prefix}/nowhere#k")


def test_missing_path_names_the_secret_mount_and_path(
    vault_prefix: str, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    with pytest.raises(SecretNotFoundError) as caught:
        make_provider().get("db_password")

    message = str(caught.value)
    assert caught.value.name == "db_password"
    assert "'db_password'" in message
    assert "mount 'secret'" in message
    assert f"path {secret_path!r} does not exist" in message


def test_missing_key_names_the_secret_mount_and_path_and_no_value(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"present": "the-value"})
    provider = make_provider()
    assert provider.get("present") == "the-value"

    with pytest.raises(SecretNotFoundError) as caught:
        provider.get("absent")

    message = str(caught.value)
    assert f"path {secret_path!r} has no key 'absent'" in message
    assert "mount 'secret'" in message
    assert "the-value" not in message


def test_a_key_added_after_the_first_read_is_found(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"first": "one-1"})
    provider = make_provider()
    assert provider.get("first") == "one-1"
    with pytest.raises(SecretNotFoundError):
        provider.get("second")

    root.secrets.kv.v2.create_or_update_secret(
        path=secret_path, secret={"first": "one-1", "second": "two-2"}
    )

    assert provider.get("second") == "two-2"


def test_a_path_created_after_a_failed_read_is_found(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    provider = make_provider()
    with pytest.raises(SecretNotFoundError):
        provider.get("late")

    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"late": "arrived"})

    assert provider.get("late") == "arrived"


def test_a_deleted_latest_version_is_a_missing_path(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"k": "deleted-value"})
    root.secrets.kv.v2.delete_latest_version_of_secret(path=secret_path)

    with pytest.raises(SecretNotFoundError, match="does not exist"):
        make_provider().get("k")


def test_kv_version_mismatch_reads_as_missing_and_says_the_version(
    root: Any, secret_path: str, make_provider: Callable[..., VaultSecrets]
) -> None:
    mount = ensure_kv1(root)
    root.secrets.kv.v1.create_or_update_secret(
        path=secret_path, secret={"k": "in-kv1"}, mount_point=mount
    )

    with pytest.raises(SecretNotFoundError, match="KV v2 mount 'kv1'"):
        make_provider(mount_point=mount, kv_version=2).get("k")
