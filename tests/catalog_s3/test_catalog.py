"""What the S3 catalog does beyond the contract: layout, hashes, dedup, multipart, errors, faults."""

from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.children import put_from_child
from fixtures.s3_server import MotoServer, s3_client
from magnus_catalog_s3.catalog import S3Catalog
from magnus_catalog_s3.runlog import ChunkedS3RunLogStore

from magnus.catalog import FileSystemCatalog
from magnus.exceptions import CatalogError
from magnus.runlog.models import FAIL, PROCESSING

RUN = "run-1"
MIB = 1024 * 1024


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path`` in 1 MiB pieces; return their SHA-256."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        left = size
        while left:
            piece = os.urandom(min(MIB, left))
            digest.update(piece)
            handle.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def keys(server: str, bucket: str, prefix: str = "") -> list[str]:
    pages = s3_client(server).get_paginator("list_objects_v2")
    return [
        item["Key"]
        for page in pages.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]


# ------------------------------------------------------------------ layout and records


@pytest.mark.parametrize(
    ("prefix", "location", "key"),
    [
        ("", "s3://{bucket}", "run-1/data/x.txt"),
        ("team", "s3://{bucket}/team", "team/run-1/data/x.txt"),
        ("/team/catalog/", "s3://{bucket}/team/catalog", "team/catalog/run-1/data/x.txt"),
    ],
)
def test_layout_and_records(
    make_catalog: Callable[..., S3Catalog],
    work: Path,
    s3_server: str,
    s3_bucket: str,
    prefix: str,
    location: str,
    key: str,
) -> None:
    catalog = make_catalog(prefix=prefix)
    write(work, "data/x.txt", b"x")

    [record] = catalog.put("data/x.txt", RUN)

    assert catalog.location == location.format(bucket=s3_bucket)
    assert record.catalog_handler_location == catalog.location
    assert record.catalog_relative_path == "run-1/data/x.txt"
    assert keys(s3_server, s3_bucket) == [key]
    head = s3_client(s3_server).head_object(Bucket=s3_bucket, Key=key)
    assert head["Metadata"] == {"sha256": sha256(b"x")}


def test_put_and_get_of_many_files(
    make_catalog: Callable[..., S3Catalog],
    work: Path,
    tmp_path: Path,
    count_requests: Any,
) -> None:
    catalog = make_catalog()
    contents = {f"many/{i % 7}/file-{i}.txt": f"content {i}".encode() for i in range(150)}
    for name, content in contents.items():
        write(work, name, content)
    counter = count_requests(catalog.client())

    put = catalog.put("many/**/*", RUN)

    assert {r.name: r.data_hash for r in put} == {n: sha256(c) for n, c in contents.items()}
    assert counter.of("PutObject") == 150
    assert counter.of("HeadObject") == 0  # a listing showed none of them exists yet
    fetched = tmp_path / "fetched"
    got = catalog.get("many/**/*", RUN, compute_data_folder=str(fetched))
    assert {r.name: r.data_hash for r in got} == {n: sha256(c) for n, c in contents.items()}
    for name, content in contents.items():
        assert (fetched / name).read_bytes() == content
    assert not [p for p in fetched.rglob("*") if p.name.startswith(".")]


# ------------------------------------------------------------------ de-duplication


def test_unchanged_content_is_not_uploaded_again(
    make_catalog: Callable[..., S3Catalog],
    work: Path,
    s3_server: str,
    s3_bucket: str,
    count_requests: Any,
) -> None:
    catalog = make_catalog()
    write(work, "a.txt", b"same")
    write(work, "b.txt", b"bbbb")
    catalog.put("*.txt", RUN)
    client = s3_client(s3_server)
    before = client.head_object(Bucket=s3_bucket, Key=f"catalog/{RUN}/a.txt")
    counter = count_requests(catalog.client())
    time.sleep(1.1)  # LastModified has a resolution of one second

    again = catalog.put("*.txt", RUN)
    single = catalog.put_file(work / "a.txt", "a.txt", RUN)

    assert counter.uploads == 0
    after = client.head_object(Bucket=s3_bucket, Key=f"catalog/{RUN}/a.txt")
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    assert {(r.name, r.data_hash, r.stage) for r in again} == {
        ("a.txt", sha256(b"same"), "put"),
        ("b.txt", sha256(b"bbbb"), "put"),
    }
    assert single.data_hash == sha256(b"same")

    # Same size, other content: the stored hash differs, so it is uploaded.
    write(work, "b.txt", b"BBBB")
    catalog.put("*.txt", RUN)
    assert counter.of("PutObject") == 1
    assert client.get_object(Bucket=s3_bucket, Key=f"catalog/{RUN}/b.txt")["Body"].read() == (
        b"BBBB"
    )


