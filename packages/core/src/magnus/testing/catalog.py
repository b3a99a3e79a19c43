"""The contract every catalog passes: subclass :class:`CatalogContract` and provide ``catalog``.

::

    import pytest
    from magnus.testing import CatalogContract

    class TestMyCatalog(CatalogContract):
        @pytest.fixture
        def catalog(self, tmp_path):
            work = tmp_path / "work"
            work.mkdir()
            return MyCatalog(compute_data_folder=str(work), bucket=fresh_bucket())

The fixture returns a fresh catalog whose ``compute_data_folder`` is an *absolute*, empty,
temporary folder and whose storage is empty and lies outside that folder. The suite writes its
files there, and uses other temporary folders for ``put_file`` sources and ``get`` destinations.
It checks only what the catalog contract promises, so a remote store passes it too.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from magnus.catalog import BaseCatalog
from magnus.exceptions import CatalogError
from magnus.runlog.models import DataCatalog

RUN = "contract-run"
OTHER_RUN = "contract-other-run"


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _work(catalog: BaseCatalog) -> Path:
    """The catalog's compute data folder, which the fixture must give as an absolute path."""
    folder = Path(catalog.compute_data_folder)
    assert folder.is_absolute(), "the catalog fixture must use an absolute compute_data_folder"
    assert folder.is_dir(), "the catalog fixture must create its compute_data_folder"
    return folder


def _names(records: list[DataCatalog]) -> list[str]:
    return sorted(record.name for record in records)


