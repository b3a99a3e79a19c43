"""The file-system catalog's stat cache of hashes: unchanged files are never read twice."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

import magnus.catalog.copying
from magnus.catalog import CHUNK_SIZE, FileSystemCatalog
from magnus.catalog.hash_cache import CACHE_FILE, HashCache

RUN = "run-1"
# Far enough in the past that a file's stat can be trusted (not "racily" recent).
AN_HOUR_AGO_NS = 3600 * 10**9


def _age(path: Path, by_ns: int = AN_HOUR_AGO_NS) -> None:
    moment = os.stat(path).st_mtime_ns - by_ns
    os.utime(path, ns=(moment, moment))


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path | int]:
    """What was hashed, in order: a file's path, or its descriptor for a catalog's new copy."""
    calls: list[Path | int] = []
    real = magnus.catalog.copying._hash_stream

    def counting(reader: io.FileIO, size_hint: int = CHUNK_SIZE) -> str:
        calls.append(reader.name if isinstance(reader.name, int) else Path(reader.name))
        return real(reader, size_hint)

    monkeypatch.setattr(magnus.catalog.copying, "_hash_stream", counting)
    return calls


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    for number in range(3):
        path = folder / "data" / f"f{number}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100 + bytes([number]))
        _age(path)
    return folder


def _catalog(tmp_path: Path, work: Path) -> FileSystemCatalog:
    return FileSystemCatalog(
        catalog_location=str(tmp_path / "catalog"), compute_data_folder=str(work)
    )


def test_putting_unchanged_files_again_reads_none_of_them(
    tmp_path: Path, work: Path, hashed: list[Path | int]
) -> None:
    catalog = _catalog(tmp_path, work)
    first = catalog.put("data/*", RUN)
    assert (tmp_path / "catalog" / CACHE_FILE).is_file()
    assert len(hashed) == 3
    hashed.clear()
    # A second put (a re-run, say) of the same files into the same run: nothing to read.
    again = catalog.put("data/*", RUN, synced_catalogs=first)
    assert hashed == []
    assert [record.data_hash for record in again] == [record.data_hash for record in first]


def test_a_changed_file_of_the_same_size_is_hashed_again(
    tmp_path: Path, work: Path, hashed: list[Path | int]
) -> None:
    catalog = _catalog(tmp_path, work)
    first = catalog.put("data/*", RUN)
    hashed.clear()
    changed = work / "data" / "f1.csv"
    changed.write_bytes(b"y" * 100 + b"\x01")
    _age(changed, AN_HOUR_AGO_NS // 2)
    again = catalog.put("data/*", RUN, synced_catalogs=first)
    # The changed file, then its new copy in the catalog; the others are not read.
    assert hashed[0] == changed.resolve()
    assert len(hashed) == 2 and isinstance(hashed[1], int)
    hashes = {Path(record.name).name: record.data_hash for record in again}
    assert hashes["f1.csv"] == hashlib.sha256(changed.read_bytes()).hexdigest()
    assert (tmp_path / "catalog" / RUN / "data" / "f1.csv").read_bytes() == changed.read_bytes()


def test_a_recently_modified_file_is_not_trusted(tmp_path: Path, hashed: list[Path | int]) -> None:
    cache = HashCache(tmp_path / CACHE_FILE)
    path = tmp_path / "fresh.txt"
    path.write_bytes(b"fresh")
    cache.file_hash(path)
    cache.file_hash(path)
    # Its stat could stay the same through another write in the same tick: read each time.
    assert hashed == [path, path]


@pytest.mark.parametrize("content", [b"{not json", b'{"a": [1, 2]}', b"[1]", b"\xff\xfe"])
def test_a_corrupt_cache_is_ignored_and_rebuilt(
    tmp_path: Path, hashed: list[Path | int], content: bytes
) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"data")
    _age(path)
    (tmp_path / CACHE_FILE).write_bytes(content)
    digest = HashCache(tmp_path / CACHE_FILE).file_hash(path)
    assert digest == hashlib.sha256(b"data").hexdigest()
    cache = HashCache(tmp_path / CACHE_FILE)
    cache.file_hash(path)
    cache.save()
    assert HashCache(tmp_path / CACHE_FILE).file_hash(path) == digest
    assert hashed == [path, path]


def test_a_file_got_unchanged_is_known_to_the_cache(
    tmp_path: Path, work: Path, hashed: list[Path | int]
) -> None:
    catalog = _catalog(tmp_path, work)
    catalog.put("data/*", RUN)
    (tmp_path / "catalog" / CACHE_FILE).unlink()
    hashed.clear()
    # Getting into a folder already holding the same bytes leaves the files untouched.
    got = catalog.get("data/f0.csv", RUN)
    target = (work / "data" / "f0.csv").resolve()
    assert HashCache(tmp_path / "catalog" / CACHE_FILE).file_hash(target) == got[0].data_hash
    assert hashed == []


def test_the_catalog_reads_its_cache_again_only_when_another_process_replaced_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    catalog = FileSystemCatalog(
        catalog_location=str(tmp_path / "catalog"), compute_data_folder=str(work)
    )
    for name in ("a.txt", "b.txt"):
        (work / name).write_text(name)
        _age(work / name)
    catalog.put("*.txt", RUN)
    cache_file = tmp_path / "catalog" / CACHE_FILE
    reads: list[str] = []
    real_open = open

    def counting_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(cache_file):
            reads.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", counting_open)
    for _ in range(3):
        assert catalog.compute_data_hash("a.txt") == hashlib.sha256(b"a.txt").hexdigest()
        assert catalog.compute_data_hash("b.txt") == hashlib.sha256(b"b.txt").hexdigest()
    assert reads == []  # what the put wrote is what this catalog holds: nothing to read

    other = HashCache(cache_file)  # another process adds an entry and replaces the file
    (work / "c.txt").write_text("c")
    _age(work / "c.txt")
    other.file_hash((work / "c.txt").resolve())
    other.save()
    assert catalog.compute_data_hash("c.txt") == hashlib.sha256(b"c").hexdigest()
    assert reads == [str(cache_file)] * 2  # the other process read it once, this catalog once
