"""The channel a notebook's kernel sends interaction calls through (no kernel needed here)."""

from __future__ import annotations

import os
import tempfile
import threading
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest

from magnus import interaction
from magnus.exceptions import NoRunContextError, SecretNotFoundError
from magnus.tasks import kernel_channel

caller: ContextVar[str] = ContextVar("caller", default="nobody")


def answer(op: str, args: dict[str, Any]) -> Any:
    if op == "who":
        return {"caller": caller.get(), "thread": threading.current_thread().name, **args}
    raise SecretNotFoundError(args["name"], "dotenv")


def test_calls_are_answered_in_the_serving_context_and_errors_keep_their_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caller.set("the step")
    with kernel_channel.serving(answer) as environment:
        path = environment[kernel_channel.CHANNEL_ENV]
        assert oct(os.stat(Path(path).parent).st_mode & 0o777) == "0o700"
        monkeypatch.setenv(kernel_channel.CHANNEL_ENV, path)
        caller.set("the kernel")  # what the serving step saw when it started is what counts
        reply = kernel_channel.call("who", {"x": [1, 2.5, None]})
        assert reply["caller"] == "the step" and reply["x"] == [1, 2.5, None]
        assert reply["thread"] != threading.current_thread().name
        with pytest.raises(SecretNotFoundError) as raised:
            kernel_channel.call("secret", {"name": "TOKEN"})
        assert str(raised.value) == "No secret named 'TOKEN' in the dotenv secrets provider"

    # Nothing is left listening, and a late call says so.
    assert not Path(path).parent.exists()
    with pytest.raises(NoRunContextError, match="does not answer"):
        kernel_channel.call("who")


def test_two_steps_serve_apart_and_the_api_finds_no_run_without_a_channel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Under a temporary directory too long for a socket's path, /tmp holds the socket.
    long_tmp = tmp_path / ("t" * 100)
    long_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    caller.set("another step")
    with kernel_channel.serving(answer) as one, kernel_channel.serving(answer) as two:
        first, second = one[kernel_channel.CHANNEL_ENV], two[kernel_channel.CHANNEL_ENV]
        assert first != second and first.startswith("/tmp/magnus-kernel-")
        monkeypatch.setenv(kernel_channel.CHANNEL_ENV, second)
        assert kernel_channel.call("who")["caller"] == "another step"
    assert list(long_tmp.iterdir()) == []
    monkeypatch.delenv(kernel_channel.CHANNEL_ENV, raising=False)
    assert kernel_channel.address() is None
    with pytest.raises(NoRunContextError):
        interaction.get_parameter("x")
