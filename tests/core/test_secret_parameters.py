"""Secrets in parameters are recorded as references and resolved again; task output capture."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from magnus.exceptions import ParameterError
from magnus.redaction import MASK, RedactingStream, redact_exception, redactor
from magnus.secret_parameters import REFERENCE_KEY, as_references, resolve_references
from magnus.secrets import EnvSecretsManager
from magnus.task_output import task_output

TOKEN = "tok-0123-abcd"
OTHER = "pw-9876-zyxw"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[EnvSecretsManager]:
    """A real provider that has served TOKEN and OTHER (registered with the process redactor)."""
    monkeypatch.setenv("S_TOKEN", TOKEN)
    monkeypatch.setenv("S_OTHER", OTHER)
    provider = EnvSecretsManager(prefix="S_")
    provider.get("TOKEN")
    provider.get("OTHER")
    yield provider
    redactor.clear()


# ------------------------------------------------------------------------- references


def test_a_secret_value_becomes_a_reference_to_its_name(served: EnvSecretsManager) -> None:
    recorded = as_references({"token": TOKEN, "plain": "hello", "n": 3})
    assert recorded == {"token": {REFERENCE_KEY: "TOKEN"}, "plain": "hello", "n": 3}


def test_a_text_holding_secrets_keeps_its_text_around_the_names(
    served: EnvSecretsManager,
) -> None:
    recorded = as_references({"header": f"Bearer {TOKEN} and {OTHER}!"})
    assert recorded == {"header": {REFERENCE_KEY: ["Bearer ", "TOKEN", " and ", "OTHER", "!"]}}


def test_references_sit_anywhere_in_nested_values(served: EnvSecretsManager) -> None:
    recorded = as_references({"deep": {"list": [1, TOKEN, {"x": f"a{OTHER}"}]}})
    assert recorded == {
        "deep": {"list": [1, {REFERENCE_KEY: "TOKEN"}, {"x": {REFERENCE_KEY: ["a", "OTHER", ""]}}]}
    }


def test_references_resolve_to_exactly_what_was_returned(served: EnvSecretsManager) -> None:
    produced = {"token": TOKEN, "header": f"Bearer {TOKEN}", "deep": [{"k": OTHER}], "n": None}
    assert resolve_references(as_references(produced), served) == produced


def test_parameters_without_references_are_returned_as_they_are(
    served: EnvSecretsManager,
) -> None:
    parameters = {"a": [1, {"b": "c"}]}
    assert resolve_references(parameters, served) is parameters


def test_a_secret_in_a_dict_key_is_refused_naming_the_parameter(
    served: EnvSecretsManager,
) -> None:
    with pytest.raises(ParameterError) as raised:
        as_references({"by_token": {TOKEN: 1}})
    message = str(raised.value)
    assert "'by_token'" in message and "key" in message
    assert TOKEN not in message


def test_an_escaped_secret_is_refused_and_an_attempt_record_masks_it(
    served: EnvSecretsManager,
) -> None:
    # The JSON-escaped form is masked (redactor) but cannot be named by a reference.
    redactor.register('quo"te-secret', "QUOTED")
    text = '{"v": "quo\\"te-secret"}'
    with pytest.raises(ParameterError, match="'raw'"):
        as_references({"raw": text})
    assert as_references({"raw": text}, strict=False) == {"raw": f'{{"v": "{MASK}"}}'}


def test_a_reference_the_provider_cannot_resolve_names_the_parameter(
    served: EnvSecretsManager,
) -> None:
    with pytest.raises(ParameterError) as raised:
        resolve_references({"gone": {REFERENCE_KEY: "MISSING"}}, served)
    assert "'gone'" in str(raised.value) and "'MISSING'" in str(raised.value)


def test_a_malformed_reference_names_the_parameter(served: EnvSecretsManager) -> None:
    with pytest.raises(ParameterError, match="'odd'"):
        resolve_references({"odd": {REFERENCE_KEY: ["text", "TOKEN"]}}, served)


def test_nothing_served_nothing_changes() -> None:
    parameters = {"token": TOKEN}
    assert as_references(parameters) is parameters


def test_exceptions_are_masked_in_place_with_their_causes(served: EnvSecretsManager) -> None:
    try:
        try:
            raise KeyError(TOKEN)
        except KeyError as inner:
            raise ValueError(f"wrapped {OTHER}", 3) from inner
    except ValueError as raised:
        error = raised
        masked = redact_exception(raised)
    assert masked is error
    assert error.args == (f"wrapped {MASK}", 3)
    assert isinstance(error.__cause__, KeyError) and error.__cause__.args == (MASK,)


# ------------------------------------------------------------------------- task output


def _captured(body: str) -> tuple[str, str, str]:
    """Run ``body`` (python) with the task output capture; (log, console out, console err).

    As the leaf wrapper does, the log and the consoles are masking streams.
    """
    texts = [io.StringIO(), io.StringIO(), io.StringIO()]
    log, out, err = (RedactingStream(text) for text in texts)
    with (
        task_output(log, out, err) as (stdout, stderr),  # type: ignore[arg-type]
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        exec(body, {"os": os, "subprocess": subprocess, "sys": sys})
    for stream in (log, out, err):
        stream.release()
    return texts[0].getvalue(), texts[1].getvalue(), texts[2].getvalue()


def test_child_processes_are_captured_in_order() -> None:
    log, out, err = _captured(
        "print('one')\nos.system('echo two')\nprint('three')\n"
        "subprocess.run(['sh', '-c', 'echo four >&2'], check=True)\nprint('five')\n"
    )
    assert log == "one\ntwo\nthree\nfour\nfive\n"
    assert out == "one\ntwo\nthree\nfive\n"
    assert err == "four\n"


def test_binary_writes_and_file_descriptors_work() -> None:
    log, out, _ = _captured(
        "sys.stdout.buffer.write(b'bytes\\n')\nos.write(sys.stdout.fileno(), b'fd\\n')\n"
        "print('text')\n"
    )
    assert log == out == "bytes\nfd\ntext\n"


def test_what_children_print_is_masked(served: EnvSecretsManager) -> None:
    log, out, err = _captured(f"os.system('echo child {TOKEN}; echo err {OTHER} >&2')\n")
    assert TOKEN not in log + out + err and OTHER not in log + out + err
    assert f"child {MASK}" in log and f"child {MASK}" in out and f"err {MASK}" in err


def test_descriptors_are_restored_afterwards() -> None:
    before = os.fstat(1), os.fstat(2)
    _captured("print('x')\n")
    after = os.fstat(1), os.fstat(2)
    assert [(s.st_dev, s.st_ino) for s in before] == [(s.st_dev, s.st_ino) for s in after]


def test_a_capture_inside_a_capture_writes_through_the_outer_one() -> None:
    log, out, _ = _captured(
        "import io\nfrom magnus.task_output import task_output\n"
        "inner = io.StringIO()\n"
        "with task_output(inner, sys.stdout, sys.stderr) as (o, e):\n"
        "    o.write('inner\\n')\n"
        "    o.buffer.write(b'inner bytes\\n')\n"
        "assert inner.getvalue() == 'inner\\ninner bytes\\n', inner.getvalue()\n"
    )
    assert log == out == "inner\ninner bytes\n"
