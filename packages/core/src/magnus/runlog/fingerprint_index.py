"""The fingerprint index of a run-log store: which step of which run last succeeded with a key.

A step's fingerprint says everything that decides its result; a store keeps, per fingerprint, the
run and step that last recorded it (:meth:`magnus.runlog.base.BaseRunLogStore.record_fingerprint`),
so that finding an earlier result costs one read however many runs the store holds.

Stores over a :class:`magnus.runlog.storage.RecordStorage` (and the ``file-system`` store, over the
same folders) keep one record per key under the reserved run id :data:`INDEX_RUN`, which no run
id can take (run ids start with a letter or digit): a line of ``<log_folder>/.fingerprints/
records.journal`` on disk (a step then appends a line rather than making a file; files
``<key>.json`` of the layout before are still read), ``<prefix>/.fingerprints/<key>.json`` in a
bucket. Each record is written whole and atomically; the latest writer wins.

Beside the hits, the same folder keeps *details* records (``details-<digest>.json``): what a
fingerprint part was computed from (a code digest's modules and their functions' digests), so
that ``magnus explain`` can say what changed. Content-addressed, they are written once per digest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from magnus.exceptions import RunLogStoreError
from magnus.internal_names import fit_file_name
from magnus.runlog.files import encode_name
from magnus.runlog.storage import RecordStorage

logger = logging.getLogger(__name__)

#: the pseudo run holding the index records; not a valid run id, so never a run's folder
INDEX_RUN = ".fingerprints"
_SUFFIX = ".json"
_DETAILS = "details-"


class FingerprintHit(BaseModel):
    """A step attempt that recorded a fingerprint: where an earlier result may be found.

    A hit is a pointer, not a promise: the run may since have been deleted, or its data removed
    from the catalog; whoever reuses it checks.
    """

    key: str
    run_id: str
    internal_name: str
    #: when the fingerprint was recorded, in the run log's time format
    recorded_at: str


def index_record(key: str, limit: int | None = None) -> str:
    """The name of the index record of ``key`` (shortened to fit ``limit`` bytes, if given)."""
    if not key:
        raise ValueError("A fingerprint key cannot be empty")
    encoded = encode_name(key)
    if limit is not None:
        encoded = fit_file_name(encoded, limit - len(_SUFFIX))
    return f"{encoded}{_SUFFIX}"


def record_hit(
    storage: RecordStorage, key: str, run_id: str, internal_name: str, now: Callable[[], str]
) -> None:
    """Write the hit of step ``internal_name`` of run ``run_id`` (recorded ``now()``) as the
    index record of ``key``, replacing any earlier one.

    A key this process already recorded for the same run is not written again (nor its hit
    made): the record it wrote names a step of that run with the same fingerprint, hence the
    same result, and replacing a file costs more than a short step (steps that do the same thing
    with the same inputs share a key). Another run's record always replaces it.
    """
    record = index_record(key, storage.name_limit)
    where = storage.where(INDEX_RUN, record)
    if _written.get(where) == run_id:
        return
    hit = FingerprintHit(key=key, run_id=run_id, internal_name=internal_name, recorded_at=now())
    _write(storage, record, hit)
    if len(_written) >= _REMEMBERED:
        _written.clear()
    _written[where] = run_id


def _write(storage: RecordStorage, record: str, data: Any) -> None:
    """Write an index record, making the index's folder when the write finds none: a map's
    elements write a record each, and the folder is there for all but the first."""
    where = storage.location(INDEX_RUN)
    if where in _made:
        try:
            storage.write(INDEX_RUN, record, data)
            return
        except RunLogStoreError:
            _made.discard(where)  # removed since (a store cleared by hand): made again below
    storage.make_run(INDEX_RUN, [""])
    _made.add(where)
    storage.write(INDEX_RUN, record, data)


# Where this process made (or found) the index's folder.
_made: set[str] = set()
# The run whose hit this process last wrote, by index record (its place in its storage).
_written: dict[str, str] = {}
_REMEMBERED = 100_000


def find_hit(storage: RecordStorage, key: str) -> FingerprintHit | None:
    """The hit recorded for ``key``: one read; ``None`` when there is none.

    A record that cannot be read or is not a hit is a miss, logged: the index only saves work,
    and running a step again is always correct.
    """
    record = index_record(key, storage.name_limit)
    try:
        data = storage.read(INDEX_RUN, record)
        if data is None:
            return None
        hit = FingerprintHit.model_validate(data)
    except (RunLogStoreError, ValidationError) as exc:
        logger.warning(
            "Ignoring the fingerprint index record %s: %s", storage.where(INDEX_RUN, record), exc
        )
        return None
    # A shortened record name could in principle be shared: the record names its key in full.
    return hit if hit.key == key else None


def details_record(digest: str, limit: int | None = None) -> str:
    """The name of the details record of ``digest`` (never the name of a hit record)."""
    return _DETAILS + index_record(digest, None if limit is None else limit - len(_DETAILS))


def record_details(storage: RecordStorage, digest: str, details: dict[str, Any]) -> None:
    """Write what ``digest`` was computed from; the same digest always has the same details."""
    _write(storage, details_record(digest, storage.name_limit), {digest: details})


def find_details(storage: RecordStorage, digest: str) -> dict[str, Any] | None:
    """The details recorded for ``digest``; ``None`` when none (or unreadable: logged)."""
    record = details_record(digest, storage.name_limit)
    try:
        data = storage.read(INDEX_RUN, record)
    except RunLogStoreError as exc:
        logger.warning("Ignoring %s: %s", storage.where(INDEX_RUN, record), exc)
        return None
    found = data.get(digest) if isinstance(data, dict) else None
    return found if isinstance(found, dict) else None
