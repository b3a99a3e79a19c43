"""The contract every secrets provider passes.

Subclass :class:`SecretsContract` and provide the ``secrets_provider`` fixture:

::

    import pytest
    from magnus.testing import SecretsContract

    class TestMyProvider(SecretsContract):
        @pytest.fixture
        def secrets_provider(self, my_server):
            my_server.put("magnus_test_secret", "s3cr3t-value")
            return MyProvider(url=my_server.url)

The fixture returns a fresh provider that holds a secret named ``magnus_test_secret`` whose value
is ``s3cr3t-value`` (:data:`SECRET_NAME`, :data:`SECRET_VALUE`) and nothing named
``missing_secret`` (:data:`MISSING_NAME`). A fresh provider per test matters: the caching test
needs a provider that has not served the secret yet.

Serving the secret registers ``s3cr3t-value`` with the process-wide redactor, as it must; the
suite does not clear the redactor afterwards, since other code in the process may rely on it.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from magnus.exceptions import SecretNotFoundError
from magnus.redaction import MASK, get_redactor
from magnus.secrets import BaseSecrets

SECRET_NAME = "magnus_test_secret"
SECRET_VALUE = "s3cr3t-value"
MISSING_NAME = "missing_secret"


class SecretsContract:
    """Tests every secrets provider must pass. Subclasses provide the ``secrets_provider`` fixture.

    The suite defines no fixture of its own (it uses ``secrets_provider`` and pytest's
    ``monkeypatch``), so it cannot shadow the fixtures of the test module it is used in.
    """

    def test_is_a_secrets_service(self, secrets_provider: BaseSecrets) -> None:
        assert isinstance(secrets_provider, BaseSecrets)
        assert secrets_provider.service_type == "secrets"
        assert secrets_provider.service_name
        assert secrets_provider.description

    def test_get_returns_the_value(self, secrets_provider: BaseSecrets) -> None:
        assert secrets_provider.get(SECRET_NAME) == SECRET_VALUE

    def test_get_twice_returns_the_same_value(self, secrets_provider: BaseSecrets) -> None:
        assert secrets_provider.get(SECRET_NAME) == secrets_provider.get(SECRET_NAME)

    def test_missing_secret_raises_naming_it_and_no_value(
        self, secrets_provider: BaseSecrets
    ) -> None:
        secrets_provider.get(SECRET_NAME)  # a value the provider knows, which must not leak

        with pytest.raises(SecretNotFoundError) as caught:
            secrets_provider.get(MISSING_NAME)

        error = caught.value
        assert error.name == MISSING_NAME
        assert error.provider
        assert MISSING_NAME in str(error)
        assert SECRET_VALUE not in str(error)
        assert SECRET_VALUE not in repr(error.args)

    def test_missing_secret_is_not_remembered_as_present(
        self, secrets_provider: BaseSecrets
    ) -> None:
        for _ in range(2):
            with pytest.raises(SecretNotFoundError):
                secrets_provider.get(MISSING_NAME)

    def test_served_value_is_registered_for_redaction(self, secrets_provider: BaseSecrets) -> None:
        secrets_provider.get(SECRET_NAME)

        redactor = get_redactor()
        assert SECRET_VALUE in redactor
        assert redactor.redact_text(f"token={SECRET_VALUE};") == f"token={MASK};"

    def test_record_and_repr_hold_no_secret(self, secrets_provider: BaseSecrets) -> None:
        secrets_provider.get(SECRET_NAME)

        assert SECRET_VALUE not in json.dumps(secrets_provider.record())
        assert SECRET_VALUE not in repr(secrets_provider)
        assert SECRET_VALUE not in str(secrets_provider)

    def test_pickled_provider_carries_no_served_value(self, secrets_provider: BaseSecrets) -> None:
        # Providers travel to other processes by pickle; the per-process cache must not.
        secrets_provider.get(SECRET_NAME)

        assert SECRET_VALUE.encode() not in pickle.dumps(secrets_provider)

    def test_second_get_does_not_read_the_source_again(
        self, secrets_provider: BaseSecrets, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        provider_class = type(secrets_provider)
        if provider_class.get is not BaseSecrets.get:
            pytest.skip("the provider overrides get(), so its caching is its own")
        fetched: list[str] = []
        original = provider_class._fetch

        def counting_fetch(self: Any, name: str) -> str:
            fetched.append(name)
            return original(self, name)

        monkeypatch.setattr(provider_class, "_fetch", counting_fetch)

        assert secrets_provider.get(SECRET_NAME) == SECRET_VALUE
        assert secrets_provider.get(SECRET_NAME) == SECRET_VALUE
        assert fetched == [SECRET_NAME]
