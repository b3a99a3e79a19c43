"""The built-in catalogs: the contract suite for ``file-system`` plus what only it promises."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

import magnus.catalog.copying
from magnus.catalog import (
    CHUNK_SIZE,
    DoNothingCatalog,
    FileSystemCatalog,
    copy_with_hash,
    file_hash,
    is_execution_log,
)
from magnus.exceptions import CatalogError, ConfigurationError
from magnus.runlog.models import DataCatalog
from magnus.testing.catalog import CatalogContract

RUN = "run-1"


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def tree(folder: Path) -> list[str]:
    """Every file (not folder) under ``folder``, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def catalog(work: Path, store: Path) -> FileSystemCatalog:
    return FileSystemCatalog(catalog_location=str(store), compute_data_folder=str(work))


class TestFileSystemContract(CatalogContract):
    """``file-system`` passes the suite offered to plugin authors (the module fixture is used)."""


class TestFileSystemCatalogWithCatalogInsideTheComputeFolder(CatalogContract):
    """The default layout: ``.catalog`` inside the compute folder must not be put into itself."""

    @pytest.fixture
    def catalog(self, tmp_path: Path) -> FileSystemCatalog:
        work = tmp_path / "project"
        work.mkdir()
        return FileSystemCatalog(
            catalog_location=str(work / ".catalog"), compute_data_folder=str(work)
        )


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------


def test_service_names() -> None:
    assert FileSystemCatalog.service_name == "file-system"
    assert DoNothingCatalog.service_name == "do-nothing"
    assert FileSystemCatalog.service_type == DoNothingCatalog.service_type == "catalog"


def test_defaults() -> None:
    catalog = FileSystemCatalog.from_config(None)

    assert catalog.catalog_location == ".catalog"
    assert catalog.compute_data_folder == "."
    assert catalog.location == ".catalog"
    assert catalog.record() == {
        "service_name": "file-system",
        "service_type": "catalog",
        "compute_data_folder": ".",
        "catalog_location": ".catalog",
    }


@pytest.mark.parametrize("cls", [FileSystemCatalog, DoNothingCatalog])
def test_unknown_config_key_is_rejected(cls: type[FileSystemCatalog]) -> None:
    with pytest.raises(ConfigurationError, match="unknown") as error:
        cls.from_config({"unknown": 1})

    assert cls.service_name in str(error.value)


def test_relative_locations_follow_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "data/hello.txt", b"hello")
    catalog = FileSystemCatalog()

    [record] = catalog.put("data/hello.txt", RUN)

    assert (tmp_path / ".catalog" / RUN / "data/hello.txt").read_bytes() == b"hello"
    assert record == DataCatalog(name="data/hello.txt")
    assert record.model_dump() == {
        "name": "data/hello.txt",
        "data_hash": sha256(b"hello"),
        "catalog_relative_path": f"{RUN}/data/hello.txt",
        "catalog_handler_location": ".catalog",
        "stage": "put",
    }


# ------------------------------------------------------------------------------------------------
# on-disk layout
# ------------------------------------------------------------------------------------------------


def test_layout_on_disk(catalog: FileSystemCatalog, work: Path, store: Path) -> None:
    write(work, "data/x.csv", b"x")
    write(work, "data/deep/y.csv", b"y")
    log = write(work.parent, "elsewhere/step.execution.log", b"stdout")

    catalog.put("data/**/*.csv", RUN)
    catalog.put_file(log, "step.execution.log", RUN)

    assert tree(store) == [
        f"{RUN}/data/deep/y.csv",
        f"{RUN}/data/x.csv",
        f"{RUN}/step.execution.log",
    ]
    assert (store / RUN / "data/deep/y.csv").read_bytes() == b"y"


def test_put_creates_the_catalog_and_records_are_sorted(
    catalog: FileSystemCatalog, work: Path, store: Path
) -> None:
    for name in ("c.txt", "a.txt", "b/z.txt"):
        write(work, name, name.encode())

    records = catalog.put("**/*.txt", RUN)

    assert [r.name for r in records] == ["a.txt", "b/z.txt", "c.txt"]
    assert store.is_dir()


