"""The redactor: masking served secrets in text, data, streams and log records."""

from __future__ import annotations

import io
import logging
import random
import threading
from collections import OrderedDict, namedtuple
from collections.abc import Iterator

import pytest

from magnus.redaction import (
    MASK,
    MIN_SECRET_LENGTH,
    RedactingFilter,
    RedactingStream,
    Redactor,
    get_redactor,
    redactor,
)

SECRET = "s3cr3t-value"
OTHER = "hunter2-password"


@pytest.fixture
def r() -> Redactor:
    """A private redactor, so tests neither see nor leave process-wide state."""
    fresh = Redactor()
    fresh.register(SECRET, "secret")
    return fresh


# -------------------------------------------------------------------------------------------------
# the singleton
# -------------------------------------------------------------------------------------------------


def test_singleton() -> None:
    assert get_redactor() is redactor
    assert isinstance(redactor, Redactor)


# -------------------------------------------------------------------------------------------------
# text
# -------------------------------------------------------------------------------------------------


def test_fast_path_returns_the_same_objects() -> None:
    empty = Redactor()
    text = "nothing " + "to hide"
    data = {"a": [text]}
    assert not empty.active
    assert empty.redact_text(text) is text
    assert empty.redact(data) is data


def test_every_occurrence_is_masked(r: Redactor) -> None:
    assert r.redact_text(f"{SECRET} and {SECRET}{SECRET}.") == f"{MASK} and {MASK}{MASK}."


def test_text_without_secret_is_unchanged(r: Redactor) -> None:
    assert r.redact_text("just s3cr3t, not the value") == "just s3cr3t, not the value"
    assert r.redact_text("") == ""


def test_longest_first() -> None:
    r = Redactor()
    r.register("abcd")
    r.register("abcdefgh")
    r.register("xyzabcd")
    # the longer secret is masked whole, not as "********efgh"
    assert r.redact_text("abcdefgh") == MASK
    assert r.redact_text("xyzabcdefgh") == MASK + "efgh"
    assert r.redact_text("abcd-abcdefg") == f"{MASK}-{MASK}efg"


def test_regex_characters_are_literal() -> None:
    r = Redactor()
    r.register("a.b*c+(d)")
    assert r.redact_text("xa.b*c+(d)x aXbbbc+(d)") == f"x{MASK}x aXbbbc+(d)"


def test_short_values_are_not_redacted_and_warn_once_per_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = Redactor()
    with caplog.at_level(logging.WARNING, logger="magnus.redaction"):
        r.register("on", "flag")
        r.register("on", "flag")
        r.register("abc", "pin")
        r.register("xy")
    assert not r.active
    assert r.redact_text("on abc xy") == "on abc xy"
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert "'flag'" in messages[0] and "'pin'" in messages[1]
    assert all("'on'" not in m and "abc" not in m for m in messages)
    assert str(MIN_SECRET_LENGTH) in messages[0]


def test_empty_value_is_ignored_silently(caplog: pytest.LogCaptureFixture) -> None:
    r = Redactor()
    with caplog.at_level(logging.WARNING):
        r.register("", "blank")
    assert not r.active and not caplog.records


def test_minimum_length_is_redacted() -> None:
    r = Redactor()
    r.register("x" * MIN_SECRET_LENGTH)
    assert r.redact_text("a xxxx b") == f"a {MASK} b"


def test_json_escaped_forms_are_masked() -> None:
    r = Redactor()
    value = 'quo"te\\back\nline-é'
    r.register(value)
    import json

    assert MASK in r.redact_text(json.dumps({"p": value}))
    assert value[:3] not in r.redact_text(json.dumps({"p": value}))
    assert r.redact_text(json.dumps({"p": value}, ensure_ascii=False)) == f'{{"p": "{MASK}"}}'
    assert r.redact_text(value) == MASK


def test_contains_and_clear(r: Redactor) -> None:
    assert SECRET in r
    assert r.max_length == len(SECRET)
    r.clear()
    assert SECRET not in r
    assert not r.active and r.max_length == 0
    assert r.redact_text(SECRET) == SECRET


def test_registering_again_is_harmless(r: Redactor) -> None:
    r.register(SECRET)
    assert r.redact_text(SECRET) == MASK


# -------------------------------------------------------------------------------------------------
# data
# -------------------------------------------------------------------------------------------------


def test_nested_structures(r: Redactor) -> None:
    data = {
        "plain": f"token {SECRET}",
        "number": 42,
        "none": None,
        "flag": True,
        "list": [SECRET, 1.5, {"deep": [f"x{SECRET}x"]}],
        "tuple": (SECRET, "keep"),
        SECRET: "secret as a key",
    }
    assert r.redact(data) == {
        "plain": f"token {MASK}",
        "number": 42,
        "none": None,
        "flag": True,
        "list": [MASK, 1.5, {"deep": [f"x{MASK}x"]}],
        "tuple": (MASK, "keep"),
        MASK: "secret as a key",
    }
    assert data["plain"] == f"token {SECRET}", "the input is not modified"


