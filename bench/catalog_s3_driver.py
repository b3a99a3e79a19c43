"""Put one large file into the ``s3`` catalog, or upload it with raw boto3: the put alone, timed.

``python catalog_s3_driver.py TOOL PATH`` from the cell folder, with the interpreter of
``bench/.work/venv-s3`` (``catalog_s3_env.py``); TOOL is ``ours`` (``S3Catalog.put(PATH, ...)``)
or ``floor`` (``upload_file`` of PATH with the catalog's own client and ``TransferConfig``, so
that the difference is what the catalog does on top of boto3: the SHA-256 it stores with the
object, its de-duplication check, its records). Starts a moto server on this machine (untimed),
puts the file :data:`ROUNDS` times under fresh keys, each object deleted afterwards (untimed),
and prints ``{"seconds": ...}``: the median put.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from s3_catalog import start_server

ROUNDS = 3
BUCKET = "bench"


def main(tool: str, path: str) -> None:
    from magnus_catalog_s3.catalog import S3Catalog

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    with tempfile.TemporaryDirectory(prefix="magnus-s3-bench-") as scratch:
        server, url = start_server(Path(scratch))
        try:
            # The catalog's defaults: what a user who configures nothing gets.
            catalog = S3Catalog(bucket=BUCKET, endpoint_url=url, region="us-east-1")
            client = catalog.client()
            config = catalog.transfer_config()
            client.create_bucket(Bucket=BUCKET)
            # Connection and credentials are set up before anything is timed, for both.
            client.put_object(Bucket=BUCKET, Key="warm-up", Body=b"")
            seconds = []
            for round_number in range(ROUNDS):
                run_id = f"{tool}-{round_number}"
                started = time.perf_counter()
                if tool == "ours":
                    catalog.put(path, run_id)
                else:
                    client.upload_file(path, BUCKET, f"{run_id}/{path}", Config=config)
                seconds.append(time.perf_counter() - started)
                client.delete_object(Bucket=BUCKET, Key=f"{run_id}/{path}")
        finally:
            server.terminate()
            server.wait(10)
    print(f'{{"seconds": {statistics.median(seconds)}}}')


if __name__ == "__main__":
    main(*sys.argv[1:])
