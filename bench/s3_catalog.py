"""Benchmark: the ``s3`` catalog against raw boto3 on a moto server it starts (not run in CI).

    python bench/s3_catalog.py [--large-mb 200] [--files 1000] [--rounds 2]

Puts and gets one large file and many small files through ``S3Catalog`` and through plain
``upload_file``/``download_file`` with the same client and TransferConfig, alternating which goes
first in each round, and prints the median of each. What the catalog does on top of boto3: the
SHA-256 of each file (a large one hashed as it is sent and its hash then stored beside it, a small
one hashed before), a listing and HEADs for de-duplication and hash checks, a hash pass after
download and a rename into place. Each round uses fresh keys, so the catalog's
de-duplication never skips an upload. Needs ``pip install -e 'packages/catalog-s3[testing]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from magnus_catalog_s3.catalog import S3Catalog

MIB = 1024 * 1024


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(folder / "moto.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit(f"moto did not start:\n{(folder / 'moto.log').read_text()[-4000:]}")


@contextlib.contextmanager
def catalog_on_a_server(bucket: str, prefix: str) -> Iterator[tuple[S3Catalog, Any, Any]]:
    """A fresh moto server on this machine and the ``s3`` catalog on ``bucket`` there, with its
    defaults (what a user who configures nothing gets): ``(catalog, its client, its transfer
    config)``. The connection and credentials are set up before anything is timed."""
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        server, url = start_server(Path(scratch))
        try:
            catalog = S3Catalog(bucket=bucket, endpoint_url=url, region="us-east-1")
            client = catalog.client()
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="warm-up", Body=b"")
            yield catalog, client, catalog.transfer_config()
        finally:
            server.terminate()
            server.wait(10)


def raw_put(client: Any, config: Any, paths: list[Path], prefix: str) -> None:
    for path in paths:
        client.upload_file(str(path), "bench", f"{prefix}/{path.name}", Config=config)


def raw_get(client: Any, config: Any, paths: list[Path], prefix: str, out: Path) -> None:
    for path in paths:
        client.download_file("bench", f"{prefix}/{path.name}", str(out / path.name), Config=config)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--small-kb", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    work = Path(tempfile.mkdtemp(prefix="magnus-s3-bench-"))
    process, url = start_server(work)
    try:
        data = work / "data"
        (data / "small").mkdir(parents=True)
        with open(data / "large.bin", "wb") as handle:
            for _ in range(args.large_mb):
                handle.write(os.urandom(MIB))
        for i in range(args.files):
            (data / "small" / f"f{i:05d}.bin").write_bytes(os.urandom(args.small_kb * 1024))
        small = sorted((data / "small").iterdir())

        catalog = S3Catalog(
            bucket="bench",
            endpoint_url=url,
            region="us-east-1",
            compute_data_folder=str(data),
            multipart_threshold_mb=8,
            multipart_chunksize_mb=16,
            max_concurrency=4,
        )
        client = catalog.client()
        config = catalog.transfer_config()
        client.create_bucket(Bucket="bench")
        times: dict[str, list[float]] = {}

        def record(name: str, seconds: float) -> None:
            times.setdefault(name, []).append(seconds)

        for round_number in range(args.rounds):
            out = work / f"out-{round_number}"
            (out / "raw").mkdir(parents=True)
            run = f"run-{round_number}"
            raw = f"raw-{round_number}"
            pairs = [
                (
                    "large put",
                    partial(raw_put, client, config, [data / "large.bin"], raw),
                    partial(catalog.put, "large.bin", run),
                ),
                (
                    "large get",
                    partial(raw_get, client, config, [data / "large.bin"], raw, out / "raw"),
                    partial(catalog.get, "large.bin", run, str(out)),
                ),
                (
                    "small put",
                    partial(raw_put, client, config, small, f"{raw}/small"),
                    partial(catalog.put, "small/*", run),
                ),
                (
                    "small get",
                    partial(raw_get, client, config, small, f"{raw}/small", out / "raw"),
                    partial(catalog.get, "small/*", run, str(out)),
                ),
            ]
            for name, raw_action, catalog_action in pairs:
                # Alternate who goes first: the second one finds warmer caches.
                order: list[tuple[str, Callable[[], object]]] = [
                    ("raw", raw_action),
                    ("catalog", catalog_action),
                ]
                for label, action in order if round_number % 2 == 0 else reversed(order):
                    record(f"{name} {label}", timed(action))
            shutil.rmtree(out)
            # moto keeps objects in memory (large ones in temporary files): start each round empty.
            request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
            urllib.request.urlopen(request, timeout=10).close()
            client.create_bucket(Bucket="bench")

        print(
            f"\n{args.large_mb} MiB file, {args.files} files of {args.small_kb} KiB; median of "
            f"{args.rounds} rounds; moto {url} on this machine; TransferConfig 8 MiB threshold, "
            "16 MiB parts, concurrency 4\n"
        )
        print(
            f"| {'operation':<10} | {'raw boto3':>10} | {'S3Catalog':>10} | {'catalog/raw':>11} |"
        )
        print(f"|{'-' * 12}|{'-' * 12}|{'-' * 12}|{'-' * 13}|")
        for name in ("large put", "large get", "small put", "small get"):
            raw_time = statistics.median(times[f"{name} raw"])
            catalog_time = statistics.median(times[f"{name} catalog"])
            print(
                f"| {name:<10} | {raw_time:>9.2f}s | {catalog_time:>9.2f}s | "
                f"{catalog_time / raw_time:>11.2f} |"
            )
        large = args.large_mb
        print(
            f"\nlarge file: raw {large / statistics.median(times['large put raw']):.0f} / "
            f"{large / statistics.median(times['large get raw']):.0f} MiB/s, catalog "
            f"{large / statistics.median(times['large put catalog']):.0f} / "
            f"{large / statistics.median(times['large get catalog']):.0f} MiB/s (put / get)"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