def test_put_skips_a_catalog_inside_the_compute_folder(work: Path) -> None:
    catalog = FileSystemCatalog(
        catalog_location=str(work / ".catalog"), compute_data_folder=str(work)
    )
    write(work, "data.txt", b"d")

    catalog.put("**/*", RUN)
    records = catalog.put("**/*", "run-2")

    assert [r.name for r in records] == ["data.txt"]
    assert tree(work / ".catalog") == [f"{RUN}/data.txt", "run-2/data.txt"]


def test_put_fails_when_the_compute_folder_is_missing(store: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    catalog = FileSystemCatalog(catalog_location=str(store), compute_data_folder=str(missing))

    with pytest.raises(CatalogError, match="no-such-folder"):
        catalog.put("*", RUN)


def test_messages_name_pattern_folder_and_run(
    catalog: FileSystemCatalog, work: Path, store: Path
) -> None:
    with pytest.raises(CatalogError) as no_match:
        catalog.put("*.csv", RUN)
    with pytest.raises(CatalogError) as no_run:
        catalog.get("*.csv", RUN)

    assert str(no_match.value) == (
        f"Did not find any files matching '*.csv' in {work} (run {RUN!r})"
    )
    assert str(no_run.value) == (
        f"No data in the catalog for run {RUN!r} at {store / RUN}: "
        "put something in the catalog before getting from it"
    )


@pytest.mark.parametrize("run_id", ["", ".", "..", "a/b", "../up"])
def test_run_ids_that_cannot_be_folders_are_refused(
    catalog: FileSystemCatalog, work: Path, run_id: str
) -> None:
    write(work, "x.txt", b"x")

    with pytest.raises(CatalogError):
        catalog.put("x.txt", run_id)


@pytest.mark.parametrize("pattern", ["data/**.csv", ""])
def test_invalid_patterns_become_catalog_errors(
    catalog: FileSystemCatalog, work: Path, pattern: str
) -> None:
    write(work, "data/x.csv", b"x")

    with pytest.raises(CatalogError):
        catalog.put(pattern, RUN)


def test_get_overwrites_a_local_file(catalog: FileSystemCatalog, work: Path) -> None:
    local = write(work, "x.txt", b"catalog version")
    catalog.put("x.txt", RUN)
    local.write_bytes(b"local edit")

    catalog.get("x.txt", RUN)

    assert local.read_bytes() == b"catalog version"


def test_get_skips_leftovers_of_killed_copies(
    catalog: FileSystemCatalog, work: Path, store: Path
) -> None:
    write(work, "x.txt", b"x")
    catalog.put("x.txt", RUN)
    write(store / RUN, ".x.txt.abc123.magnus-partial", b"half")

    assert [r.name for r in catalog.get("*", RUN)] == ["x.txt"]
    with pytest.raises(CatalogError):
        catalog.get(".*", RUN)
    assert not (work / ".x.txt.abc123.magnus-partial").exists()


# ------------------------------------------------------------------------------------------------
# symlinks
# ------------------------------------------------------------------------------------------------


def test_put_refuses_a_symlinked_file_leading_outside(
    catalog: FileSystemCatalog, work: Path, store: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path, "secret.txt", b"secret")
    write(work, "plain.txt", b"plain")
    (work / "link.txt").symlink_to(secret)

    with pytest.raises(CatalogError, match=r"\*\.txt"):
        catalog.put("*.txt", RUN)

    # The whole transfer is refused, not just the offending file.
    assert not (store / RUN).exists()


def test_put_refuses_a_symlinked_folder_leading_outside(
    catalog: FileSystemCatalog, work: Path, tmp_path: Path
) -> None:
    write(tmp_path, "private/key.pem", b"key")
    (work / "data").symlink_to(tmp_path / "private")

    with pytest.raises(CatalogError, match="data/"):
        catalog.put("data/*", RUN)


def test_put_follows_a_symlink_that_stays_inside(catalog: FileSystemCatalog, work: Path) -> None:
    write(work, "real/v2.csv", b"v2")
    (work / "latest.csv").symlink_to(work / "real/v2.csv")

    records = catalog.put("latest.csv", RUN)

    assert [(r.name, r.data_hash) for r in records] == [("latest.csv", sha256(b"v2"))]


def test_get_refuses_a_symlink_in_the_catalog_leading_outside(
    catalog: FileSystemCatalog, work: Path, store: Path, tmp_path: Path
) -> None:
    write(work, "x.txt", b"x")
    catalog.put("x.txt", RUN)
    secret = write(tmp_path, "secret.txt", b"secret")
    (store / RUN / "link.txt").symlink_to(secret)

    with pytest.raises(CatalogError, match=r"\*"):
        catalog.get("*", RUN)
    assert not (work / "link.txt").exists()


def test_get_refuses_to_write_through_a_symlinked_local_folder(
    catalog: FileSystemCatalog, work: Path, tmp_path: Path
) -> None:
    write(work, "data/x.txt", b"x")
    catalog.put("data/x.txt", RUN)
    (work / "data/x.txt").unlink()
    (work / "data").rmdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "data").symlink_to(outside)

    with pytest.raises(CatalogError, match="outside"):
        catalog.get("data/x.txt", RUN)
    assert list(outside.iterdir()) == []


