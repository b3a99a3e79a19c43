"""A leaf step's PROCESSING record: written only if the step lasts, never after the final one."""

from __future__ import annotations

import contextvars
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from magnus.executors.pending import processing_record, store_final_step_log, write_pending_now
from magnus.runlog.buffered import BufferedRunLogStore
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.models import PROCESSING, SUCCESS, StepLog

RUN = "run-1"
DELAY = 0.2


class RecordingStore(ChunkedFileSystemRunLogStore):
    """The chunked-fs store, remembering the status of every step log written."""

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        object.__setattr__(self, "written", [])

    def add_step_log(self, step_log: StepLog, run_id: str) -> None:
        self.written.append((step_log.internal_name, step_log.status))  # type: ignore[attr-defined]
        super().add_step_log(step_log, run_id)


@pytest.fixture
def context(tmp_path: Path) -> Any:
    store = RecordingStore(log_folder=str(tmp_path / "logs"))
    store.create_run_log(RUN)
    return SimpleNamespace(run_log_store=store, run_id=RUN)


def started(context: Any, name: str = "train") -> StepLog:
    step_log = context.run_log_store.create_step_log(name, name)
    step_log.status = PROCESSING
    return step_log


def finish(context: Any, step_log: StepLog) -> None:
    step_log.status = SUCCESS
    store_final_step_log(context, step_log)


def stored_status(context: Any, name: str = "train") -> str:
    return str(context.run_log_store.get_step_log(name, RUN).status)


def test_a_quick_step_is_written_once(context: Any) -> None:
    step_log = started(context)
    with processing_record(context, step_log, delay=DELAY):
        finish(context, step_log)
    time.sleep(DELAY * 2)  # a timer that was not cancelled would have fired by now

    assert context.run_log_store.written == [("train", SUCCESS)]
    assert stored_status(context) == SUCCESS


def test_a_lasting_step_shows_as_processing_then_ends(context: Any) -> None:
    step_log = started(context)
    with processing_record(context, step_log, delay=DELAY):
        deadline = time.monotonic() + 10
        while not context.run_log_store.written:
            assert time.monotonic() < deadline, "the PROCESSING record was never written"
            time.sleep(0.01)
        assert stored_status(context) == PROCESSING
        finish(context, step_log)

    assert context.run_log_store.written == [("train", PROCESSING), ("train", SUCCESS)]
    assert stored_status(context) == SUCCESS


def test_the_record_written_is_the_start_not_a_half_finished_step(context: Any) -> None:
    step_log = started(context)
    with processing_record(context, step_log, delay=DELAY):
        step_log.message = "changed while running"
        write_pending_now()
        finish(context, step_log)

    assert context.run_log_store.written == [("train", PROCESSING), ("train", SUCCESS)]


def test_a_step_that_raises_is_recorded_at_once(context: Any) -> None:
    step_log = started(context)
    with pytest.raises(KeyboardInterrupt), processing_record(context, step_log, delay=60):
        raise KeyboardInterrupt

    assert stored_status(context) == PROCESSING


def test_the_final_record_waits_for_a_processing_write_in_flight(context: Any) -> None:
    store = context.run_log_store
    entered, release = threading.Event(), threading.Event()
    original = RecordingStore.add_step_log

    def slow_processing_write(self: RecordingStore, step_log: StepLog, run_id: str) -> None:
        if step_log.status == PROCESSING:
            entered.set()
            release.wait(10)
        original(self, step_log, run_id)

    object.__setattr__(store, "add_step_log", slow_processing_write.__get__(store))
    step_log = started(context)
    with processing_record(context, step_log, delay=0.01):
        assert entered.wait(10)
        # The step's own context, as the thread that ran it would have.
        step_context = contextvars.copy_context()
        finisher = threading.Thread(target=step_context.run, args=(finish, context, step_log))
        finisher.start()
        time.sleep(0.1)
        assert store.written == []  # the final write is held back
        release.set()
        finisher.join(10)

    assert store.written == [("train", PROCESSING), ("train", SUCCESS)]
    assert stored_status(context) == SUCCESS


def test_reading_the_run_log_inside_a_step_finds_the_step(context: Any) -> None:
    step_log = started(context)
    with processing_record(context, step_log, delay=60):
        write_pending_now()
        assert stored_status(context) == PROCESSING
        finish(context, step_log)

    assert stored_status(context) == SUCCESS


def test_an_in_memory_store_gets_the_record_at_once() -> None:
    store = BufferedRunLogStore()
    store.create_run_log(RUN)
    context = SimpleNamespace(run_log_store=store, run_id=RUN)
    step_log = started(context)

    with processing_record(context, step_log, delay=60):
        assert stored_status(context) == PROCESSING
        finish(context, step_log)

    assert stored_status(context) == SUCCESS
