"""Fingerprint-index records written by a thread of their own: found by the process that wrote
them as if written at once, all on disk when a process ends normally, never in a step's way."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from magnus.executors import index_writes
from magnus.runlog.buffered import BufferedRunLogStore
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore

KEYS = [f"{number:064x}" for number in range(300)]


def test_records_are_found_after_a_flush(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "logs"))
    store.create_run_log("run")
    for number, key in enumerate(KEYS):
        index_writes.record_fingerprint(store, key, "run", f"fan.{number}.work")
    index_writes.flush()

    hits = [store.find_fingerprint(key) for key in KEYS]
    assert [(h.run_id, h.internal_name) for h in hits if h] == [
        ("run", f"fan.{number}.work") for number in range(len(KEYS))
    ]


def test_the_writing_is_done_by_another_thread(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "logs"))
    store.create_run_log("run")
    writers: set[str] = set()
    real = store.record_fingerprint

    def record(key: str, run_id: str, internal_name: str) -> None:
        writers.add(threading.current_thread().name)
        real(key, run_id, internal_name)

    object.__setattr__(store, "record_fingerprint", record)
    index_writes.record_fingerprint(store, KEYS[0], "run", "work")
    index_writes.flush()
    assert writers == {"magnus-index"}


def test_a_store_in_memory_is_written_at_once() -> None:
    store = BufferedRunLogStore()
    store.create_run_log("run")
    index_writes.record_fingerprint(store, KEYS[0], "run", "work")
    hit = store.find_fingerprint(KEYS[0])
    assert hit is not None and hit.internal_name == "work"


def test_a_process_that_ends_normally_writes_every_record(tmp_path: Path) -> None:
    # No flush: whatever the thread has not written yet is written on the way out.
    script = textwrap.dedent(
        f"""
        from magnus.executors import index_writes
        from magnus.runlog.chunked import ChunkedFileSystemRunLogStore

        store = ChunkedFileSystemRunLogStore(log_folder={str(tmp_path / "logs")!r})
        store.create_run_log("run")
        for number in range({len(KEYS)}):
            index_writes.record_fingerprint(store, f"{{number:064x}}", "run", f"s{{number}}")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)

    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "logs"))
    found = [store.find_fingerprint(key) for key in KEYS]
    assert all(hit is not None for hit in found)
    assert [hit.internal_name for hit in found if hit] == [f"s{n}" for n in range(len(KEYS))]