def test_get_replaces_a_local_symlink_instead_of_writing_through_it(
    catalog: FileSystemCatalog, work: Path, tmp_path: Path
) -> None:
    write(work, "x.txt", b"from catalog")
    catalog.put("x.txt", RUN)
    target = write(tmp_path, "target.txt", b"untouched")
    (work / "x.txt").unlink()
    (work / "x.txt").symlink_to(target)

    catalog.get("x.txt", RUN)

    assert not (work / "x.txt").is_symlink()
    assert (work / "x.txt").read_bytes() == b"from catalog"
    assert target.read_bytes() == b"untouched"


def test_put_file_refuses_a_name_through_a_symlinked_catalog_folder(
    catalog: FileSystemCatalog, work: Path, store: Path, tmp_path: Path
) -> None:
    write(work, "x.txt", b"x")
    catalog.put("x.txt", RUN)
    outside = tmp_path / "outside"
    outside.mkdir()
    (store / RUN / "logs").symlink_to(outside)
    source = write(tmp_path, "step.log", b"log")

    with pytest.raises(CatalogError):
        catalog.put_file(source, "logs/step.execution.log", RUN)
    assert list(outside.iterdir()) == []


def test_put_data_links_the_same_bytes_and_writes_others(
    catalog: FileSystemCatalog, store: Path
) -> None:
    first = catalog.put_data(b"", "a.execution.log", RUN)
    second = catalog.put_data(b"", "b.execution.log", RUN)
    other = catalog.put_data(b"printed\n", "c.execution.log", RUN)
    folder = store / RUN

    # Empty logs share one file; a log with other bytes is a file of its own.
    a, b, c = (os.stat(folder / f"{n}.execution.log") for n in "abc")
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    assert c.st_ino != a.st_ino and c.st_nlink == 1
    assert [first.data_hash, second.data_hash, other.data_hash] == [
        sha256(b""),
        sha256(b""),
        sha256(b"printed\n"),
    ]
    assert (folder / "c.execution.log").read_bytes() == b"printed\n"
    assert tree(store) == [f"{RUN}/{n}.execution.log" for n in "abc"]


def test_put_data_never_links_to_a_file_that_changed(
    catalog: FileSystemCatalog, store: Path
) -> None:
    catalog.put_data(b"same", "a.execution.log", RUN)
    # Something replaced the file the catalog would link to: its bytes are no longer "same".
    (store / RUN / "a.execution.log").unlink()
    (store / RUN / "a.execution.log").write_bytes(b"else")

    record = catalog.put_data(b"same", "b.execution.log", RUN)

    assert (store / RUN / "b.execution.log").read_bytes() == b"same"
    assert record.data_hash == sha256(b"same")
    assert os.stat(store / RUN / "b.execution.log").st_nlink == 1