class CatalogContract:
    """Tests every catalog must pass. Subclasses provide the ``catalog`` fixture.

    The suite defines no fixture of its own (it uses only ``catalog`` and pytest's
    ``tmp_path_factory``), so it cannot shadow the fixtures of the test module it is used in.
    """

    # ---------------------------------------------------------------------------------------------
    # put and get
    # ---------------------------------------------------------------------------------------------

    def test_put_then_get_round_trip(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        local = _write(work, "data/hello.txt", b"hello")

        catalog.put("data/hello.txt", RUN)
        local.unlink()
        records = catalog.get("data/hello.txt", RUN)

        assert _names(records) == ["data/hello.txt"]
        assert local.read_bytes() == b"hello"

    def test_runs_are_kept_apart(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        local = _write(work, "data/value.txt", b"first")
        catalog.put("data/value.txt", RUN)
        local.write_bytes(b"second")
        catalog.put("data/value.txt", OTHER_RUN)
        local.unlink()

        catalog.get("data/value.txt", RUN)
        assert local.read_bytes() == b"first"
        catalog.get("data/value.txt", OTHER_RUN)
        assert local.read_bytes() == b"second"

    def test_put_again_replaces_the_stored_content(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        local = _write(work, "data.bin", b"version 1")
        catalog.put("data.bin", RUN)
        local.write_bytes(b"version 2, longer than the first")
        catalog.put("data.bin", RUN)
        local.unlink()

        [record] = catalog.get("data.bin", RUN)

        assert local.read_bytes() == b"version 2, longer than the first"
        assert record.data_hash == _sha256(b"version 2, longer than the first")

    def test_put_leaves_the_local_file(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        local = _write(work, "kept.txt", b"still here")

        catalog.put("kept.txt", RUN)

        assert local.read_bytes() == b"still here"

    def test_data_hash_is_the_sha256_of_the_content(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        content = bytes(range(256)) * 1000
        _write(work, "blob.bin", content)
        _write(work, "empty.txt", b"")

        put = catalog.put("*", RUN)
        got = catalog.get("*", RUN)

        expected = {"blob.bin": _sha256(content), "empty.txt": _sha256(b"")}
        assert {r.name: r.data_hash for r in put} == expected
        assert {r.name: r.data_hash for r in got} == expected

    def test_recursive_glob_keeps_the_folder_layout(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        work = _work(catalog)
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        _write(work, "top.txt", b"top")
        _write(work, "a/middle.txt", b"middle")
        _write(work, "a/b/c/deep.txt", b"deep")
        expected = ["a/b/c/deep.txt", "a/middle.txt", "top.txt"]

        assert _names(catalog.put("**/*", RUN)) == expected
        assert _names(catalog.get("**/*", RUN, compute_data_folder=str(elsewhere))) == expected

        assert (elsewhere / "a/b/c/deep.txt").read_bytes() == b"deep"
        assert (elsewhere / "a/middle.txt").read_bytes() == b"middle"
        assert (elsewhere / "top.txt").read_bytes() == b"top"

    def test_glob_selects_and_skips_folders(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        _write(work, "data/one.csv", b"1")
        _write(work, "data/two.csv", b"2")
        _write(work, "data/notes.txt", b"n")
        _write(work, "data/sub/three.csv", b"3")

        assert _names(catalog.put("data/*.csv", RUN)) == ["data/one.csv", "data/two.csv"]
        # "data/*" matches the folder "data/sub" too: folders are skipped, not recursed into.
        assert _names(catalog.put("data/*", OTHER_RUN)) == [
            "data/notes.txt",
            "data/one.csv",
            "data/two.csv",
        ]
        assert _names(catalog.get("data/t*.csv", RUN)) == ["data/two.csv"]

    def test_put_from_another_compute_folder(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        work = _work(catalog)
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        _write(elsewhere, "data/x.txt", b"from elsewhere")

        [record] = catalog.put("data/x.txt", RUN, compute_data_folder=str(elsewhere))
        catalog.get("data/x.txt", RUN)

        assert record.name == "data/x.txt"
        assert (work / "data/x.txt").read_bytes() == b"from elsewhere"

    def test_get_into_a_destination_folder(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        work = _work(catalog)
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        _write(work, "data/x.txt", b"x")
        catalog.put("data/x.txt", RUN)
        (work / "data/x.txt").unlink()
        destination = elsewhere / "not" / "yet" / "there"

        [record] = catalog.get("data/x.txt", RUN, compute_data_folder=str(destination))

        assert (destination / "data/x.txt").read_bytes() == b"x"
        assert not (work / "data/x.txt").exists()
        assert record.name == "data/x.txt"

    def test_records_fields(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        _write(work, "data/x.txt", b"x")

        put = catalog.put("data/x.txt", RUN)
        got = catalog.get("data/x.txt", RUN)

        for records, stage in ((put, "put"), (got, "get")):
            [record] = records
            assert isinstance(record, DataCatalog)
            assert record.name == "data/x.txt"
            assert record.stage == stage
            assert record.data_hash == _sha256(b"x")
            assert record.catalog_relative_path == f"{RUN}/data/x.txt"
            assert record.catalog_handler_location == catalog.location

    def test_records_are_json_ready(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        _write(work, "x.txt", b"x")

        [record] = catalog.put("x.txt", RUN)

        assert DataCatalog.model_validate_json(record.model_dump_json()).model_dump() == (
            record.model_dump()
        )

    # ---------------------------------------------------------------------------------------------
    # errors
    # ---------------------------------------------------------------------------------------------

    def test_put_without_a_match_fails(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        _write(work, "present.txt", b"p")

        with pytest.raises(CatalogError, match="absent"):
            catalog.put("absent*.txt", RUN)

    def test_put_of_only_folders_fails(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        (work / "just-a-folder").mkdir()

        with pytest.raises(CatalogError):
            catalog.put("just-a-folder", RUN)

    def test_get_from_a_run_with_nothing_fails(self, catalog: BaseCatalog) -> None:
        with pytest.raises(CatalogError, match="never-put"):
            catalog.get("*", "never-put")

    def test_get_without_a_match_fails(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        _write(work, "present.txt", b"p")
        catalog.put("present.txt", RUN)

        with pytest.raises(CatalogError, match="absent"):
            catalog.get("absent*.txt", RUN)

    @pytest.mark.parametrize(
        "template",
        [
            "../{outside}",
            "../*",
            "data/../../{outside}",
            "..",
            "{absolute}",
            "/*",
        ],
    )
    def test_escaping_patterns_are_refused(self, catalog: BaseCatalog, template: str) -> None:
        work = _work(catalog)
        _write(work, "data/x.txt", b"x")
        catalog.put("data/x.txt", RUN)
        # A real file beyond the folder, so that only the refusal (not a missing match) can
        # make the transfer fail.
        outside = work.parent / f"contract-outside-{work.name}.txt"
        outside.write_bytes(b"outside")
        pattern = template.format(outside=outside.name, absolute=outside)
        try:
            with pytest.raises(CatalogError, match=re.escape(pattern)):
                catalog.put(pattern, RUN)
            with pytest.raises(CatalogError, match=re.escape(pattern)):
                catalog.get(pattern, RUN)
        finally:
            outside.unlink()

    def test_absolute_pattern_inside_the_folder_is_refused(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        local = _write(work, "x.txt", b"x")

        with pytest.raises(CatalogError):
            catalog.put(str(local), RUN)

    def test_harmless_dot_dot_stays_inside(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        _write(work, "data/x.txt", b"x")

        [record] = catalog.put("data/../data/x.txt", RUN)

        assert record.name == "data/x.txt"

    # ---------------------------------------------------------------------------------------------
    # put_file and execution logs
    # ---------------------------------------------------------------------------------------------

    def test_put_file_from_any_location(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        work = _work(catalog)
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        source = _write(elsewhere, "object.pickle", b"\x80\x04pickled")

        record = catalog.put_file(source, "objects/model.pickle", RUN)
        catalog.get("objects/model.pickle", RUN)

        assert record.name == "objects/model.pickle"
        assert record.stage == "put"
        assert record.data_hash == _sha256(b"\x80\x04pickled")
        assert record.catalog_relative_path == f"{RUN}/objects/model.pickle"
        assert record.catalog_handler_location == catalog.location
        assert (work / "objects/model.pickle").read_bytes() == b"\x80\x04pickled"

    @pytest.mark.parametrize("catalog_name", ["../escape.log", "a/../../escape.log", "/abs.log"])
    def test_put_file_refuses_escaping_names(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory, catalog_name: str
    ) -> None:
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        source = _write(elsewhere, "step.log", b"log")

        with pytest.raises(CatalogError):
            catalog.put_file(source, catalog_name, RUN)

    def test_put_file_of_a_missing_file_fails(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        with pytest.raises(CatalogError):
            catalog.put_file(elsewhere / "missing.log", "missing.log", RUN)

    def test_put_data_stores_bytes_like_put_file(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        data = "log line, café\n".encode()

        record = catalog.put_data(data, "objects/step.bin", RUN)
        catalog.get("objects/step.bin", RUN)

        assert record.name == "objects/step.bin"
        assert record.stage == "put"
        assert record.data_hash == _sha256(data)
        assert record.catalog_relative_path == f"{RUN}/objects/step.bin"
        assert record.catalog_handler_location == catalog.location
        assert (work / "objects/step.bin").read_bytes() == data

    @pytest.mark.parametrize("catalog_name", ["../escape.log", "a/../../escape.log", "/abs.log"])
    def test_put_data_refuses_escaping_names(self, catalog: BaseCatalog, catalog_name: str) -> None:
        with pytest.raises(CatalogError):
            catalog.put_data(b"log", catalog_name, RUN)

    def test_get_never_returns_execution_logs(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        work = _work(catalog)
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        log = _write(elsewhere, "step.execution.log", b"stdout")
        catalog.put_file(log, "step.execution.log", RUN)
        catalog.put_file(log, "execute.execution.log_10", RUN)
        _write(work, "data.txt", b"data")
        catalog.put("data.txt", RUN)
        (work / "data.txt").unlink()

        assert _names(catalog.get("**/*", RUN)) == ["data.txt"]
        assert _names(catalog.get("*", RUN)) == ["data.txt"]
        with pytest.raises(CatalogError):
            catalog.get("*.execution.log*", RUN)
        assert not (work / "step.execution.log").exists()
        assert not (work / "execute.execution.log_10").exists()

    # ---------------------------------------------------------------------------------------------
    # re-runs and de-duplication
    # ---------------------------------------------------------------------------------------------

    def test_sync_between_runs_copies_data_but_not_execution_logs(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        work = _work(catalog)
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        _write(work, "top.txt", b"top")
        _write(work, "nested/deeper/file.txt", b"deep")
        catalog.put("**/*", RUN)
        log = _write(elsewhere, "step.execution.log", b"stdout")
        catalog.put_file(log, "step.execution.log", RUN)
        destination = elsewhere / "fetched"

        catalog.sync_between_runs(RUN, OTHER_RUN)
        records = catalog.get("**/*", OTHER_RUN, compute_data_folder=str(destination))

        assert _names(records) == ["nested/deeper/file.txt", "top.txt"]
        assert all(r.catalog_relative_path == f"{OTHER_RUN}/{r.name}" for r in records)
        assert (destination / "nested/deeper/file.txt").read_bytes() == b"deep"
        with pytest.raises(CatalogError):
            catalog.get("*.execution.log*", OTHER_RUN)

    def test_copy_from_run_copies_one_file_with_its_hash(
        self, catalog: BaseCatalog, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        # What reusing an earlier step's result does: its files, one by one, into this run.
        work = _work(catalog)
        _write(work, "model/weights [v1].bin", b"weights")
        _write(work, "model/other.bin", b"other")
        catalog.put("model/*", RUN)

        record = catalog.copy_from_run("model/weights [v1].bin", RUN, OTHER_RUN)

        assert (record.name, record.stage) == ("model/weights [v1].bin", "put")
        assert record.data_hash == _sha256(b"weights")
        assert record.catalog_relative_path == f"{OTHER_RUN}/model/weights [v1].bin"
        fetched = tmp_path_factory.mktemp("fetched")
        records = catalog.get("**/*", OTHER_RUN, compute_data_folder=str(fetched))
        assert _names(records) == ["model/weights [v1].bin"]  # only the file asked for
        assert (fetched / "model/weights [v1].bin").read_bytes() == b"weights"

    def test_copy_from_run_of_a_missing_file_fails(self, catalog: BaseCatalog) -> None:
        _write(_work(catalog), "present.txt", b"here")
        catalog.put("present.txt", RUN)
        with pytest.raises(CatalogError):
            catalog.copy_from_run("gone.txt", RUN, OTHER_RUN)
        with pytest.raises(CatalogError):
            catalog.copy_from_run("present.txt", "never-put", OTHER_RUN)

    def test_sync_from_a_run_with_nothing_syncs_nothing(self, catalog: BaseCatalog) -> None:
        # An original whose steps put nothing can still be re-run.
        catalog.sync_between_runs("never-put", RUN)
        with pytest.raises(CatalogError):
            catalog.get("*", RUN)

    def test_put_of_what_was_just_got_is_recorded(self, catalog: BaseCatalog) -> None:
        work = _work(catalog)
        _write(work, "data/x.txt", b"x")
        _write(work, "data/y.txt", b"y")
        catalog.put("data/*", RUN)
        synced = catalog.get("data/*", RUN)
        (work / "data/y.txt").write_bytes(b"y changed")

        records = catalog.put("data/*", RUN, synced_catalogs=synced)

        assert {(r.name, r.data_hash, r.stage) for r in records} == {
            ("data/x.txt", _sha256(b"x"), "put"),
            ("data/y.txt", _sha256(b"y changed"), "put"),
        }
        assert all(r.catalog_relative_path == f"{RUN}/{r.name}" for r in records)
        (work / "data/x.txt").unlink()
        (work / "data/y.txt").unlink()
        catalog.get("data/*", RUN)
        assert (work / "data/x.txt").read_bytes() == b"x"
        assert (work / "data/y.txt").read_bytes() == b"y changed"
