"""Append-only journals of a run log: how a line is framed and read back, and the changes.

The ``file-system`` store keeps a run as one JSON file and appends each change to a journal
beside it, so that a change costs what the change holds, not what the run holds; ``chunked-fs``
appends each record of a run to the run's journal rather than writing a file per record
(:mod:`magnus.runlog.record_journal`). Both frame their lines alike (:func:`frame`,
:func:`complete_lines`): the CRC-32 of the payload (eight hex digits), a space, the payload
(``\\n`` never occurs in it: JSON escapes it), a newline. A process killed while appending
leaves at worst a last line without its newline, which readers ignore and the next writer cuts
off; a complete line whose checksum does not match is damage, and reading it names the file and
the byte where it starts.
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
    return frame(text.encode("utf-8")), decode_change(data, where)


def frame(payload: bytes) -> bytes:
    """The journal line holding ``payload`` (which holds no ``\\n``): checksum, space, payload."""
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def complete_lines(data: bytes, start: int, where: str) -> tuple[list[tuple[int, bytes]], int]:
    """The payloads of the complete lines of ``data``, each with its line's offset in the file,
    and how many bytes those lines take.

    ``data`` is the journal from byte ``start`` on; an incomplete last line is left for later: it
    is being written, or was torn by a kill. A line whose checksum does not match raises
    ``RunLogStoreError`` naming ``where`` and the byte where the line starts.
    """
    payloads = []
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
        payloads.append((start + position, payload))
        position = end + 1
    return payloads, position


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
    payloads, used = complete_lines(data, start, where)
    return [decode_change(json.loads(payload), where) for _, payload in payloads], used
