"""The reuse workloads' helpers, run with our magnus: fill a store, time lookups, count I/O.

``python reuse_driver.py MODE ...`` from a reuse workload folder (see reuse_data.py):

- ``populate LOG_FOLDER COUNT STEPS``: add COUNT earlier runs of STEPS successful steps each to
  the ``chunked-fs`` store in LOG_FOLDER, through the store's API, each step's fingerprint
  indexed (``record_fingerprint``), as a run of magnus leaves them; prints nothing.
- ``lookup LOG_FOLDER``: ``find_fingerprint`` of every step of the store's one real run (the
  keys a ``--reuse`` run looks up), and of as many keys that are in no run (misses), in
  ``PASSES`` passes each; prints ``{"seconds": ...}``, the median time of a pass over the hits,
  and the misses' median.
- ``count ARGS...``: ``magnus ARGS...`` in this process, counting the records the run-log
  storage reads and writes, the catalog's operations, and the files of ``.run_log_store`` and
  ``.catalog`` created or replaced (their listing before and after); prints the counts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the prefix of the earlier runs ``populate`` makes; the real run has another id
EARLIER = "earlier-"
PASSES = 21


def _store(log_folder: str) -> Any:
    from magnus.runlog.chunked import ChunkedFileSystemRunLogStore

    return ChunkedFileSystemRunLogStore(log_folder=log_folder)


def populate(log_folder: str, count: str, steps: str) -> None:
    from magnus.runlog.models import SUCCESS, Fingerprint, StepAttempt, StepLog

    store = _store(log_folder)
    for run in range(int(count)):
        run_id = f"{EARLIER}{run:05d}"
        store.create_run_log(run_id)
        for step in range(int(steps)):
            name = f"step{step}"
            key = hashlib.sha256(f"{run_id}/{name}".encode()).hexdigest()
            attempt = StepAttempt(
                status=SUCCESS,
                fingerprint=Fingerprint(
                    key=key, code=key, definition=key, parameters=key, inputs=key, environment=key
                ),
            )
            log = StepLog(name=name, internal_name=name, status=SUCCESS, attempts=[attempt])
            store.add_step_log(log, run_id)
            store.record_fingerprint(key, run_id, name)
        store.update_run_log_status(run_id, SUCCESS)


def _real_keys(store: Any) -> list[str]:
    """The fingerprint keys of the steps of the one run that magnus made (not ``populate``)."""
    from magnus.runlog.fingerprint_index import INDEX_RUN

    found = store.storage().run_ids()
    runs = [run for run in found if not run.startswith((EARLIER, INDEX_RUN))]
    if len(runs) != 1:
        raise SystemExit(f"expected one run made by magnus in the store, found {runs}")
    run_log = store.get_run_log_by_id(runs[0])
    return [
        step.attempts[-1].fingerprint.key
        for step in run_log.steps.values()
        if step.attempts and step.attempts[-1].fingerprint is not None
    ]


def _pass(store: Any, keys: list[str], found: bool) -> float:
    start = time.perf_counter()
    for key in keys:
        if (store.find_fingerprint(key) is not None) != found:
            raise SystemExit(f"find_fingerprint({key}) {'missed' if found else 'hit'}")
    return time.perf_counter() - start


def lookup(log_folder: str) -> None:
    store = _store(log_folder)
    keys = _real_keys(store)
    absent = [hashlib.sha256(f"absent/{key}".encode()).hexdigest() for key in keys]
    hits = [_pass(store, keys, True) for _ in range(PASSES)]
    misses = [_pass(store, absent, False) for _ in range(PASSES)]
    print(
        json.dumps(
            {
                "seconds": statistics.median(hits),
                "lookups": len(keys),
                "miss_seconds": statistics.median(misses),
                "passes": hits,
            }
        )
    )


def _counting(
    counts: Counter[str], owner: type, names: tuple[str, ...], kind: Callable[[Any], str]
) -> None:
    """Wrap the methods ``names`` of ``owner``: each call adds one to ``counts`` under its name
    and ``kind(first argument)``."""
    for name in names:
        original: Callable[..., Any] = getattr(owner, name)

        @functools.wraps(original)
        def counted(
            self: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any
        ) -> Any:
            counts[f"{_name} ({kind(args[0] if args else None)})"] += 1
            return _original(self, *args, **kwargs)

        setattr(owner, name, counted)


def _listing() -> dict[str, tuple[int, int]]:
    """Every file of the store and the catalog, with what changes when it is replaced."""
    found = {}
    for root in (".run_log_store", ".catalog"):
        for top, _folders, names in os.walk(root):
            for name in names:
                status = os.stat(os.path.join(top, name))
                found[os.path.join(top, name)] = (status.st_ino, status.st_mtime_ns)
    return found


def count(*args: str) -> None:
    from magnus.catalog.filesystem import FileSystemCatalog
    from magnus.cli import cli
    from magnus.runlog.fingerprint_index import INDEX_RUN
    from magnus.runlog.folders import FolderStorage

    earlier = set(FolderStorage(Path(".run_log_store")).run_ids())

    def run_kind(run_id: Any) -> str:
        """Whose records a storage call touches: the index, an earlier run or this run."""
        if run_id == INDEX_RUN:
            return "fingerprint index"
        return "earlier run" if run_id in earlier else "this run"

    counts: Counter[str] = Counter()
    storage_calls = ("read", "exists", "names", "write", "delete")
    _counting(counts, FolderStorage, storage_calls, run_kind)
    catalog_calls = ("get", "put", "put_file", "put_data", "copy_from_run")
    _counting(counts, FileSystemCatalog, catalog_calls, lambda _name: "catalog")
    before = _listing()
    start = time.perf_counter()
    try:
        cli.main(list(args), standalone_mode=False)
    finally:
        seconds = time.perf_counter() - start
        after = _listing()
        created = [name for name in after if name not in before]
        replaced = [name for name in after if name in before and after[name] != before[name]]
        counts["files.created"] = len(created)
        counts["files.replaced"] = len(replaced)
        print(json.dumps({"seconds": seconds, **dict(sorted(counts.items()))}))


MODES: dict[str, Callable[..., None]] = {"populate": populate, "lookup": lookup, "count": count}

if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