def test_files_just_got_cost_no_request_at_all(
    make_catalog: Callable[..., S3Catalog], work: Path, count_requests: Any
) -> None:
    catalog = make_catalog()
    write(work, "data/x.txt", b"x")
    catalog.put("data/x.txt", RUN)
    synced = catalog.get("data/x.txt", RUN)
    counter = count_requests(catalog.client())

    [record] = catalog.put("data/x.txt", RUN, synced_catalogs=synced)

    assert sum(counter.calls.values()) == 0
    assert record.data_hash == sha256(b"x")


# ------------------------------------------------------------------ large files


def test_multipart_round_trip_of_a_20_mb_file(
    make_catalog: Callable[..., S3Catalog],
    work: Path,
    tmp_path: Path,
    s3_server: str,
    s3_bucket: str,
    count_requests: Any,
) -> None:
    catalog = make_catalog(multipart_threshold_mb=5, multipart_chunksize_mb=5, max_concurrency=3)
    expected = random_file(work / "big.bin", 20 * MIB + 123)
    counter = count_requests(catalog.client())

    [put] = catalog.put("big.bin", RUN)

    assert put.data_hash == expected
    assert counter.of("CreateMultipartUpload") == 1
    assert counter.of("UploadPart") == 5  # 4 parts of 5 MiB and the rest
    client = s3_client(s3_server)
    head = client.head_object(Bucket=s3_bucket, Key=f"catalog/{RUN}/big.bin")
    assert head["ETag"].endswith('-5"')
    # Hashed while it was sent: the hash is recorded beside the object, for its ETag and size.
    record = client.get_object(Bucket=s3_bucket, Key=f"catalog/{RUN}/big.bin.magnus-sha256")
    assert json.loads(record["Body"].read()) == {
        "sha256": expected,
        "etag": head["ETag"],
        "size": 20 * MIB + 123,
    }

    fetched = tmp_path / "fetched"
    [got] = catalog.get("big.bin", RUN, compute_data_folder=str(fetched))

    assert got.data_hash == expected
    assert file_sha256(fetched / "big.bin") == expected
    assert counter.of("GetObject") == 1 + 5  # the hash record, then ranged, in parallel
    assert os.listdir(fetched) == ["big.bin"]


def test_sync_between_runs_copies_server_side(
    make_catalog: Callable[..., S3Catalog],
    work: Path,
    tmp_path: Path,
    s3_server: str,
    s3_bucket: str,
    count_requests: Any,
) -> None:
    catalog = make_catalog(multipart_threshold_mb=5, multipart_chunksize_mb=5)
    large = random_file(work / "large.bin", 11 * MIB)
    write(work, "small/a.txt", b"a")
    catalog.put("**/*", RUN)
    catalog.put_file(write(tmp_path, "s.execution.log", b"log"), "s.execution.log", RUN)
    counter = count_requests(catalog.client())

    catalog.sync_between_runs(RUN, "run-2")

    # No content passes through this process: the one GET is the large object's hash record.
    assert counter.uploads == 0 and counter.of("GetObject") == 1
    assert counter.of("CopyObject") + counter.of("UploadPartCopy") >= 2
    assert sorted(keys(s3_server, s3_bucket, "catalog/run-2/")) == [
        "catalog/run-2/large.bin",
        "catalog/run-2/small/a.txt",
    ]
    client = s3_client(s3_server)
    for name, expected in (("large.bin", large), ("small/a.txt", sha256(b"a"))):
        head = client.head_object(Bucket=s3_bucket, Key=f"catalog/run-2/{name}")
        assert head["Metadata"]["sha256"] == expected
    [record] = catalog.get("large.bin", "run-2", compute_data_folder=str(tmp_path / "out"))
    assert record.data_hash == large


