"""Parameter values read from the run log and handed out shared, and what is derived from them.

Every step sees every parameter of its run, so a map's elements would each decode, check and
export the iterated list again: a cost that grows with the list. Instead the run-log stores give
the values they read unchanged from one step to the next as the same objects
(:meth:`magnus.runlog.base.BaseRunLogStore.read_parameters_shared`), and what is worked out from a
value (its ``MAGNUS_PRM_*`` text, that it holds no secret reference) is remembered for as long as
the value is the same object.

That is only true while nobody changes a shared value in place: magnus never does, and a python
function gets its own copy of each argument (:func:`magnus.parameters.binding.bind_arguments`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from magnus.parameters.values import SCALARS

ResultT = TypeVar("ResultT")

# The value of each parameter name last read from the run log (a reference keeps it alive, so
# its id is never reused by another object while it is here).
_shared: dict[str, Any] = {}


def mark_shared(parameters: Mapping[str, Any]) -> None:
    """Note the values of ``parameters`` as read from the run log: never changed in place."""
    _shared.update(parameters)


class SharedValueMemo(Generic[ResultT]):
    """A result per parameter name, kept while the parameter's value is the same shared object.

    Values not read from the run log (a task's own, a scalar) are never remembered: they may be
    changed in place, and scalars cost nothing to redo.
    """

    def __init__(self) -> None:
        self._results: dict[str, tuple[Any, ResultT]] = {}

    def get(self, key: str, value: Any) -> ResultT | None:
        """The result remembered for ``value`` itself under ``key``; ``None`` if none."""
        kept = self._results.get(key)
        return kept[1] if kept is not None and kept[0] is value else None

    def remember(self, key: str, value: Any, result: ResultT) -> None:
        """Keep ``result`` for ``value`` if it is the shared value of ``key``."""
        if type(value) not in SCALARS and _shared.get(key) is value:
            self._results[key] = (value, result)
