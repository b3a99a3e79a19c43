"""Who runs a run: the process that owns it, and whether that process is still there.

A run traversed on one machine (``local``, ``mocked``) records its owner in ``run_config.owner``:
the host, the process id, and what tells that process apart from a later one given the same id
(its start time in clock ticks since boot, and the boot id). A run that is still PROCESSING
while its owner is gone was killed (``kill -9``, a power loss): it is *abandoned*. Readers work
this out without writing to the run, so a run log on a read-only copy says the same.

Only the owner's own host can tell: on another host, or where ``/proc`` is missing, a run is
never called abandoned.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

_PROC = Path("/proc")


def _process_start(pid: int) -> int | None:
    """The start time of live process ``pid`` in clock ticks since boot (Linux), or ``None``.

    ``None`` also for a process that has exited but is not yet reaped (a zombie).
    """
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = stat.rpartition(")")[2].split()
    try:
        state, started = fields[0], int(fields[19])  # fields 3 and 22 of the whole line
    except (IndexError, ValueError):
        return None
    return None if state in ("Z", "X") else started


def _boot_id() -> str:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def current_owner() -> dict[str, Any]:
    """This process, as ``run_config.owner`` records it."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "process_start": _process_start(pid),
        "boot_id": _boot_id(),
    }


def owner_gone(owner: Any) -> bool:
    """Whether the process described by ``owner`` certainly no longer runs.

    ``False`` whenever it cannot be known: no owner recorded, another host, no ``/proc``.
    """
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or not _PROC.is_dir():
        return False
    boot_id = owner.get("boot_id")
    if boot_id and _boot_id() and boot_id != _boot_id():
        return True  # the machine restarted since
    started = _process_start(pid)
    if started is None:
        return True  # no such process
    recorded = owner.get("process_start")
    return recorded is not None and started != recorded  # the id now belongs to another


def describe_owner(owner: Any) -> str:
    """``process 1234 on host-a`` for messages."""
    if not isinstance(owner, dict):
        return "its process"
    return f"process {owner.get('pid')} on {owner.get('host')}"
