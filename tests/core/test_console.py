"""The step lines a run prints: names shown as they are, colour only where it belongs."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from magnus.console import ConsoleReporter
from magnus.runlog.models import FAIL, SUCCESS, StepAttempt, StepLog


class Terminal(io.StringIO):
    """A captured stream that says it is (or is not) a terminal."""

    def __init__(self, tty: bool, encoding: str = "utf-8") -> None:
        super().__init__()
        self._tty = tty
        self._encoding = encoding

    def isatty(self) -> bool:
        return self._tty

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def write(self, text: str) -> int:
        text.encode(self._encoding)  # raises as a real stream of that encoding would
        return super().write(text)


NODE: Any = SimpleNamespace(is_terminal=False)


def step(name: str, status: str, message: str = "", attempts: int = 1) -> StepLog:
    log = StepLog(name=name, internal_name=name, status=status, message=message)
    log.attempts = [
        StepAttempt(
            attempt_number=number,
            start_time="2026-11-26 10:00:00.000000",
            end_time="2026-11-26 10:00:01.500000",
            status=status,
        )
        for number in range(1, attempts + 1)
    ]
    return log


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)


def printed(monkeypatch: pytest.MonkeyPatch, terminal: Terminal, *logs: StepLog) -> str:
    monkeypatch.setattr("sys.stdout", terminal)
    reporter = ConsoleReporter()
    for log in logs:
        reporter.before_step(step_log=log, node=NODE)
        reporter.after_step(step_log=log, node=NODE)
    return terminal.getvalue()


def test_names_and_messages_that_look_like_markup_are_printed_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = printed(
        monkeypatch,
        Terminal(tty=False),
        step("train [bold]v2[/bold]", SUCCESS),
        step("score[x]", FAIL, message="KeyError: ['col']"),
    )

    assert out.splitlines() == [
        "▶ train [bold]v2[/bold]",
        "✔ train [bold]v2[/bold] 1.50s",
        "▶ score[x]",
        "✘ score[x] 1.50s: KeyError: ['col']",
    ]


def test_retried_steps_show_their_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    out = printed(monkeypatch, Terminal(tty=False), step("flaky", SUCCESS, attempts=3))

    assert out.splitlines()[-1] == "✔ flaky 1.50s (attempt 3)"


def test_a_terminal_gets_colour_and_no_color_takes_it_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coloured = printed(monkeypatch, Terminal(tty=True), step("a", SUCCESS))
    assert "\x1b[32m✔\x1b[0m a" in coloured

    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in printed(monkeypatch, Terminal(tty=True), step("a", SUCCESS))


def test_force_color_colours_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")

    assert "\x1b[31m✘\x1b[0m" in printed(monkeypatch, Terminal(tty=False), step("b", FAIL))


def test_a_terminal_without_the_symbols_gets_plain_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    out = printed(monkeypatch, Terminal(tty=False, encoding="ascii"), step("caf\u00e9", SUCCESS))

    assert out.splitlines() == ["> caf?", "+ caf? 1.50s"]
