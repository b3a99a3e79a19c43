"""Signals while magnus runs steps: the first SIGINT or SIGTERM stops cleanly, a second at once.

Inside :func:`stoppable`, the first SIGINT or SIGTERM raises :class:`RunInterrupted` in the main
thread, wherever it is, so the run unwinds and is recorded FAIL with the reason. Finishing that
record may take a moment (branch processes are stopped and waited for); a second signal does not
wait: it kills the processes this one started and exits at once, leaving the run log as it is
(every write is atomic, so it stays readable, and ``magnus runs show`` calls it abandoned).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from magnus.exceptions import RunInterrupted

#: the signals that stop a run
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Process groups of the processes this one started for branches: a second signal kills them.
_children: set[int] = set()
_children_lock = threading.Lock()
_installed = False
_installed_by = 0  # the process id of the process whose handlers are in place


def watch_child(pid: int) -> None:
    """Kill the process group ``pid`` too if this process is aborted by a second signal."""
    with _children_lock:
        _children.add(pid)


def forget_child(pid: int) -> None:
    """The process group ``pid`` has ended."""
    with _children_lock:
        _children.discard(pid)


def _not_ours(signum: int) -> bool:
    """In a process forked from the one that installed the handlers (a task's multiprocessing
    pool), the signal does what it would have done there: that process has no run to end."""
    if os.getpid() == _installed_by:
        return False
    signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    signal.raise_signal(signum)
    return True


def _abort(signum: int, frame: FrameType | None) -> None:
    """The second signal: no more clean-up."""
    if _not_ours(signum):
        return
    with _children_lock:
        children = list(_children)
    for pid in children:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    name = signal.Signals(signum).name
    os.write(2, f"\nAborted by a second {name}: the run log is left as it was.\n".encode())
    os._exit(128 + signum)


def _first(signum: int, frame: FrameType | None) -> None:
    if _not_ours(signum):
        return
    for stop in STOP_SIGNALS:
        signal.signal(stop, _abort)
    raise RunInterrupted(signum)


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`RunInterrupted` (see the module).

    Outside the main thread signals cannot be handled, and an inner block leaves the outer one's
    handlers in place; a signal the process ignores (``nohup``) stays ignored.
    """
    global _installed, _installed_by
    if _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    for stop in STOP_SIGNALS:
        previous[stop] = signal.getsignal(stop)
        if previous[stop] is not signal.SIG_IGN:
            signal.signal(stop, _first)
    _installed, _installed_by = True, os.getpid()
    # A branch's process starts with these signals blocked (see block_for_children): one sent
    # while it was starting arrives now, when it can end its branch cleanly.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        _installed = False
        for stop in STOP_SIGNALS:
            signal.signal(stop, previous[stop])


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block has run, then arrive as usual.

    For the few writes that make a record whole (a new run's log and its ``run_config``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def block_for_children() -> None:
    """Block SIGINT and SIGTERM in the calling (non-main) thread, and so in what it starts.

    A process started from this thread inherits the blocked signals: one its parent passes on
    while it is still starting (importing, reading its run) waits until :func:`stoppable` is in
    place, instead of killing it with a traceback half-way through its start.
    """
    if threading.current_thread() is not threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def signal_of(error: BaseException) -> int:
    """The signal that stopped a run: the one received, SIGINT for a plain Ctrl-C, or SIGTERM."""
    if isinstance(error, RunInterrupted):
        return error.signum
    if isinstance(error, KeyboardInterrupt):
        return int(signal.SIGINT)
    return int(signal.SIGTERM)
