"""The built-in secrets providers: the contract suite for ``dotenv`` and ``env-secrets-manager``,
what each promises beyond it, and ``do-nothing``, which cannot pass the contract by design."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from magnus.exceptions import ConfigurationError, SecretNotFoundError
from magnus.plugins import get_plugins
from magnus.redaction import MASK, get_redactor
from magnus.secrets import BaseSecrets, DoNothingSecrets, DotenvSecrets, EnvSecretsManager
from magnus.testing.secrets import SecretsContract


@pytest.fixture(autouse=True)
def fresh_redactor() -> Iterator[None]:
    """The process-wide redactor, emptied after each test so values do not pile up."""
    yield
    get_redactor().clear()


def dotenv(tmp_path: Path, content: str) -> DotenvSecrets:
    path = tmp_path / "secrets.env"
    path.write_text(content, encoding="utf-8")
    return DotenvSecrets(location=str(path))


# -------------------------------------------------------------------------------------------------
# the contract
# -------------------------------------------------------------------------------------------------


class TestDotenvContract(SecretsContract):
    @pytest.fixture
    def secrets_provider(self, tmp_path: Path) -> BaseSecrets:
        return dotenv(tmp_path, "other=irrelevant-value\nmagnus_test_secret=s3cr3t-value\n")


class TestEnvSecretsManagerContract(SecretsContract):
    @pytest.fixture
    def secrets_provider(self, monkeypatch: pytest.MonkeyPatch) -> BaseSecrets:
        monkeypatch.setenv("APP_magnus_test_secret_V1", "s3cr3t-value")
        monkeypatch.delenv("APP_missing_secret_V1", raising=False)
        return EnvSecretsManager(prefix="APP_", suffix="_V1")


class TestEnvSecretsManagerWithoutAffixesContract(SecretsContract):
    @pytest.fixture
    def secrets_provider(self, monkeypatch: pytest.MonkeyPatch) -> BaseSecrets:
        monkeypatch.setenv("magnus_test_secret", "s3cr3t-value")
        monkeypatch.delenv("missing_secret", raising=False)
        return EnvSecretsManager()


class OwnGetSecrets(BaseSecrets):
    """A provider written the other way: it overrides ``get`` instead of implementing ``_fetch``."""

    service_name: ClassVar[str] = "test-own-get"

    def get(self, name: str) -> str:
        if name == "magnus_test_secret":
            return "s3cr3t-value"
        raise self.not_found(name)


class TestOwnGetProviderContract(SecretsContract):
    """Overriding ``get`` still registers what is served: redaction does not depend on _fetch."""

    @pytest.fixture
    def secrets_provider(self) -> BaseSecrets:
        return OwnGetSecrets()


# -------------------------------------------------------------------------------------------------
# registration and configuration
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("do-nothing", DoNothingSecrets),
        ("dotenv", DotenvSecrets),
        ("env-secrets-manager", EnvSecretsManager),
    ],
)
def test_built_in_providers_are_registered(name: str, cls: type) -> None:
    assert get_plugins().service_class("secrets", name) is cls


def test_dotenv_defaults_to_dot_env() -> None:
    assert DotenvSecrets().location == ".env"
    assert DotenvSecrets().record() == {
        "service_name": "dotenv",
        "service_type": "secrets",
        "location": ".env",
    }


def test_env_secrets_manager_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigurationError, match=r"env-secrets-manager.*unknown key 'prefx'"):
        EnvSecretsManager.from_config({"prefx": "APP_"})


# -------------------------------------------------------------------------------------------------
# dotenv parsing
# -------------------------------------------------------------------------------------------------


DOTENV = r"""
# a comment line, then a blank one

