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

import statistics
import sys
import time

from s3_catalog import catalog_on_a_server

ROUNDS = 3
BUCKET = "bench"


def main(tool: str, path: str) -> None:
    seconds = []
    with catalog_on_a_server(BUCKET, "magnus-s3-bench-") as (catalog, client, config):
        for round_number in range(ROUNDS):
            run_id = f"{tool}-{round_number}"
            started = time.perf_counter()
            if tool == "ours":
                catalog.put(path, run_id)
            else:
                client.upload_file(path, BUCKET, f"{run_id}/{path}", Config=config)
            seconds.append(time.perf_counter() - started)
            client.delete_object(Bucket=BUCKET, Key=f"{run_id}/{path}")
    print(f'{{"seconds": {statistics.median(seconds)}}}')


if __name__ == "__main__":
    main(*sys.argv[1:])