def test_container_types_are_kept(r: Redactor) -> None:
    Point = namedtuple("Point", "x y")
    assert r.redact(Point(SECRET, 1)) == Point(MASK, 1)
    assert isinstance(r.redact(Point(SECRET, 1)), Point)
    assert r.redact({SECRET, "a"}) == {MASK, "a"}
    assert r.redact(frozenset({SECRET})) == frozenset({MASK})
    assert r.redact(SECRET) == MASK
    assert r.redact(OrderedDict(a=SECRET)) == {"a": MASK}


def test_other_objects_pass_through(r: Redactor) -> None:
    class Opaque:
        def __str__(self) -> str:
            return SECRET

    obj = Opaque()
    assert r.redact(obj) is obj
    assert r.redact(SECRET.encode()) == SECRET.encode()


# -------------------------------------------------------------------------------------------------
# streams
# -------------------------------------------------------------------------------------------------


def stream_of(r: Redactor) -> tuple[RedactingStream, io.StringIO]:
    sink = io.StringIO()
    return RedactingStream(sink, redactor=r), sink


def test_stream_masks_a_whole_write(r: Redactor) -> None:
    stream, sink = stream_of(r)
    assert stream.write(f"key={SECRET}\n") == len(f"key={SECRET}\n")
    assert sink.getvalue() == f"key={MASK}\n"


def test_stream_passes_ordinary_text_at_once(r: Redactor) -> None:
    stream, sink = stream_of(r)
    stream.write("progress: 10%")
    assert sink.getvalue() == "progress: 10%"


def test_stream_fast_path_without_secrets() -> None:
    stream, sink = stream_of(Redactor())
    stream.write("s3cr")
    assert sink.getvalue() == "s3cr"


@pytest.mark.parametrize("cut", range(1, len(SECRET)))
def test_stream_secret_split_across_two_writes(r: Redactor, cut: int) -> None:
    stream, sink = stream_of(r)
    stream.write("before " + SECRET[:cut])
    assert SECRET[:cut] not in sink.getvalue()
    stream.write(SECRET[cut:] + " after\n")
    assert sink.getvalue() == f"before {MASK} after\n"


def test_stream_split_by_print(r: Redactor) -> None:
    stream, sink = stream_of(r)
    print(SECRET[:5], end="", file=stream)
    print(SECRET[5:], file=stream)
    assert sink.getvalue() == f"{MASK}\n"


def test_stream_secret_one_character_at_a_time(r: Redactor) -> None:
    stream, sink = stream_of(r)
    for char in f"a {SECRET} b {SECRET}":
        stream.write(char)
    stream.close()
    assert sink.getvalue() == f"a {MASK} b {MASK}"


def test_stream_releases_a_prefix_that_was_not_a_secret(r: Redactor) -> None:
    stream, sink = stream_of(r)
    stream.write("s3cr")
    assert sink.getvalue() == ""
    stream.write("ew loose\n")
    assert sink.getvalue() == "s3crew loose\n"


def test_stream_flush_keeps_held_text_close_releases_it(r: Redactor) -> None:
    stream, sink = stream_of(r)
    stream.write("tail s3c")
    stream.flush()
    assert sink.getvalue() == "tail "
    stream.close()
    assert sink.getvalue() == "tail s3c"
    assert stream.closed and not sink.closed
    with pytest.raises(ValueError):
        stream.write("more")


def test_stream_owning_closes_the_wrapped_stream(r: Redactor) -> None:
    sink = io.StringIO()
    RedactingStream(sink, redactor=r, owns_stream=True).close()
    assert sink.closed


def test_stream_shorter_secret_inside_a_longer_one_split() -> None:
    r = Redactor()
    r.register("abcd")
    r.register("abcdefgh")
    stream, sink = stream_of(r)
    stream.write("[abcdef")
    stream.write("gh]")
    stream.write("[abcd]")
    stream.close()
    assert sink.getvalue() == f"[{MASK}][{MASK}]"


def test_stream_complete_secret_before_a_possible_prefix_is_final() -> None:
    r = Redactor()
    r.register("s3cr3t-value")
    r.register("value-2-key")
    stream, sink = stream_of(r)
    stream.write("x s3cr3t-value")
    # "value" could start the second secret, but it belongs to a complete first one
    assert sink.getvalue() == f"x {MASK}"
    stream.write("-2-key\n")
    assert sink.getvalue() == f"x {MASK}-2-key\n"