def test_a_large_file_hashed_as_it_is_sent_is_read_back_reused_and_copied(
    make_catalog: Callable[..., S3Catalog],
    work: Path,
    tmp_path: Path,
    s3_server: str,
    s3_bucket: str,
    count_requests: Any,
) -> None:
    catalog = make_catalog(multipart_threshold_mb=5, multipart_chunksize_mb=5, max_concurrency=3)
    expected = random_file(work / "big.bin", 12 * MIB + 7)
    write(work, "small.txt", b"small")
    catalog.put("*", RUN)
    assert sorted(keys(s3_server, s3_bucket)) == [
        f"catalog/{RUN}/big.bin",
        f"catalog/{RUN}/big.bin.magnus-sha256",
        f"catalog/{RUN}/small.txt",
    ]
    counter = count_requests(catalog.client())

    # Unchanged: recognised by the recorded hash, one file or many, and not sent again.
    [single] = catalog.put("big.bin", RUN)
    both = catalog.put("*", RUN)
    # The record is never data: not matched by a get, not copied to another run.
    got = catalog.get("**/*", RUN, compute_data_folder=str(tmp_path / "out"))
    copied = catalog.copy_from_run("big.bin", RUN, "run-2")
    catalog.sync_between_runs(RUN, "run-3")

    assert counter.uploads == 0
    assert single.data_hash == expected
    assert {r.name: r.data_hash for r in both} == {
        "big.bin": expected,
        "small.txt": sha256(b"small"),
    }
    assert {r.name: r.data_hash for r in got} == {
        "big.bin": expected,
        "small.txt": sha256(b"small"),
    }
    assert file_sha256(tmp_path / "out" / "big.bin") == expected
    assert copied.data_hash == expected
    assert keys(s3_server, s3_bucket, "catalog/run-2/") == ["catalog/run-2/big.bin"]
    assert sorted(keys(s3_server, s3_bucket, "catalog/run-3/")) == [
        "catalog/run-3/big.bin",
        "catalog/run-3/small.txt",
    ]
    # A copy is a new object: it carries the hash in its metadata.
    client = s3_client(s3_server)
    for run in ("run-2", "run-3"):
        head = client.head_object(Bucket=s3_bucket, Key=f"catalog/{run}/big.bin")
        assert head["Metadata"] == {"sha256": expected}


_KILLED_BEFORE_THE_RECORD = """
import os, signal, sys
from magnus_catalog_s3.catalog import S3Catalog

endpoint, bucket, folder = sys.argv[1:]
catalog = S3Catalog(
    bucket=bucket, prefix="catalog", endpoint_url=endpoint, region="us-east-1",
    multipart_threshold_mb=5, multipart_chunksize_mb=5, compute_data_folder=folder,
)

def die(params, **_):
    if params["Key"].endswith(".magnus-sha256"):
        os.kill(os.getpid(), signal.SIGKILL)

catalog.client().meta.events.register("before-parameter-build.s3.PutObject", die)
catalog.put("big.bin", "run-1")
"""


def test_a_put_killed_before_its_hash_is_recorded_leaves_no_wrong_hash(
    make_catalog: Callable[..., S3Catalog],
    work: Path,
    tmp_path: Path,
    s3_server: str,
    s3_bucket: str,
    count_requests: Any,
) -> None:
    catalog = make_catalog(multipart_threshold_mb=5, multipart_chunksize_mb=5)
    first = random_file(work / "big.bin", 6 * MIB)
    catalog.put("big.bin", RUN)
    # Another size: nothing to compare with, so it is hashed as it is sent.
    second = random_file(work / "big.bin", 7 * MIB)

    # A process killed once the upload is complete, before it records the new hash.
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_THE_RECORD, s3_server, s3_bucket, str(work)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    key = f"catalog/{RUN}/big.bin"
    client = s3_client(s3_server)
    stale = json.loads(
        client.get_object(Bucket=s3_bucket, Key=f"{key}.magnus-sha256")["Body"].read()
    )
    assert stale["sha256"] == first  # the record still describes the object it replaced
    # Readers find no hash for the new object, never the stale one.
    with pytest.raises(CatalogError, match="no stored sha256"):
        catalog.copy_from_run("big.bin", RUN, "run-2")
    [got] = catalog.get("big.bin", RUN, compute_data_folder=str(tmp_path / "out"))
    assert got.data_hash == second == file_sha256(tmp_path / "out" / "big.bin")
    # A put of the same file does not take the object for unchanged: it is sent again.
    counter = count_requests(catalog.client())
    [put] = catalog.put("big.bin", RUN)
    assert counter.of("UploadPart") == 2
    assert put.data_hash == second
    assert catalog.copy_from_run("big.bin", RUN, "run-2").data_hash == second