PLAIN=plain-value
export EXPORTED=exported-value
DOUBLE="double quoted value"
SINGLE='single quoted value'
EQUALS="a=b=c"
UNQUOTED_EQUALS=a=b
HASH_IN_QUOTES="before # after"
HASH_IN_SINGLE='before # after'
TRAILING=value-with-comment # this is a comment
SPACED  =   spaced-value
EMPTY=
BARE
ESCAPES="line one\nline two \"quoted\""
LITERAL_SINGLE='no\nescape'
DOLLAR="pa${HOME}ss"
MULTILINE="first
second"
UNICODE="päss-wörd"
"""


@pytest.fixture
def parsed(tmp_path: Path) -> DotenvSecrets:
    return dotenv(tmp_path, DOTENV)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PLAIN", "plain-value"),
        ("EXPORTED", "exported-value"),
        ("DOUBLE", "double quoted value"),
        ("SINGLE", "single quoted value"),
        ("EQUALS", "a=b=c"),
        ("UNQUOTED_EQUALS", "a=b"),
        ("HASH_IN_QUOTES", "before # after"),
        ("HASH_IN_SINGLE", "before # after"),
        ("TRAILING", "value-with-comment"),
        ("SPACED", "spaced-value"),
        ("EMPTY", ""),
        ("ESCAPES", 'line one\nline two "quoted"'),
        ("LITERAL_SINGLE", "no\\nescape"),
        ("DOLLAR", "pa${HOME}ss"),
        ("MULTILINE", "first\nsecond"),
        ("UNICODE", "päss-wörd"),
    ],
)
def test_dotenv_follows_dotenv_conventions(parsed: DotenvSecrets, name: str, value: str) -> None:
    assert parsed.get(name) == value


def test_dotenv_export_is_not_part_of_the_name(parsed: DotenvSecrets) -> None:
    with pytest.raises(SecretNotFoundError):
        parsed.get("export EXPORTED")


@pytest.mark.parametrize("name", ["a comment line", "#", "", "plain", "NOPE"])
def test_dotenv_comments_and_other_names_are_not_secrets(parsed: DotenvSecrets, name: str) -> None:
    with pytest.raises(SecretNotFoundError):
        parsed.get(name)


def test_dotenv_bare_key_counts_as_absent(parsed: DotenvSecrets) -> None:
    with pytest.raises(SecretNotFoundError, match=r"'BARE'.*declared there without a value"):
        parsed.get("BARE")


def test_dotenv_missing_secret_names_the_file(tmp_path: Path) -> None:
    provider = dotenv(tmp_path, "PRESENT=present-value\n")
    with pytest.raises(SecretNotFoundError) as caught:
        provider.get("ABSENT")
    message = str(caught.value)
    assert "'ABSENT'" in message
    assert "dotenv file" in message and "secrets.env" in message
    assert "present-value" not in message


def test_dotenv_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    provider = DotenvSecrets(location=str(tmp_path / "nowhere.env"))
    with pytest.raises(ConfigurationError, match=r"nowhere\.env.*does not exist"):
        provider.get("ANY")


def test_dotenv_missing_file_is_not_remembered(tmp_path: Path) -> None:
    path = tmp_path / "late.env"
    provider = DotenvSecrets(location=str(path))
    with pytest.raises(ConfigurationError):
        provider.get("KEY")

    path.write_text("KEY=arrived-later\n")

    assert provider.get("KEY") == "arrived-later"


def test_dotenv_relative_location_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("KEY=from-working-dir\n")
    monkeypatch.chdir(tmp_path)

    assert DotenvSecrets().get("KEY") == "from-working-dir"


def test_dotenv_file_is_read_once_per_process(tmp_path: Path) -> None:
    provider = dotenv(tmp_path, "FIRST=first-value\nSECOND=second-value\n")
    assert provider.get("FIRST") == "first-value"

    # Later changes to the file are not seen: the file is read lazily, once.
    Path(provider.location).write_text("FIRST=changed\nSECOND=changed\n")

    assert provider.get("FIRST") == "first-value"
    assert provider.get("SECOND") == "second-value"


def test_dotenv_is_not_read_before_the_first_get(tmp_path: Path) -> None:
    provider = DotenvSecrets(location=str(tmp_path / "not-yet.env"))
    # building and recording a provider never touches the file
    assert provider.record()["location"].endswith("not-yet.env")


def test_dotenv_unparsable_line_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = dotenv(tmp_path, "GOOD=good-value\nthis is not a statement\nALSO=also-good\n")
    with caplog.at_level(logging.WARNING):
        assert provider.get("GOOD") == "good-value"
        assert provider.get("ALSO") == "also-good"
    # python-dotenv says which line it skipped, and the line's text is not repeated
    assert any(record.name.startswith("dotenv") for record in caplog.records)
    assert "not a statement" not in caplog.text


def test_dotenv_loaded_values_stay_out_of_records_and_pickles(parsed: DotenvSecrets) -> None:
    parsed.get("PLAIN")
    # the whole file is loaded, not only the served value
    for text in (json.dumps(parsed.record()), repr(parsed)):
        assert "exported-value" not in text
        assert "plain-value" not in text
    blob = pickle.dumps(parsed)
    assert b"exported-value" not in blob and b"plain-value" not in blob
    assert pickle.loads(blob).get("PLAIN") == "plain-value"


# -------------------------------------------------------------------------------------------------
# env-secrets-manager
# -------------------------------------------------------------------------------------------------


def test_env_prefix_and_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRE_token", "prefixed-token")
    monkeypatch.setenv("token_POST", "suffixed-token")
    monkeypatch.setenv("PRE_token_POST", "both-token")
    monkeypatch.setenv("token", "bare-token")

    assert EnvSecretsManager().get("token") == "bare-token"
    assert EnvSecretsManager(prefix="PRE_").get("token") == "prefixed-token"
    assert EnvSecretsManager(suffix="_POST").get("token") == "suffixed-token"
    assert EnvSecretsManager(prefix="PRE_", suffix="_POST").get("token") == "both-token"


def test_env_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRE_absent_POST", raising=False)
    with pytest.raises(SecretNotFoundError) as caught:
        EnvSecretsManager(prefix="PRE_", suffix="_POST").get("absent")
    assert caught.value.name == "absent"
    assert "env-secrets-manager" in str(caught.value)
    assert "'PRE_absent_POST'" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_env_empty_variable_is_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPTY_SECRET", "")
    assert EnvSecretsManager().get("EMPTY_SECRET") == ""


def test_env_value_is_cached_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATING", "first-value")
    provider = EnvSecretsManager()
    assert provider.get("ROTATING") == "first-value"
    monkeypatch.setenv("ROTATING", "second-value")

    assert provider.get("ROTATING") == "first-value"
    # another provider (as in another process) reads the source afresh
    assert EnvSecretsManager().get("ROTATING") == "second-value"


# -------------------------------------------------------------------------------------------------
# do-nothing: returns "" for everything, so it cannot pass "missing raises"
# -------------------------------------------------------------------------------------------------


def test_do_nothing_returns_empty_for_any_name() -> None:
    provider = DoNothingSecrets()
    assert provider.get("anything") == ""
    assert provider.get("missing_secret") == ""


def test_do_nothing_registers_nothing() -> None:
    DoNothingSecrets().get("anything")
    assert not get_redactor().active


def test_do_nothing_record() -> None:
    assert DoNothingSecrets().record() == {"service_name": "do-nothing", "service_type": "secrets"}


# -------------------------------------------------------------------------------------------------
# the base class: template method, wrapping, errors
# -------------------------------------------------------------------------------------------------


def test_served_value_is_masked_everywhere_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "sk-live-123456")
    EnvSecretsManager().get("API_KEY")

    assert get_redactor().redact({"message": "used sk-live-123456"}) == {"message": f"used {MASK}"}


def test_cached_value_is_registered_again_after_the_redactor_forgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_KEY", "sk-live-123456")
    provider = EnvSecretsManager()
    provider.get("API_KEY")
    get_redactor().clear()

    provider.get("API_KEY")

    assert "sk-live-123456" in get_redactor()


def test_short_secret_is_served_with_a_warning_naming_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PIN", "123")
    with caplog.at_level(logging.WARNING, logger="magnus.redaction"):
        assert EnvSecretsManager().get("PIN") == "123"
    assert "'PIN'" in caplog.text
    assert "123" not in caplog.text.replace("'PIN'", "")


def test_provider_without_fetch_or_get_says_so() -> None:
    class Nothing(BaseSecrets):
        service_name: ClassVar[str] = "test-nothing"

    with pytest.raises(NotImplementedError, match="Nothing implements neither"):
        Nothing().get("x")


def test_own_get_is_wrapped_once_through_inheritance() -> None:
    class Child(OwnGetSecrets):
        service_name: ClassVar[str] = "test-child"

    assert Child.get is OwnGetSecrets.get
    assert Child().get("magnus_test_secret") == "s3cr3t-value"
    assert "s3cr3t-value" in get_redactor()


def test_not_found_helper_builds_the_message() -> None:
    error = DotenvSecrets(location="x.env").not_found("KEY", "some detail")
    assert isinstance(error, SecretNotFoundError)
    assert str(error) == (
        "No secret named 'KEY' in the dotenv file 'x.env' (some detail) secrets provider"
    )
