"""Where a task's output goes: the execution log and the console, secrets masked.

A python task prints through ``sys.stdout`` and ``sys.stderr``, but also through what it starts:
``os.system``, ``subprocess`` without capture, C extensions writing to file descriptors 1 and 2.
:func:`task_output` therefore captures at the file-descriptor level while the task runs:

* file descriptors 1 and 2 point into two pipes; one reader thread per process (started once,
  not per step) forwards what arrives, decoded and masked, to the execution log and to the
  console -- the console being what descriptors 1 and 2 were before;
* ``sys.stdout`` and ``sys.stderr`` become streams that write to the same places at once, after
  forwarding whatever the pipes hold, so that ``print`` after ``os.system`` keeps its order.
  Their ``buffer`` takes bytes (``sys.stdout.buffer.write``) and ``fileno()`` is 1 or 2.

The reader reads only while holding a lock, and a write from the task first empties the pipes
under that lock: whatever a finished child printed is forwarded before what the task prints next.
Afterwards descriptors 1 and 2 are restored. Python tasks of one process run one at a time
(parallel branches run in processes of their own), so descriptors 1 and 2 are the task's alone.
Where descriptors cannot be redirected (nested inside another task's capture), the task gets the
plain streams and only what goes through ``sys.stdout``/``sys.stderr`` is captured.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import select
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

from magnus.redaction import RedactingStream, get_redactor

_READ_SIZE = 65536
_UTF8_DECODER = codecs.getincrementaldecoder("utf-8")


class _Tee(io.TextIOBase):
    """A text stream writing to several streams (the execution log and the console).

    ``buffer`` accepts bytes, decoded as UTF-8, for tasks that write binary to ``sys.stdout``.
    """

    def __init__(self, *streams: IO[str]) -> None:
        super().__init__()
        self._streams = streams
        self.buffer = _DecodingWriter(self.write)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


class _DecodingWriter(io.BufferedIOBase):
    """A binary stream that decodes what it is given (UTF-8) and writes it as text."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        super().__init__()
        self._write = write
        self._decoder = _UTF8_DECODER(errors="replace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raw = bytes(data)
        self._write(self._decoder.decode(raw))
        return len(raw)


class _FdWriter(io.BufferedIOBase):
    """A binary stream writing straight to a file descriptor (into the capture's pipe)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Any) -> int:
        view = memoryview(bytes(data))
        while view:
            view = view[os.write(self._fd, view) :]
        return len(data)


class _TaskStream(io.TextIOBase):
    """``sys.stdout`` or ``sys.stderr`` of a task whose descriptors 1 and 2 are captured."""

    def __init__(self, capture: _Capture, fd: int) -> None:
        super().__init__()
        self._capture = capture
        self._fd = fd
        self.buffer = _FdWriter(fd)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        self._capture.write(self._fd, text)
        return len(text)

    def flush(self) -> None:
        self._capture.forward()

    def __del__(self) -> None:
        # io's finaliser closes, and so flushes: a stream the garbage collector takes while the
        # capture holds its lock (a new task's capture starting) would wait for it forever.
        # Writes went through as they were made; there is nothing to flush.
        pass


class _Capture:
    """The process's two pipes and their reader thread; active while a task runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipes: dict[int, tuple[int, int]] = {}
        self._decoders: dict[int, codecs.IncrementalDecoder] = {}
        # where the task's own writes go, and where what arrives through the pipes goes
        self._sinks: dict[int, tuple[IO[str], ...]] = {}
        self._piped_sinks: dict[int, tuple[IO[str], ...]] = {}
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._streams: tuple[_TaskStream, _TaskStream] | None = None
        self._poll = select.poll()
        self.active = False

    def streams(self) -> tuple[_TaskStream, _TaskStream]:
        """The task's ``sys.stdout`` and ``sys.stderr``: made once, unless a task closed them."""
        if self._streams is None or any(stream.closed for stream in self._streams):
            self._streams = (_TaskStream(self, 1), _TaskStream(self, 2))
        return self._streams

    def _start(self) -> None:
        """Make the pipes and the reader thread, the first time a task is captured."""
        if self._thread is not None:
            return
        for fd in (1, 2):
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            os.set_inheritable(write_end, False)
            self._pipes[fd] = (read_end, write_end)
            self._poll.register(read_end, select.POLLIN)
        self._thread = threading.Thread(
            target=self._read_forever, name="magnus-output", daemon=True
        )
        self._thread.start()

    def _read_forever(self) -> None:
        ends = [read_end for read_end, _ in self._pipes.values()]
        while True:
            select.select(ends, [], [])
            self.forward()

    def forward(self) -> None:
        """Forward everything the pipes hold now to the sinks, in the order it can be read."""
        with self._lock:
            self._drain()

    def write(self, fd: int, text: str) -> None:
        """Write what the task printed on ``fd``, after what its children printed before."""
        if os.getpid() != self._pid:
            # A forked child of the task: the parent's reader forwards what it writes.
            _FdWriter(fd).write(text.encode("utf-8", "backslashreplace"))
            return
        with self._lock:
            self._drain()
            self._emit(fd, text, self._sinks)

    def _drain(self) -> None:
        """Read the pipes empty (the caller holds the lock: only one reader at a time).

        Asked of ``poll`` first: most tasks print nothing, and a read that finds nothing
        raises (twice per task, for two pipes).
        """
        while self._poll.poll(0):
            progress = False
            for fd, (read_end, _) in self._pipes.items():
                try:
                    data = os.read(read_end, _READ_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    continue
                progress = True
                decoder = self._decoders.get(fd)
                text = decoder.decode(data) if decoder else data.decode("utf-8", "replace")
                self._emit(fd, text, self._piped_sinks)
            if not progress:
                return

    def _emit(self, fd: int, text: str, where: dict[int, tuple[IO[str], ...]]) -> None:
        if not text:
            return
        sinks = where.get(fd)
        if sinks is None:
            # A child that outlived its task: its output goes to the console, still masked.
            data = get_redactor().redact_text(text).encode("utf-8", "replace")
            with contextlib.suppress(OSError):
                os.write(fd, data)
            return
        for sink in sinks:
            sink.write(text)

    @contextlib.contextmanager
    def capturing(
        self, log: IO[str], consoles: dict[int, IO[str]], log_piped: bool = True
    ) -> Iterator[None]:
        """Descriptors 1 and 2 into the pipes while the block runs, then back.

        ``log_piped``: whether what arrives through the descriptors goes to ``log`` too (or
        to the console alone).
        """
        self._start()
        _flush(sys.stdout, sys.stderr, *consoles.values())
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        # A console written through descriptor 1 or 2 must be written through its copy, or
        # what the task prints would come back through the pipe for ever.
        opened: list[_SavedConsole] = []
        with self._lock:
            for fd in (1, 2):
                console = consoles[fd]
                target = _fileno(console)
                if target in saved:
                    saved_console = _SavedConsole(saved[target], getattr(console, "encoding", None))
                    opened.append(saved_console)
                    console = cast(IO[str], saved_console)
                self._sinks[fd] = (log, console)
                self._piped_sinks[fd] = (log, console) if log_piped else (console,)
                self._decoders[fd] = _UTF8_DECODER(errors="replace")
            for fd, (_, write_end) in self._pipes.items():
                os.dup2(write_end, fd)
            self._pid = os.getpid()
            self.active = True
        try:
            yield
        finally:
            # What the task wrote to the interpreter's own streams is still buffered in them.
            _flush(sys.__stdout__, sys.__stderr__)
            with self._lock:
                self._drain()
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                for fd in (1, 2):
                    final = self._decoders.pop(fd).decode(b"", final=True)
                    self._emit(fd, final, self._piped_sinks)
                self._sinks.clear()
                self._piped_sinks.clear()
                self.active = False
            for stream in opened:
                stream.close()
            for copy in saved.values():
                os.close(copy)


class _SavedConsole:
    """The console as a copy of its descriptor, masked; opened on the first write.

    Most steps print nothing: a text stream made per step only to be closed again cost more
    than the rest of the capture. Only the capture writes to it, so it is a plain object
    rather than an ``io`` stream, which costs more to make than the rest of a short step.
    """

    def __init__(self, fd: int, encoding: str | None) -> None:
        self._fd = fd
        self._encoding = encoding or "utf-8"
        self._stream: RedactingStream | None = None

    @property
    def encoding(self) -> str:
        return self._encoding

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        if self._stream is None:
            raw = io.TextIOWrapper(
                io.FileIO(self._fd, "w", closefd=False),
                encoding=self._encoding,
                errors="backslashreplace",
                write_through=True,
            )
            self._stream = RedactingStream(raw, owns_stream=True)
        return self._stream.write(text)

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _flush(*streams: Any) -> None:
    """Flush each stream that can be flushed (a closed one, or ``None``, cannot)."""
    # try/except rather than contextlib.suppress: a suppress object per stream per step costs.
    for stream in streams:
        try:  # noqa: SIM105
            stream.flush()
        except Exception:
            pass


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except Exception:  # a stream without a descriptor (StringIO, pytest's capture)
        return None


_capture = _Capture()


@contextlib.contextmanager
def task_output(
    log: IO[str],
    console_out: IO[str] | None,
    console_err: IO[str] | None,
    log_piped: bool = True,
) -> Iterator[tuple[IO[str], IO[str]]]:
    """The ``(stdout, stderr)`` a task writes to while the block runs (see the module docstring).

    ``log`` receives both; ``console_out``/``console_err`` (default: ``sys.stdout``/``sys.stderr``)
    receive each its own. Without ``log_piped``, what other processes write to descriptors 1
    and 2 goes to the console alone (masked): a notebook's kernel, whose cells' output comes
    through the streams, prints only its own diagnostics there.
    """
    out = console_out or sys.stdout
    err = console_err or sys.stderr
    stack = contextlib.ExitStack()
    captured = False
    if not _capture.active:
        try:
            stack.enter_context(_capture.capturing(log, {1: out, 2: err}, log_piped))
            captured = True
        except OSError:
            pass  # no descriptors to redirect (closed ones, no pipes): the streams alone
    if not captured:
        # Nested in another task's capture, or none possible: what goes through sys.stdout.
        yield cast(IO[str], _Tee(log, out)), cast(IO[str], _Tee(log, err))
        return
    with stack:
        out_stream, err_stream = _capture.streams()
        yield cast(IO[str], out_stream), cast(IO[str], err_stream)
