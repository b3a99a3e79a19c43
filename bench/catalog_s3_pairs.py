"""The S3 put of (e) in pairs: ours and raw boto3 in turn, in one process, on one moto server.

    cd bench/.work/catalog-s3-put && ../venv-s3/bin/python ../../catalog_s3_pairs.py [ROUNDS]

The bench cell (``catalog_s3_driver.py``) runs each tool in a process of its own with a server of
its own; on a shared machine its medians move by more than the 10% it judges. Here every round
puts ``data/large.bin`` (made by the bench, or any file given by ``--path``) once through
``S3Catalog.put`` and once through ``upload_file`` with the catalog's own client and
``TransferConfig``, alternating which goes first, each under a fresh key deleted afterwards
(untimed). It also times the SHA-256 of the file alone: what a put that hashes before uploading
adds. Prints each median, each round, the ratio and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from s3_catalog import catalog_on_a_server

BUCKET = "bench"


def main() -> None:
    from magnus.catalog import file_hash

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", type=int, nargs="?", default=10)
    parser.add_argument("--path", default="data/large.bin", help="relative to this folder")
    args = parser.parse_args()
    path: str = args.path

    with catalog_on_a_server(BUCKET, "magnus-s3-pairs-") as (catalog, client, config):
        tools: dict[str, Callable[[str], object]] = {
            "ours": lambda run_id: catalog.put(path, run_id),
            "boto3": lambda run_id: client.upload_file(
                path, BUCKET, f"{run_id}/{path}", Config=config
            ),
        }
        seconds: dict[str, list[float]] = {name: [] for name in (*tools, "sha256")}
        load = os.getloadavg()[0]
        for round_number in range(args.rounds):
            names = list(tools) if round_number % 2 == 0 else list(reversed(tools))
            for name in names:
                run_id = f"{name}-{round_number}"
                started = time.perf_counter()
                tools[name](run_id)
                seconds[name].append(time.perf_counter() - started)
                for key in (f"{run_id}/{path}", f"{run_id}/{path}.magnus-sha256"):
                    client.delete_object(Bucket=BUCKET, Key=key)
            started = time.perf_counter()
            file_hash(path)
            seconds["sha256"].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        print(f"{name:>6}: median {medians[name]:.3f} s  ({' '.join(f'{v:.2f}' for v in values)})")
    print(
        f"ours/boto3 {medians['ours'] / medians['boto3']:.3f}, (boto3 + sha256)/boto3 "
        f"{(medians['boto3'] + medians['sha256']) / medians['boto3']:.3f}; load average "
        f"{load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )


if __name__ == "__main__":
    main()