def test_names_of_hash_records_are_refused(
    make_catalog: Callable[..., S3Catalog], work: Path
) -> None:
    catalog = make_catalog()
    write(work, "x.magnus-sha256", b"x")

    with pytest.raises(CatalogError, match=r"'x\.magnus-sha256'.*keeps hashes"):
        catalog.put("*", RUN)
    with pytest.raises(CatalogError, match=r"'y\.magnus-sha256'.*keeps hashes"):
        catalog.put_data(b"y", "y.magnus-sha256", RUN)


# ------------------------------------------------------------------ what get checks


def test_get_refuses_content_that_does_not_match_its_hash(
    make_catalog: Callable[..., S3Catalog], work: Path, s3_server: str, s3_bucket: str
) -> None:
    catalog = make_catalog()
    write(work, "data/x.txt", b"original")
    catalog.put("data/x.txt", RUN)
    key = f"catalog/{RUN}/data/x.txt"
    # Someone replaces the content but not the recorded hash.
    s3_client(s3_server).put_object(
        Bucket=s3_bucket, Key=key, Body=b"tampered", Metadata={"sha256": sha256(b"original")}
    )
    (work / "data/x.txt").unlink()

    with pytest.raises(CatalogError, match="SHA-256") as caught:
        catalog.get("data/x.txt", RUN)

    assert f"s3://{s3_bucket}/{key}" in str(caught.value)
    assert os.listdir(work / "data") == []  # neither the file nor a partial download


def test_get_over_unchanged_files_downloads_nothing(
    make_catalog: Callable[..., S3Catalog], work: Path, count_requests: Any
) -> None:
    catalog = make_catalog()
    same = write(work, "data/same.txt", b"unchanged")
    changed = write(work, "data/changed.txt", b"before")
    catalog.put("data/*", RUN)
    os.utime(same, ns=(1_000_000_000, 1_000_000_000))
    changed.write_bytes(b"after!")  # same size, other content
    counter = count_requests(catalog.client())

    records = catalog.get("data/*", RUN)

    assert [r.name for r in records] == ["data/changed.txt", "data/same.txt"]
    assert {r.name: r.data_hash for r in records} == {
        "data/changed.txt": sha256(b"before"),
        "data/same.txt": sha256(b"unchanged"),
    }
    assert counter.of("GetObject") == 1  # only the changed file
    assert same.stat().st_mtime_ns == 1_000_000_000
    assert changed.read_bytes() == b"before"


def test_objects_from_elsewhere_are_hashed_on_get(
    make_catalog: Callable[..., S3Catalog], work: Path, s3_server: str, s3_bucket: str
) -> None:
    catalog = make_catalog()
    client = s3_client(s3_server)
    client.put_object(Bucket=s3_bucket, Key=f"catalog/{RUN}/external.csv", Body=b"1,2\n")
    client.put_object(Bucket=s3_bucket, Key=f"catalog/{RUN}/empty.txt", Body=b"")
    client.put_object(Bucket=s3_bucket, Key=f"catalog/{RUN}/folder/", Body=b"")

    records = catalog.get("**/*", RUN)

    assert {r.name: r.data_hash for r in records} == {
        "external.csv": sha256(b"1,2\n"),
        "empty.txt": sha256(b""),
    }
    assert (work / "empty.txt").read_bytes() == b""


def test_keys_that_would_escape_the_destination_are_refused(
    make_catalog: Callable[..., S3Catalog], work: Path, s3_server: str, s3_bucket: str
) -> None:
    catalog = make_catalog()
    s3_client(s3_server).put_object(
        Bucket=s3_bucket, Key=f"catalog/{RUN}/a/../../escaped.txt", Body=b"x"
    )
    if keys(s3_server, s3_bucket) != [f"catalog/{RUN}/a/../../escaped.txt"]:
        pytest.skip("the server normalised the key; nothing can escape")

    with pytest.raises(CatalogError, match="outside"):
        catalog.get("**/*", RUN)

    assert not (work.parent / "escaped.txt").exists()


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "**/*",
        "data/*",
        "data/*.csv",
        "**/*.csv",
        "data/**/*.csv",
        "data/?.csv",
        "data/[ab].csv",
        "data/[!a].csv",
        "*/sub/*",
        "**/sub/**/*",
        "data",
        "data/**",
        "**",
        ".hidden",
        "*.txt",
        "data/sub/deeper/x.csv",
    ],
)
def test_glob_patterns_match_what_the_file_system_catalog_matches(
    make_catalog: Callable[..., S3Catalog], work: Path, tmp_path: Path, pattern: str
) -> None:
    for name in (
        "top.txt",
        ".hidden",
        "data/a.csv",
        "data/b.csv",
        "data/c.csv",
        "data/ab.csv",
        "data/notes.txt",
        "data/sub/x.csv",
        "data/sub/deeper/x.csv",
        "other/sub/y.txt",
    ):
        write(work, name, name.encode())
    file_system = FileSystemCatalog(
        catalog_location=str(tmp_path / "fs-catalog"), compute_data_folder=str(work)
    )
    s3 = make_catalog()
    file_system.put("**/*", RUN)
    s3.put("**/*", RUN)

    def names(catalog: Any) -> list[str] | str:
        try:
            records = catalog.get(pattern, RUN, compute_data_folder=str(tmp_path / "out"))
        except CatalogError:
            return "CatalogError"
        return sorted(record.name for record in records)

    assert names(s3) == names(file_system)


