"""The ``buffered`` run-log store: run logs kept in the memory of one process."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from pydantic import PrivateAttr

from magnus.exceptions import RunLogExistsError, RunLogNotFoundError
from magnus.runlog.fingerprint_index import FingerprintHit
from magnus.runlog.memory import ResultT, RunChange, WholeRunLogStore, apply_change
from magnus.runlog.models import RunLog


class BufferedRunLogStore(WholeRunLogStore):
    """Keeps run logs in memory, keyed by run id; nothing survives the process.

    Only usable when every step runs in the process that owns the store (the ``local``
    executor); meant for trying pipelines out and for tests.
    """

    service_name: ClassVar[str] = "buffered"
    persistent: ClassVar[bool] = False

    _runs: dict[str, RunLog] = PrivateAttr(default_factory=dict)
    _fingerprints: dict[str, FingerprintHit] = PrivateAttr(default_factory=dict)
    _details: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    def location(self, run_id: str) -> str:
        return "memory"

    def _stored(self, run_id: str) -> RunLog:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunLogNotFoundError(run_id) from None

    def _view(self, run_id: str, use: Callable[[RunLog], ResultT]) -> ResultT:
        return use(self._stored(run_id))

    def _change(self, run_id: str, change: RunChange) -> None:
        # The stored object is changed in place; apply_change checks before it changes anything.
        apply_change(self._stored(run_id), change)

    def _create(self, run_log: RunLog) -> None:
        if run_log.run_id in self._runs:
            raise RunLogExistsError(run_log.run_id)
        self._runs[run_log.run_id] = run_log

    def _replace(self, run_log: RunLog) -> None:
        self._runs[run_log.run_id] = run_log

    def _stored_runs(self) -> Iterable[RunLog]:
        return self._runs.values()

    def record_fingerprint(self, key: str, run_id: str, internal_name: str) -> None:
        self._fingerprints[key] = FingerprintHit(
            key=key, run_id=run_id, internal_name=internal_name, recorded_at=self.now()
        )

    def find_fingerprint(self, key: str) -> FingerprintHit | None:
        hit = self._fingerprints.get(key)
        # A copy, as every log handed out is: changing it never changes the store.
        return None if hit is None else hit.model_copy()

    def record_fingerprint_details(self, digest: str, details: dict[str, Any]) -> None:
        self._details[digest] = copy.deepcopy(details)

    def find_fingerprint_details(self, digest: str) -> dict[str, Any] | None:
        found = self._details.get(digest)
        return None if found is None else copy.deepcopy(found)
