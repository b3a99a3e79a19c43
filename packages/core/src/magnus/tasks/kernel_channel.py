"""The channel between a notebook's kernel and the step that runs it.

A notebook step runs its notebook in a separate kernel process, where magnus' interaction API
(``get_parameter``, ``set_parameter``, ``track_this``, ``get_secret``, ``put_in_catalog``, ...)
has no run. So while papermill runs, the step serves the API's calls on a Unix socket of its own
and names the socket to the kernel in :data:`CHANNEL_ENV`; the interaction API in the kernel
sees the variable and sends each call there. The step answers it exactly as it answers a python
task's call, in the step's own context: parameters set and metrics tracked land in the step's
output, catalog transfers are recorded on the step with their hashes, secrets are served (and
masked) by the step's process.

Why a socket served by the step rather than a kernel that builds its own run context and hands
its side effects back through a file:

* one place records everything: what the kernel asks for goes through the very code a python
  task calls, and nothing has to be merged afterwards;
* a secret travels only in memory, over a socket in a private (``0700``) directory; it is never
  written down, and the step's process registers it for masking before the kernel has it, so
  what the kernel then prints reaches the execution log and the executed notebook masked;
* concurrent steps (map elements under ``enable_parallel``) each serve their own socket in a
  directory of their own, named only to their own kernel;
* a kernel that crashes leaves nothing half-written: each call is one request and one answer on
  a connection of its own, and what was answered is already recorded;
* nothing is left listening: the server stops and its directory is removed when papermill
  returns, whether the notebook succeeded, failed or its kernel died.

Requests and answers are one JSON document each (``{"op": ..., "args": {...}}`` ->
``{"result": ...}`` or ``{"error": {"type": ..., "message": ...}}``). An error is raised in the
kernel as the magnus exception of the same name.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from magnus import exceptions
from magnus.exceptions import MagnusError

logger = logging.getLogger(__name__)

#: the environment variable naming the socket a kernel sends its interaction calls to
CHANNEL_ENV = "MAGNUS_NOTEBOOK_CHANNEL"

#: what answers one call: the operation's name and its keyword arguments -> a JSON-ready value
Answer = Callable[[str, dict[str, Any]], Any]

_FOLDER_PREFIX = "magnus-kernel-"
# The longest socket path every POSIX system takes (``sun_path`` is 104 bytes on macOS).
_MAX_SOCKET_PATH = 100

# A call waits this long for its answer: catalog transfers of large files take a while, but a
# step that stopped answering must not hang the kernel for ever.
_CALL_TIMEOUT = 3600.0


def address() -> str | None:
    """The socket this process's interaction calls go to, or ``None`` outside a notebook step."""
    return os.environ.get(CHANNEL_ENV) or None


def call(op: str, args: Mapping[str, Any] | None = None) -> Any:
    """Send one interaction call to the step serving this kernel and return its answer."""
    where = address()
    if where is None:
        raise exceptions.NoRunContextError(
            "This magnus function works inside a running pipeline step; no run is active"
        )
    request = json.dumps({"op": op, "args": dict(args or {})}).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(_CALL_TIMEOUT)
            connection.connect(where)
            connection.sendall(request)
            connection.shutdown(socket.SHUT_WR)
            answer = _read_all(connection)
    except OSError as exc:
        raise exceptions.NoRunContextError(
            f"The notebook step serving magnus calls at {where} does not answer ({exc}); the "
            "interaction API works only while the step runs the notebook"
        ) from None
    reply = json.loads(answer)
    if "error" in reply:
        raise _error(reply["error"])
    return reply.get("result")


@contextlib.contextmanager
def serving(answer: Answer) -> Iterator[dict[str, str]]:
    """Serve interaction calls with ``answer`` for the duration of the block.

    Yields the environment to export to the kernel. Each call is answered in a copy of the
    caller's context (the running step), on a thread of its own.
    """
    folder = _private_folder()
    path = os.path.join(folder, "channel")
    context = contextvars.copy_context()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            reply = context.copy().run(_answer_one, answer, self.rfile.read())
            self.wfile.write(reply)

    try:
        server = _Server(path, Handler)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    thread = threading.Thread(
        # Stopping waits for the loop's next poll: a short one ends the step without delay.
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="magnus-kernel-channel",
    )
    thread.daemon = True
    thread.start()
    try:
        yield {CHANNEL_ENV: path}
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        shutil.rmtree(folder, ignore_errors=True)


def _private_folder() -> str:
    """A new directory only this user can enter (``0700``), short enough to hold a socket.

    A socket's path has a small limit (104 bytes on macOS, 108 on Linux): under a long
    ``TMPDIR`` the directory is made in ``/tmp`` instead.
    """
    folder = tempfile.mkdtemp(prefix=_FOLDER_PREFIX)
    if len(os.fsencode(os.path.join(folder, "channel"))) <= _MAX_SOCKET_PATH:
        return folder
    os.rmdir(folder)
    return tempfile.mkdtemp(prefix=_FOLDER_PREFIX, dir="/tmp")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    # A connection a dead kernel left open must not keep the step from ending.
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A kernel that went away before its answer was written: nothing is waiting for it
        # (socketserver would print a traceback onto the step's console).
        logger.debug("A kernel left before its interaction call was answered", exc_info=True)


def _answer_one(answer: Answer, request: bytes) -> bytes:
    try:
        parsed = json.loads(request)
        result = answer(str(parsed["op"]), dict(parsed.get("args") or {}))
        return json.dumps({"result": result}).encode("utf-8")
    except Exception as exc:  # every failure goes back to the kernel, which raises it
        return json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}).encode(
            "utf-8"
        )


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _error(error: Mapping[str, Any]) -> Exception:
    """The exception an answer's error stands for: magnus' own by name, else a MagnusError."""
    kind = getattr(exceptions, str(error.get("type", "")), None)
    message = str(error.get("message", ""))
    if isinstance(kind, type) and issubclass(kind, MagnusError):
        # Built around the message alone: some magnus errors take other arguments.
        raised = kind.__new__(kind)
        Exception.__init__(raised, message)
        return raised
    return MagnusError(f"{error.get('type')}: {message}")