def test_put_data_over_an_existing_name_replaces_it(
    catalog: FileSystemCatalog, store: Path
) -> None:
    catalog.put_data(b"", "a.execution.log", RUN)
    catalog.put_data(b"new", "b.execution.log", RUN)
    catalog.put_data(b"", "b.execution.log", RUN)

    assert (store / RUN / "b.execution.log").read_bytes() == b""
    assert (store / RUN / "a.execution.log").read_bytes() == b""
    assert tree(store) == [f"{RUN}/a.execution.log", f"{RUN}/b.execution.log"]


# ------------------------------------------------------------------------------------------------
# atomic copies
# ------------------------------------------------------------------------------------------------


def test_no_temporary_files_are_left_after_a_put(
    catalog: FileSystemCatalog, work: Path, store: Path
) -> None:
    for index in range(5):
        write(work, f"data/{index}.bin", os.urandom(CHUNK_SIZE + index))

    catalog.put("data/*", RUN)
    catalog.put("data/*", RUN)

    assert tree(store) == [f"{RUN}/data/{index}.bin" for index in range(5)]


def test_a_failed_copy_keeps_the_previous_version_and_leaves_no_temporary_file(
    catalog: FileSystemCatalog, work: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = write(work, "x.txt", b"version 1")
    catalog.put("x.txt", RUN)
    local.write_bytes(b"version 2")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(magnus.catalog.copying.os, "replace", broken_replace)
    with pytest.raises(CatalogError, match="disk on fire"):
        catalog.put("x.txt", RUN)
    monkeypatch.undo()

    assert tree(store) == [f"{RUN}/x.txt"]
    assert (store / RUN / "x.txt").read_bytes() == b"version 1"


def test_an_interrupted_copy_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path, "source.bin", os.urandom(3 * CHUNK_SIZE))
    calls = 0
    real_sha256 = hashlib.sha256

    class Interrupting:
        def __init__(self) -> None:
            self.inner = real_sha256()

        def update(self, data: memoryview) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise KeyboardInterrupt
            self.inner.update(data)

    monkeypatch.setattr(magnus.catalog.copying.hashlib, "sha256", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        copy_with_hash(source, tmp_path / "out" / "dest.bin")

    assert list((tmp_path / "out").iterdir()) == []


def test_copy_of_a_missing_source_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        copy_with_hash(tmp_path / "missing", tmp_path / "out" / "dest")

    assert not (tmp_path / "out").exists()


def test_copy_keeps_permission_bits(tmp_path: Path) -> None:
    source = write(tmp_path, "script.sh", b"#!/bin/sh\necho hi\n")
    source.chmod(0o751)

    copy_with_hash(source, tmp_path / "copy.sh")

    assert stat.S_IMODE((tmp_path / "copy.sh").stat().st_mode) == 0o751


def test_copy_gives_the_source_bits_the_umask_would_take(tmp_path: Path) -> None:
    source = write(tmp_path, "shared.txt", b"everyone writes\n")
    source.chmod(0o666)
    previous = os.umask(0o077)
    try:
        copy_with_hash(source, tmp_path / "copy.txt")
    finally:
        os.umask(previous)

    assert stat.S_IMODE((tmp_path / "copy.txt").stat().st_mode) == 0o666


def test_copy_falls_back_to_user_space_where_sendfile_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = os.urandom(2 * CHUNK_SIZE + 17)
    source = write(tmp_path, "source.bin", content)

    def refuse(*_args: object) -> int:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(magnus.catalog.copying.os, "sendfile", refuse, raising=False)
    monkeypatch.setattr(magnus.catalog.copying, "_SENDFILE", True)

    assert copy_with_hash(source, tmp_path / "copy.bin") == sha256(content)
    assert (tmp_path / "copy.bin").read_bytes() == content


class _Counted:
    """Counts the calls of one ``os`` function the copies make (all else goes through)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        self.real = getattr(os, name)

        def counted(*args: object, **kwargs: object) -> object:
            self.calls += 1
            return self.real(*args, **kwargs)

        monkeypatch.setattr(magnus.catalog.copying.os, name, counted)


@pytest.mark.skipif(
    not magnus.catalog.copying._UNNAMED_FILES, reason="no unnamed files (O_TMPFILE) here"
)
def test_a_put_and_get_of_new_files_give_each_copy_one_name_and_read_each_byte_once(
    catalog: FileSystemCatalog, work: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a copy of a small file costs is the names it creates: one per copy, no temporary
    # name renamed into place; and one hashing read of what was written.
    contents = {f"data/part-{number:02d}.bin": os.urandom(100 + number) for number in range(20)}
    for name, content in contents.items():
        write(work, name, content)
    links, renames = _Counted(monkeypatch, "link"), _Counted(monkeypatch, "replace")
    hashed: list[int] = []
    real_hash = magnus.catalog.copying._hash_stream

    def counting_hash(reader: io.FileIO, size_hint: int = CHUNK_SIZE) -> str:
        hashed.append(os.fstat(reader.fileno()).st_size)
        return real_hash(reader, size_hint)

    monkeypatch.setattr(magnus.catalog.copying, "_hash_stream", counting_hash)

    put = catalog.put("data/*", RUN)
    for name in contents:
        (work / name).unlink()
    got = catalog.get("data/*", RUN)

    assert (links.calls, renames.calls) == (2 * len(contents), 0)
    assert sorted(hashed) == sorted(2 * [len(content) for content in contents.values()])
    assert {record.name: record.data_hash for record in put} == {
        name: sha256(content) for name, content in contents.items()
    }
    assert [record.data_hash for record in got] == [record.data_hash for record in put]
    assert {name: (work / name).read_bytes() for name in contents} == contents
    assert not [path for path in tree(store / RUN) if "partial" in path]


def test_copy_through_a_named_temporary_file_where_unnamed_files_are_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(magnus.catalog.copying, "_UNNAMED_FILES", False)
    renames = _Counted(monkeypatch, "replace")
    content = os.urandom(1000)
    source = write(tmp_path, "source.bin", content)

    assert copy_with_hash(source, tmp_path / "out" / "copy.bin") == sha256(content)
    assert renames.calls == 1
    assert tree(tmp_path / "out") == ["copy.bin"]


@pytest.mark.skipif(
    not magnus.catalog.copying._UNNAMED_FILES, reason="no unnamed files (O_TMPFILE) here"
)
def test_a_copy_whose_target_appears_meanwhile_replaces_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = os.urandom(1000)
    source = write(tmp_path, "source.bin", content)
    target = tmp_path / "out" / "copy.bin"
    real_link = os.link

    def another_writer_first(src: str, dst: str, **kwargs: object) -> None:
        if Path(dst) == target and not target.exists():
            target.write_bytes(b"the other writer's")
        real_link(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(magnus.catalog.copying.os, "link", another_writer_first)

    assert copy_with_hash(source, target) == sha256(content)
    assert target.read_bytes() == content
    assert tree(tmp_path / "out") == ["copy.bin"]


# ------------------------------------------------------------------------------------------------
# copying over an existing destination
# ------------------------------------------------------------------------------------------------


def test_identical_destination_is_left_untouched(tmp_path: Path) -> None:
    content = os.urandom(2 * CHUNK_SIZE + 3)
    source = write(tmp_path, "source.bin", content)
    target = write(tmp_path, "out/target.bin", content)
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    before = target.stat()

    assert copy_with_hash(source, target) == sha256(content)

    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, 1_000_000_000)
    assert [p.name for p in target.parent.iterdir()] == ["target.bin"]


@pytest.mark.parametrize(
    "where", [0, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 2], ids=lambda w: f"byte-{w}"
)
def test_same_size_destination_differing_anywhere_is_replaced(tmp_path: Path, where: int) -> None:
    content = os.urandom(2 * CHUNK_SIZE + 3)
    changed = bytearray(content)
    changed[where] ^= 0xFF
    source = write(tmp_path, "source.bin", content)
    target = write(tmp_path, "target.bin", bytes(changed))

    assert copy_with_hash(source, target) == sha256(content)
    assert target.read_bytes() == content


def test_destination_with_other_permission_bits_is_replaced(tmp_path: Path) -> None:
    source = write(tmp_path, "run.sh", b"#!/bin/sh\n")
    source.chmod(0o755)
    target = write(tmp_path, "out/run.sh", b"#!/bin/sh\n")
    target.chmod(0o644)

    copy_with_hash(source, target)

    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_link_to_identical_content_becomes_a_regular_file(tmp_path: Path) -> None:
    content = b"same bytes\n"
    source = write(tmp_path, "source.txt", content)
    elsewhere = write(tmp_path, "elsewhere.txt", content)
    target = tmp_path / "out" / "target.txt"
    target.parent.mkdir()
    target.symlink_to(elsewhere)

    copy_with_hash(source, target)

    assert not target.is_symlink()
    assert target.read_bytes() == content


def test_copy_onto_itself_keeps_the_content(tmp_path: Path) -> None:
    content = os.urandom(CHUNK_SIZE + 11)
    source = write(tmp_path, "self.bin", content)

    assert copy_with_hash(source, source) == sha256(content)
    assert source.read_bytes() == content


def test_get_over_an_unchanged_file_rewrites_nothing(
    catalog: FileSystemCatalog, work: Path
) -> None:
    content = os.urandom(CHUNK_SIZE + 5)
    local = write(work, "data/input.bin", content)
    [put] = catalog.put("data/input.bin", RUN)
    os.utime(local, ns=(2_000_000_000, 2_000_000_000))

    [got] = catalog.get("data/input.bin", RUN)

    assert got.data_hash == put.data_hash == sha256(content)
    assert local.stat().st_mtime_ns == 2_000_000_000


# ------------------------------------------------------------------------------------------------
# hashing
# ------------------------------------------------------------------------------------------------


def test_large_file_copy_hashes_correctly(tmp_path: Path) -> None:
    source = tmp_path / "large.bin"
    expected = hashlib.sha256()
    with source.open("wb") as handle:
        # 20 MiB and a ragged tail, so the last chunk is partial.
        for _ in range(20):
            block = os.urandom(CHUNK_SIZE)
            expected.update(block)
            handle.write(block)
        tail = os.urandom(12345)
        expected.update(tail)
        handle.write(tail)
    target = tmp_path / "copy" / "large.bin"

    assert copy_with_hash(source, target) == expected.hexdigest()
    assert file_hash(target) == expected.hexdigest()
    assert file_hash(source) == expected.hexdigest()
    assert target.stat().st_size == source.stat().st_size


def test_large_file_through_put_and_get(catalog: FileSystemCatalog, work: Path) -> None:
    content = os.urandom(20 * CHUNK_SIZE + 7)
    local = write(work, "large.bin", content)

    [put] = catalog.put("large.bin", RUN)
    local.unlink()
    [got] = catalog.get("large.bin", RUN)

    assert put.data_hash == got.data_hash == sha256(content)
    assert local.read_bytes() == content


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1])
def test_hash_at_chunk_boundaries(tmp_path: Path, size: int) -> None:
    content = os.urandom(size)
    source = write(tmp_path, "f.bin", content)

    assert file_hash(source) == sha256(content)
    assert copy_with_hash(source, tmp_path / "g.bin") == sha256(content)
    assert (tmp_path / "g.bin").read_bytes() == content


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("step.execution.log", True),
        ("execute.execution.log_10", True),
        ("nested/step.execution.log_a_b", True),
        ("data/execution.log", False),
        ("step.execution.logs", False),
        ("execution.log.d/data.txt", False),
        ("data.txt", False),
    ],
)
def test_is_execution_log(name: str, expected: bool) -> None:
    assert is_execution_log(name) is expected


# ------------------------------------------------------------------------------------------------
# de-duplication and re-runs
# ------------------------------------------------------------------------------------------------


def test_put_of_unchanged_synced_files_does_not_copy(
    catalog: FileSystemCatalog, work: Path, store: Path
) -> None:
    write(work, "data/same.txt", b"same")
    write(work, "data/changed.txt", b"before")
    catalog.put("data/*", RUN)
    synced = catalog.get("data/*", RUN)
    inode_same = (store / RUN / "data/same.txt").stat().st_ino
    inode_changed = (store / RUN / "data/changed.txt").stat().st_ino
    (work / "data/changed.txt").write_bytes(b"after")

    records = catalog.put("data/*", RUN, synced_catalogs=synced)

    # Every copy renames a new file into place, so an unchanged inode means no copy happened.
    assert (store / RUN / "data/same.txt").stat().st_ino == inode_same
    assert (store / RUN / "data/changed.txt").stat().st_ino != inode_changed
    assert (store / RUN / "data/changed.txt").read_bytes() == b"after"
    assert {r.name: r.data_hash for r in records} == {
        "data/same.txt": sha256(b"same"),
        "data/changed.txt": sha256(b"after"),
    }


def test_synced_records_of_another_run_do_not_prevent_the_copy(
    catalog: FileSystemCatalog, work: Path, store: Path
) -> None:
    write(work, "x.txt", b"x")
    catalog.put("x.txt", "first")
    synced = catalog.get("x.txt", "first")

    catalog.put("x.txt", "second", synced_catalogs=synced)

    assert (store / "second" / "x.txt").read_bytes() == b"x"


def test_sync_between_runs_on_disk(catalog: FileSystemCatalog, work: Path, store: Path) -> None:
    write(work, "top.txt", b"top")
    write(work, "a/b/deep.txt", b"deep")
    catalog.put("**/*", "first")
    log = write(work.parent, "logs/step.execution.log", b"out")
    catalog.put_file(log, "step.execution.log", "first")
    catalog.put_file(log, "fan.execution.log_3", "first")

    catalog.sync_between_runs("first", "second")

    assert tree(store / "second") == ["a/b/deep.txt", "top.txt"]
    assert tree(store / "first") == [
        "a/b/deep.txt",
        "fan.execution.log_3",
        "step.execution.log",
        "top.txt",
    ]


def test_sync_from_a_run_without_a_catalog_folder_syncs_nothing(
    catalog: FileSystemCatalog, store: Path
) -> None:
    # The original put nothing (or its catalog was never created): a re-run still starts.
    catalog.sync_between_runs("ghost", "second")
    assert not (store / "second").exists()


# ------------------------------------------------------------------------------------------------
# do-nothing
# ------------------------------------------------------------------------------------------------


def test_do_nothing_catalog(tmp_path: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    catalog = DoNothingCatalog(compute_data_folder=str(work))
    log = write(tmp_path, "step.execution.log", b"stdout")
    before = tree(tmp_path)

    assert catalog.get("*", RUN) == []
    assert catalog.put("*", RUN) == []  # even with nothing to match
    assert catalog.put("../*", RUN, synced_catalogs=[]) == []
    record = catalog.put_file(log, "step.execution.log", RUN)
    catalog.sync_between_runs("never", RUN)

    assert record.model_dump() == {
        "name": "step.execution.log",
        "data_hash": sha256(b"stdout"),
        "catalog_relative_path": "",
        "catalog_handler_location": "",
        "stage": "put",
    }
    assert catalog.location == ""
    assert tree(tmp_path) == before


def test_do_nothing_put_file_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"missing\.log"):
        DoNothingCatalog().put_file(tmp_path / "missing.log", "missing.log", RUN)
