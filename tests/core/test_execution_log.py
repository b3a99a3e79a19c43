"""A task's execution log: kept in memory while small, moved to a file when large, stored whole."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest

from magnus.catalog import FileSystemCatalog
from magnus.executors.execution_log import ExecutionLog

RUN = "run-1"


@pytest.fixture
def catalog(tmp_path: Path) -> FileSystemCatalog:
    return FileSystemCatalog(catalog_location=str(tmp_path / "catalog"))


def test_a_small_log_never_touches_the_disk(
    catalog: FileSystemCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tempfile caches its folder: point it (not TMPDIR) at one we can watch.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    log = ExecutionLog()
    log.write("hello\n")
    log.write("world\n")

    record = log.store(catalog, "step.execution.log", RUN)
    log.discard()

    assert not log.on_disk
    assert list((tmp_path / "tmp").iterdir()) == []
    stored = tmp_path / "catalog" / RUN / "step.execution.log"
    assert stored.read_text() == "hello\nworld\n"
    assert record.data_hash == hashlib.sha256(b"hello\nworld\n").hexdigest()


def test_a_large_log_moves_to_a_file_and_keeps_everything(
    catalog: FileSystemCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    log = ExecutionLog(limit=10)
    log.write("12345")
    log.write("67890")
    assert not log.on_disk
    log.write("abc\n")
    assert log.on_disk
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    log.write("more\n")

    record = log.store(catalog, "step.execution.log", RUN)
    spilled = log._path
    log.discard()

    content = b"1234567890abc\nmore\n"
    assert (tmp_path / "catalog" / RUN / "step.execution.log").read_bytes() == content
    assert record.data_hash == hashlib.sha256(content).hexdigest()
    assert spilled is not None and not Path(spilled).exists()


@pytest.mark.parametrize("limit", [1000, 1], ids=["in-memory", "on-disk"])
def test_text_that_utf8_cannot_encode_is_escaped_not_fatal(
    catalog: FileSystemCatalog, tmp_path: Path, limit: int
) -> None:
    log = ExecutionLog(limit=limit)
    log.write("bad \udcff byte, café\n")

    log.store(catalog, "step.execution.log", RUN)
    log.discard()

    stored = (tmp_path / "catalog" / RUN / "step.execution.log").read_text(encoding="utf-8")
    assert stored == "bad \\udcff byte, café\n"


def test_discard_without_storing_removes_the_file(tmp_path: Path) -> None:
    log = ExecutionLog(limit=1)
    log.write("spilled\n")
    spilled = log._path

    log.discard()

    assert spilled is not None and not Path(spilled).exists()
