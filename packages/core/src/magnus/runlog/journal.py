"""An append-only journal of run-log changes: the records and how they are read back.

The ``file-system`` store keeps a run as one JSON file and appends each change to a journal
beside it, so that a change costs what the change holds, not what the run holds. Each record is
one line: the CRC-32 of its JSON (eight hex digits), a space, the JSON (``\\n`` never occurs in
it), a newline. A process killed while appending leaves at worst a last line without its newline,
which readers ignore and the next writer cuts off; a complete line whose checksum does not match
is damage, and reading it names the file and the byte where it starts.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from pydantic_core import to_jsonable_python

from magnus.exceptions import RunLogStoreError
from magnus.runlog.memory import (
    BRANCH_CHANGE,
    PARAMETERS_CHANGE,
    RUN_CONFIG_CHANGE,
    STATUS_CHANGE,
    STEP_CHANGE,
    RunChange,
)
from magnus.runlog.models import BranchLog, StepLog

_CRC_DIGITS = 8


def encode_change(change: RunChange, where: str) -> tuple[bytes, RunChange]:
    """The journal line of ``change``, and the change as a reader of that line will make it.

    Step and branch logs lose what their own record does not hold (branches, steps); values go
    through their JSON form, so the writer's copy of the run and a reader's agree.
    """
    value = change.value
    if change.kind == STEP_CHANGE:
        value = value.model_dump(exclude={"branches"})
    elif change.kind == BRANCH_CHANGE:
        value = value.model_dump(exclude={"steps"})
    try:
        data = {change.kind: to_jsonable_python(value)}
        text = json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise RunLogStoreError(
            f"Cannot write {where}: a value is not JSON serialisable: {exc}"
        ) from exc
    payload = text.encode("utf-8")
    line = b"%08x %s\n" % (zlib.crc32(payload), payload)
    return line, decode_change(data, where)


def decode_change(data: Any, where: str) -> RunChange:
    """The change a parsed journal record holds."""
    if not isinstance(data, dict) or len(data) != 1:
        raise RunLogStoreError(f"The run log journal {where} holds a record that is not a change")
    ((kind, value),) = data.items()
    try:
        if kind == STEP_CHANGE:
            return RunChange(kind, StepLog.model_validate(value))
        if kind == BRANCH_CHANGE:
            return RunChange(kind, BranchLog.model_validate(value))
    except ValueError as exc:
        raise RunLogStoreError(
            f"The run log journal {where} holds a {kind} record that is not valid: {exc}"
        ) from exc
    if kind == STATUS_CHANGE:
        valid = isinstance(value, dict) and {"status", "message", "now"} <= value.keys()
    else:
        valid = kind in (PARAMETERS_CHANGE, RUN_CONFIG_CHANGE) and isinstance(value, dict)
    if not valid:
        raise RunLogStoreError(
            f"The run log journal {where} holds a {kind!r} record that is not a change"
        )
    return RunChange(kind, value)


def read_changes(data: bytes, start: int, where: str) -> tuple[list[RunChange], int]:
    """The changes of the complete lines of ``data`` and how many bytes they take.

    ``data`` is the journal from byte ``start`` on (for messages); an incomplete last line is
    left for later: it is being written, or was torn by a kill.
    """
    changes = []
    position = 0
    while (end := data.find(b"\n", position)) >= 0:
        line = data[position:end]
        payload = line[_CRC_DIGITS + 1 :]
        try:
            intact = line[_CRC_DIGITS : _CRC_DIGITS + 1] == b" " and int(
                line[:_CRC_DIGITS], 16
            ) == zlib.crc32(payload)
        except ValueError:
            intact = False
        if not intact:
            raise RunLogStoreError(
                f"The run log journal {where} is damaged at byte {start + position}"
            )
        changes.append(decode_change(json.loads(payload), where))
        position = end + 1
    return changes, position