def test_stream_multiline_secret() -> None:
    r = Redactor()
    pem = "-----BEGIN KEY-----\nAAAA\n-----END KEY-----"
    r.register(pem)
    stream, sink = stream_of(r)
    for line in pem.splitlines(keepends=True):
        stream.write(line)
    stream.write("\ndone\n")
    assert sink.getvalue() == f"{MASK}\ndone\n"


def test_stream_random_splits_match_whole_text_redaction() -> None:
    r = Redactor()
    for value in ("abcd", "abcdefgh", "cdef", "ghij-klm", "zzzz"):
        r.register(value)
    rng = random.Random(7)
    alphabet = "abcdefghijklmz- \n"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        stream, sink = stream_of(r)
        position = 0
        while position < len(text):
            size = rng.randint(1, 6)
            stream.write(text[position : position + size])
            position += size
        stream.close()
        assert sink.getvalue() == r.redact_text(text), repr(text)


def test_stream_sees_secrets_registered_later() -> None:
    r = Redactor()
    stream, sink = stream_of(r)
    stream.write("early " + SECRET + "\n")
    r.register(SECRET)
    stream.write("late " + SECRET + "\n")
    assert sink.getvalue() == f"early {SECRET}\nlate {MASK}\n"


def test_stream_describes_the_wrapped_stream(r: Redactor) -> None:
    stream, sink = stream_of(r)
    assert stream.wrapped is sink
    assert stream.writable() and not stream.readable()
    assert stream.isatty() is False
    assert stream.encoding == "utf-8"
    assert not hasattr(stream, "buffer")
    stream.writelines([SECRET, "\n"])
    assert sink.getvalue() == f"{MASK}\n"


def test_stream_is_thread_safe(r: Redactor) -> None:
    stream, sink = stream_of(r)

    def writer() -> None:
        for _ in range(200):
            stream.write(f"{SECRET}\n")

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stream.close()
    assert sink.getvalue() == f"{MASK}\n" * 800


# -------------------------------------------------------------------------------------------------
# logging
# -------------------------------------------------------------------------------------------------


@pytest.fixture
def logged(r: Redactor) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.addFilter(RedactingFilter(r))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("magnus.tests.redaction")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log, sink
    log.removeHandler(handler)
    log.propagate = True


def test_filter_masks_message_and_args(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, sink = logged
    log.info("token is %s", SECRET)
    log.info(f"inline {SECRET}")
    log.info("mapping %(value)s", {"value": SECRET})
    assert sink.getvalue() == f"INFO token is {MASK}\nINFO inline {MASK}\nINFO mapping {MASK}\n"


def test_filter_masks_objects_whose_str_holds_a_secret(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    log, sink = logged

    class Config:
        def __str__(self) -> str:
            return f"Config(password={SECRET})"

    log.warning("loaded %s", Config())
    assert sink.getvalue() == f"WARNING loaded Config(password={MASK})\n"


def test_filter_masks_exceptions(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, sink = logged
    try:
        raise ValueError(f"bad secret {SECRET}")
    except ValueError:
        log.exception("failed")
    output = sink.getvalue()
    assert "ValueError: bad secret " + MASK in output
    assert SECRET not in output


def test_filter_masks_stack_info(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, sink = logged
    # the stack shows this source line, secret literal included
    log.info("here", stack_info=True, extra={"unused": "s3cr3t-value"})
    output = sink.getvalue()
    assert "Stack (most recent call last)" in output
    assert MASK in output and SECRET not in output


def test_filter_leaves_clean_records_alone() -> None:
    r = Redactor()
    r.register(SECRET)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %d", (3,), None)
    assert RedactingFilter(r).filter(record) is True
    assert record.msg == "value %d" and record.args == (3,)


def test_filter_fast_path_and_bad_format() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", ("one",), None)
    assert RedactingFilter(Redactor()).filter(record) is True
    r = Redactor()
    r.register(SECRET)
    assert RedactingFilter(r).filter(record) is True
    assert record.args == ("one",)


def test_filter_defaults_to_the_process_redactor() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "x", None, None)
    assert RedactingFilter()._redactor is get_redactor()
    assert RedactingStream(io.StringIO())._redactor is get_redactor()
    assert RedactingFilter().filter(record)


def test_serving_many_secrets_compiles_the_pattern_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import re

    from magnus import redaction

    compiled: list[str] = []
    real = re.compile
    monkeypatch.setattr(redaction.re, "compile", lambda p, *a: compiled.append(p) or real(p, *a))
    redactor = redaction.Redactor()
    for i in range(200):
        redactor.register(f"secret-value-{i:04d}")
    assert compiled == []
    assert (
        redactor.redact_text("a secret-value-0199 b secret-value-0000") == "a ******** b ********"
    )
    assert redactor.redact_text("again secret-value-0007") == "again ********"
    assert len(compiled) == 1
