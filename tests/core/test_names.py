"""Run id generation and validation."""

import re
import uuid
from datetime import datetime

import pytest

from magnus.exceptions import ConfigurationError, MagnusError
from magnus.run_ids import ADJECTIVES, SURNAMES, generate_run_id, validate_run_id

WORD = re.compile(r"[a-z]+")


def test_generated_id_shape() -> None:
    for _ in range(200):
        run_id = generate_run_id()
        assert re.fullmatch(r"[a-z]+-[a-z]+-\d{4}", run_id), run_id
        adjective, surname, _clock = run_id.split("-")
        assert adjective in ADJECTIVES
        assert surname in SURNAMES


def test_generated_id_uses_the_given_local_time() -> None:
    assert generate_run_id(datetime(2024, 5, 1, 7, 5)).endswith("-0705")
    assert generate_run_id(datetime(2024, 5, 1, 23, 59)).endswith("-2359")


def test_generated_ids_vary() -> None:
    moment = datetime(2024, 1, 1, 12, 0)
    assert len({generate_run_id(moment) for _ in range(50)}) > 40


@pytest.mark.parametrize(("words", "minimum"), [(ADJECTIVES, 150), (SURNAMES, 100)])
def test_word_lists(words: tuple[str, ...], minimum: int) -> None:
    assert len(words) >= minimum
    assert len(set(words)) == len(words), "duplicates"
    bad = [word for word in words if not WORD.fullmatch(word)]
    assert bad == []


def test_generated_id_is_valid() -> None:
    run_id = generate_run_id()
    assert validate_run_id(run_id) == run_id


@pytest.mark.parametrize(
    "run_id",
    [
        "abc-def_1",
        str(uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0)),
        "0a1b2c3d-1111-2222-3333-444455556666",
        "A",
        "x" * 128,
    ],
)
def test_valid_run_ids(run_id: str) -> None:
    assert validate_run_id(run_id) == run_id


@pytest.mark.parametrize(
    "run_id",
    ["a b", "a.b", "a/b", "", "-x", "_x", "x" * 129, "a\n", "ümlaut", "{{workflow.uid}}"],
)
def test_invalid_run_ids(run_id: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        validate_run_id(run_id)
    assert isinstance(info.value, MagnusError)
    message = str(info.value)
    assert repr(run_id) in message
    assert "letters" in message and "128" in message