# ------------------------------------------------------------------ errors


def test_a_missing_bucket_is_named(
    make_catalog: Callable[..., S3Catalog], work: Path, s3_bucket: str
) -> None:
    catalog = make_catalog(bucket="no-such-bucket-here")
    write(work, "x.txt", b"x")

    with pytest.raises(CatalogError) as put_error:
        catalog.put("x.txt", RUN)
    with pytest.raises(CatalogError) as get_error:
        catalog.get("x.txt", RUN)

    message = str(put_error.value)
    assert "'no-such-bucket-here' does not exist" in message
    assert "s3://no-such-bucket-here/catalog/run-1/x.txt" in message
    assert "'no-such-bucket-here' does not exist" in str(get_error.value)
    assert "s3://no-such-bucket-here/catalog/run-1/" in str(get_error.value)


def test_an_unreachable_endpoint_is_named(work: Path, s3_env: None) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    catalog = S3Catalog(
        bucket="some-bucket",
        endpoint_url=f"http://127.0.0.1:{port}",
        max_attempts=2,
        connect_timeout=2,
        compute_data_folder=str(work),
    )
    write(work, "x.txt", b"x")

    started = time.monotonic()
    with pytest.raises(CatalogError) as caught:
        catalog.put("x.txt", RUN)

    message = str(caught.value)
    assert "s3://some-bucket/run-1/x.txt" in message
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in message
    assert time.monotonic() - started < 30


@pytest.fixture
def auth_server(
    moto_server_factory: Callable[..., MotoServer],
) -> tuple[MotoServer, dict[str, str]]:
    """A server that checks credentials, with a bucket and a user that has no permissions.

    moto lets the first N requests through unchecked: here the bucket, the user and its key.
    """
    import boto3

    server = moto_server_factory({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    s3_client(server.url).create_bucket(Bucket="guarded")
    iam = boto3.client(
        "iam",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_user(UserName="no-permissions")
    key = iam.create_access_key(UserName="no-permissions")["AccessKey"]
    return server, {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def test_denied_access_is_named(
    auth_server: tuple[MotoServer, dict[str, str]],
    work: Path,
    s3_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, key = auth_server
    # A real user without any policy: S3 answers AccessDenied (403 to a HEAD, which has no body).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["secret"])
    catalog = S3Catalog(
        bucket="guarded", endpoint_url=server.url, max_attempts=2, compute_data_folder=str(work)
    )
    write(work, "x.txt", b"x")

    with pytest.raises(CatalogError) as put_error:
        catalog.put("x.txt", RUN)
    with pytest.raises(CatalogError) as get_error:
        catalog.get("x.txt", RUN)

    assert "'x.txt'" in str(put_error.value)
    assert "s3://guarded/run-1/x.txt" in str(put_error.value)
    assert "access denied (403" in str(put_error.value)
    assert "s3://guarded/run-1/" in str(get_error.value)
    assert "access denied (" in str(get_error.value)


def test_unknown_credentials_are_named(
    auth_server: tuple[MotoServer, dict[str, str]],
    work: Path,
    s3_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, _ = auth_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
    catalog = S3Catalog(
        bucket="guarded", endpoint_url=server.url, max_attempts=2, compute_data_folder=str(work)
    )
    write(work, "x.txt", b"x")

    with pytest.raises(CatalogError) as caught:
        catalog.get("*", RUN)

    assert "access denied (InvalidAccessKeyId" in str(caught.value)
    assert "s3://guarded/run-1/" in str(caught.value)


def test_no_credentials_at_all_is_named(
    make_catalog: Callable[..., S3Catalog], work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    catalog = make_catalog()
    write(work, "x.txt", b"x")

    with pytest.raises(CatalogError, match="no AWS credentials found"):
        catalog.put("x.txt", RUN)


# ------------------------------------------------------------------ faults


def test_server_killed_mid_transfer_fails_the_transfer_not_the_run_log(
    moto_server_factory: Callable[..., MotoServer],
    make_store: Callable[..., ChunkedS3RunLogStore],
    work: Path,
    s3_env: None,
) -> None:
    doomed = moto_server_factory()
    s3_client(doomed.url).create_bucket(Bucket="doomed")
    catalog = S3Catalog(
        bucket="doomed",
        endpoint_url=doomed.url,
        max_attempts=2,
        multipart_threshold_mb=5,
        multipart_chunksize_mb=5,
        max_concurrency=1,
        compute_data_folder=str(work),
    )
    random_file(work / "big.bin", 30 * MIB)
    parts: list[int] = []

    def kill_after_first_part(**kwargs: Any) -> None:
        parts.append(1)
        if len(parts) == 1:
            doomed.kill()

    catalog.client().meta.events.register("after-call.s3.UploadPart", kill_after_first_part)
    # The run log lives elsewhere (the session's server), as it would in a real deployment.
    store = make_store()
    store.create_run_log(RUN)
    step = store.create_step_log("produce", "produce")
    step.status = PROCESSING
    store.add_step_log(step, RUN)

    started = time.monotonic()
    with pytest.raises(CatalogError) as caught:
        catalog.put("big.bin", RUN)

    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "s3://doomed/run-1/big.bin" in message
    assert "cannot reach the S3 endpoint" in message or "stopped answering" in message
    assert len(parts) == 1
    # The executor records the failure; the run log stays whole and readable.
    step.status = FAIL
    step.message = message
    store.add_step_log(step, RUN)
    stored = store.get_run_log_by_id(RUN)
    assert stored.steps["produce"].status == FAIL
    assert "s3://doomed/run-1/big.bin" in stored.steps["produce"].message


def test_server_killed_during_get_leaves_no_partial_file(
    moto_server_factory: Callable[..., MotoServer], work: Path, tmp_path: Path, s3_env: None
) -> None:
    doomed = moto_server_factory()
    s3_client(doomed.url).create_bucket(Bucket="doomed")
    catalog = S3Catalog(
        bucket="doomed",
        endpoint_url=doomed.url,
        max_attempts=2,
        multipart_threshold_mb=5,
        multipart_chunksize_mb=5,
        max_concurrency=1,
        compute_data_folder=str(work),
    )
    random_file(work / "big.bin", 20 * MIB)
    catalog.put("big.bin", RUN)
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    (fetched / "big.bin").write_bytes(b"previous content")
    catalog.client().meta.events.register("after-call.s3.GetObject", lambda **_: doomed.kill())

    with pytest.raises(CatalogError) as caught:
        catalog.get("big.bin", RUN, compute_data_folder=str(fetched))

    assert "s3://doomed/run-1/big.bin" in str(caught.value)
    assert os.listdir(fetched) == ["big.bin"]
    assert (fetched / "big.bin").read_bytes() == b"previous content"


# ------------------------------------------------------------------ clients and processes


def test_the_client_is_made_once_and_never_pickled(
    make_catalog: Callable[..., S3Catalog], work: Path, tmp_path: Path
) -> None:
    catalog = make_catalog()
    client = catalog.client()
    assert catalog.client() is client

    restored = pickle.loads(pickle.dumps(catalog))
    duplicate = copy.deepcopy(catalog)
    changed = catalog.model_copy(update={"max_attempts": 3})

    assert restored == catalog and duplicate == catalog
    for other in (restored, duplicate, changed):
        assert other.client() is not client
    assert catalog.model_copy().client() is client  # same settings, same process
    assert len(pickle.dumps(catalog)) < 2000

    context = multiprocessing.get_context("spawn")
    process = context.Process(target=put_from_child, args=(catalog, str(tmp_path), RUN))
    process.start()
    process.join(120)
    assert process.exitcode == 0
    [record] = catalog.get("child.txt", RUN)
    assert (work / "child.txt").read_text() == "from the child"
    assert record.data_hash == sha256(b"from the child")
