"""Why each step of a run ran or was reused, in words: ``magnus explain RUN_ID``.

Every leaf step of the run (task and stub steps, inside parallel branches, map elements and
dag steps too, by internal name) gets a decision and the reasons for it:

- ``reused``: it was taken from an earlier run (``reused from run X step Y``);
- ``ran``: it ran; when reuse was on and an earlier result was refused, the step log's
  ``not_reused`` says why; then its fingerprint is compared, part by part, with that of a
  *baseline* attempt of the same step, and each difference is named: the function or module
  level of a file that changed, a notebook cell, the command, a definition key, a parameter,
  an input's hash, a distribution's version;
- ``failed``: it ran and failed (the first line of its message), compared as for ``ran``;
- ``unknown``: it recorded no fingerprint (a log written before fingerprints existed).

The baseline is the same step (same internal name) in the run given with ``--against``; else,
for a re-run, in its original run; else in the most recent earlier run of the store (by start
time) whose log of the step holds a fingerprint. The search lists the store's runs once and
reads a step log only from runs whose recorded pipeline has that step.

``--json`` prints a list, one object per step, in the run's order::

    {
      "step": "train.left.fit",            # internal name
      "decision": "ran" | "reused" | "failed" | "unknown",
      "fingerprint": "the key of its last attempt" | null,
      "reasons": ["`clean()` in src/features.py changed", ...],   # what the text shows
      "baseline": {"run_id": ..., "step": ...} | null,            # what it was compared with
      "reused_from": {"run_id": ..., "step": ...} | null,
      "not_reused": "why an earlier result was refused" | null,
      "changed_parts": ["code", "parameters", ...],  # fingerprint parts that differ
      "changes": {
        "code": ["`clean()` in src/features.py changed", ...],
        "definition": [CHANGE, ...],       # name: a dotted key, e.g. "catalog.put"
        "parameters": [CHANGE, ...],       # name: the parameter
        "map_variables": [CHANGE, ...],    # name: the map's iterate_as
        "inputs": [CHANGE, ...],           # name: the catalog name; values: SHA-256 hex
        "environment": [CHANGE, ...]       # name: "python", "implementation", a distribution,
                                           # or "lock file or image"
      }
    }

where ``CHANGE`` is ``{"name": ..., "change": "changed" | "added" | "removed", "before": ...,
"after": ...}`` (``before`` is ``null`` for an addition, ``after`` for a removal). Every key is
always present; lists are empty when nothing of that kind changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from magnus.control_flow import dumped_branch
from magnus.exceptions import (
    BranchLogNotFoundError,
    RunLogNotFoundError,
    RunLogStoreError,
    StepLogNotFoundError,
)
from magnus.fingerprints import MODULE_LEVEL, ROUTING_FIELDS, changed_parts
from magnus.internal_names import enclosing_branches
from magnus.reports import steps_with_elements
from magnus.runlog.base import BaseRunLogStore
from magnus.runlog.models import FAIL, SUCCESS, UNREADABLE, Fingerprint, RunLog, StepLog

#: decisions
RAN, REUSED, FAILED, UNKNOWN = "ran", "reused", "failed", "unknown"
#: kinds of change
CHANGED, ADDED, REMOVED = "changed", "added", "removed"

#: step logs that are not leaves: composites and the ends of a graph
_NOT_LEAVES = frozenset({"parallel", "map", "dag", "conditional", "loop", "success", "fail"})
#: keys of a dumped node that name it rather than define it
_NAMING_FIELDS = frozenset({"name", "internal_name", "internal_branch_name", "is_composite"})
#: definition keys a code difference already names
_COMMAND_FIELDS = frozenset({"command", "command_type"})
#: how much of a hash or fingerprint key is shown
_SHOWN = 8
#: longest value shown in a reason
_VALUE_LIMIT = 60


@dataclass(frozen=True)
class Change:
    """One named value that changed, appeared or disappeared."""

    name: str
    change: str
    before: Any = None
    after: Any = None

    def to_json(self) -> dict[str, Any]:
        """The ``CHANGE`` object of the JSON contract."""
        return {
            "name": self.name,
            "change": self.change,
            "before": self.before,
            "after": self.after,
        }


def _empty_changes() -> dict[str, list[Any]]:
    return {
        "code": [],
        "definition": [],
        "parameters": [],
        "map_variables": [],
        "inputs": [],
        "environment": [],
    }


@dataclass
class Explanation:
    """Why one step ran or was reused (see the module's documentation for the JSON form)."""

    step: str
    decision: str
    reasons: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    baseline: tuple[str, str] | None = None
    reused_from: tuple[str, str] | None = None
    not_reused: str | None = None
    changed_parts: list[str] = field(default_factory=list)
    #: code: descriptions; every other kind: :class:`Change`
    changes: dict[str, list[Any]] = field(default_factory=_empty_changes)

    def to_json(self) -> dict[str, Any]:
        """The object ``magnus explain --json`` prints for this step."""

        def place(where: tuple[str, str] | None) -> dict[str, str] | None:
            return None if where is None else {"run_id": where[0], "step": where[1]}

        return {
            "step": self.step,
            "decision": self.decision,
            "fingerprint": self.fingerprint,
            "reasons": list(self.reasons),
            "baseline": place(self.baseline),
            "reused_from": place(self.reused_from),
            "not_reused": self.not_reused,
            "changed_parts": list(self.changed_parts),
            "changes": {
                kind: [c if isinstance(c, str) else c.to_json() for c in items]
                for kind, items in self.changes.items()
            },
        }


def explain_run(
    store: BaseRunLogStore, run_id: str, step: str = "", against: str | None = None
) -> list[Explanation]:
    """Explain the leaf steps of ``run_id`` (only ``step`` and the steps inside it, if given).

    Raises ``RunLogNotFoundError`` for an unknown run (or ``against``), and
    ``StepLogNotFoundError`` when ``step`` selects nothing.
    """
    run_log = store.get_run_log_by_id(run_id, full=True)
    leaves = [
        (log, map_variables)
        for log, map_variables in leaf_steps(run_log)
        if not step or log.internal_name == step or log.internal_name.startswith(step + ".")
    ]
    if step and not leaves:
        raise StepLogNotFoundError(run_id, step)
    explainer = _Explainer(store, run_log, against)
    return [explainer.explain(log, map_variables) for log, map_variables in leaves]


def leaf_steps(run_log: RunLog) -> Iterator[tuple[StepLog, dict[str, Any]]]:
    """Every task and stub step log of the run, in order, with the map elements around it."""
    for step_log, map_variables in steps_with_elements(run_log.steps):
        if not step_log.branches and step_log.step_type not in _NOT_LEAVES:
            yield step_log, map_variables


def render_text(explanations: list[Explanation]) -> str:
    """One block per step: ``name: decision`` and the reasons, indented."""
    lines: list[str] = []
    for explanation in explanations:
        header = f"{explanation.step}: {explanation.decision}"
        if explanation.baseline is not None:
            run_id, step = explanation.baseline
            where = f"run {run_id}" + ("" if step == explanation.step else f" step {step}")
            header += f" (compared with {where})"
        lines.append(header)
        lines += [f"  {reason}" for reason in explanation.reasons]
    return "\n".join(lines)


def node_dump(dag: Mapping[str, Any] | None, internal_name: str) -> Mapping[str, Any] | None:
    """The dumped node of step ``internal_name`` in a ``run_config.dag``, or ``None``.

    Even segments of the name select steps, odd ones a branch (a map's, loop's or dag's one
    branch matches whatever the segment says).
    """
    current: Any = dag
    parts = internal_name.split(".")
    for index in range(0, len(parts), 2):
        steps = current.get("steps") if isinstance(current, Mapping) else None
        node = steps.get(parts[index]) if isinstance(steps, Mapping) else None
        if not isinstance(node, Mapping):
            return None
        if index + 1 == len(parts):
            return node
        current = dumped_branch(node, parts[index + 1])
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_LIMIT else text[: _VALUE_LIMIT - 1] + "…"


def describe_change(prefix: str, change: Change) -> str:
    """A change in words: ``<prefix>name before → after``, ``... added: v``, ``... removed``."""
    if change.change == ADDED:
        return f"{prefix}{change.name} added: {_show(change.after)}"
    if change.change == REMOVED:
        return f"{prefix}{change.name} removed (was {_show(change.before)})"
    return f"{prefix}{change.name} {_show(change.before)} → {_show(change.after)}"


def compare_values(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """What differs between two flat mappings, in sorted key order."""
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            changes.append(Change(name, ADDED, after=after[name]))
        elif name not in after:
            changes.append(Change(name, REMOVED, before=before[name]))
        elif before[name] != after[name]:
            changes.append(Change(name, CHANGED, before[name], after[name]))
    return changes


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            flat.update(_flatten(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _definition_fields(node: Mapping[str, Any]) -> dict[str, Any]:
    """What the fingerprint's definition part digests, flattened to dotted keys (a ``null``
    catalog reads as an empty one, so that ``catalog.put`` is named when one is added)."""
    kept = {
        k: ({} if k == "catalog" and v is None else v)
        for k, v in node.items()
        if k not in ROUTING_FIELDS and k not in _NAMING_FIELDS
    }
    return _flatten(kept)


def code_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], notebook: str = ""
) -> list[str]:
    """What changed between two code details (:func:`magnus.fingerprints.code_details`)."""
    lines: list[str] = []
    old, new = before.get("modules") or {}, after.get("modules") or {}
    for name in sorted(set(old) | set(new)):
        was, now = old.get(name), new.get(name)
        path = (now or was or {}).get("path") or name
        if was is None:
            lines.append(f"{path} is new")
        elif now is None:
            lines.append(f"{path} is no longer imported")
        elif was.get("digest") != now.get("digest"):
            lines += _module_changes(path, was.get("definitions", {}), now.get("definitions", {}))
    old_cells, new_cells = before.get("cells") or [], after.get("cells") or []
    for index in range(max(len(old_cells), len(new_cells))):
        cell = f"cell {index + 1} of {notebook}"
        if index >= len(old_cells):
            lines.append(f"{cell} is new")
        elif index >= len(new_cells):
            lines.append(f"{cell} was removed")
        elif old_cells[index] != new_cells[index]:
            lines.append(f"{cell} changed")
    return lines


def _module_changes(path: str, was: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    lines = []
    # Functions and classes first, then the rest of the module.
    for name in sorted(set(was) | set(now), key=lambda n: (n == MODULE_LEVEL, n)):
        if was.get(name) == now.get(name):
            continue
        what = f"module level of {path}" if name == MODULE_LEVEL else f"`{name}()` in {path}"
        state = "is new" if name not in was else "was removed" if name not in now else "changed"
        lines.append(f"{what} {state}")
    return lines or [f"{path} changed"]


def distributions_of(environment: Mapping[str, Any]) -> dict[str, str]:
    """A recorded environment's distributions (``name==version`` entries), by name."""
    found = {}
    for entry in environment.get("distributions") or []:
        name, _, version = str(entry).partition("==")
        found[name] = version
    return found


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


@dataclass
class _Comparison:
    """A step compared with its baseline: what each fingerprint part's explanation reads."""

    explanation: Explanation
    step_log: StepLog
    base_run: str
    base_log: StepLog
    fingerprint: Fingerprint
    map_variables: dict[str, Any]


class _Explainer:
    """Explains the steps of one run, reading each other run and step log at most once."""

    def __init__(self, store: BaseRunLogStore, run_log: RunLog, against: str | None) -> None:
        self.store = store
        self.run_log = run_log
        self.against = against
        self._heads: dict[str, RunLog] = {run_log.run_id: run_log}
        self._earlier: list[RunLog] | None = None
        self._step_logs: dict[tuple[str, str], StepLog | None] = {}
        self._details: dict[str, dict[str, Any] | None] = {}
        if against:
            self._head(against)  # an unknown run is an error, not "no baseline"

    # ------------------------------------------------------------------ reading

    def _head(self, run_id: str) -> RunLog:
        if run_id not in self._heads:
            self._heads[run_id] = self.store.get_run_log_by_id(run_id, full=False)
        return self._heads[run_id]

    def _earlier_runs(self) -> list[RunLog]:
        """The store's runs started before this one, newest first (one listing)."""
        if self._earlier is None:
            start = self.run_log.start_time
            runs = [
                r
                for r in self.store.list_runs()
                if r.run_id != self.run_log.run_id
                and r.status != UNREADABLE
                and r.start_time
                and (not start or r.start_time < start)
            ]
            runs.sort(key=lambda r: r.start_time, reverse=True)
            self._heads.update((r.run_id, r) for r in runs)
            self._earlier = runs
        return self._earlier

    def _step_log(self, run_id: str, internal_name: str) -> StepLog | None:
        key = (run_id, internal_name)
        if key not in self._step_logs:
            try:
                found: StepLog | None = self.store.get_step_log(internal_name, run_id, full=False)
            except (RunLogNotFoundError, StepLogNotFoundError, RunLogStoreError, OSError):
                found = None
            self._step_logs[key] = found
        return self._step_logs[key]

    def _code_details(self, digest: str) -> dict[str, Any] | None:
        if digest not in self._details:
            try:
                self._details[digest] = self.store.find_fingerprint_details(digest)
            except (RunLogStoreError, OSError):
                self._details[digest] = None
        return self._details[digest]

    def _node(self, run_id: str, internal_name: str) -> Mapping[str, Any] | None:
        return node_dump(self._head(run_id).run_config.get("dag"), internal_name)

    # ------------------------------------------------------------------ the baseline

    def _baseline(self, internal_name: str) -> tuple[str, StepLog] | None:
        """The attempt this step is compared with (see the module's documentation)."""
        first = self.against or self.run_log.original_run_id
        if first:
            found = self._attempted(first, internal_name)
            if found is not None or self.against:
                return found
        for head in self._earlier_runs():
            dag = head.run_config.get("dag")
            # A run whose recorded pipeline lacks the step has no log of it: no read.
            if head.run_id != first and (not dag or node_dump(dag, internal_name)):
                found = self._attempted(head.run_id, internal_name)
                if found is not None:
                    return found
        return None

    def _attempted(self, run_id: str, internal_name: str) -> tuple[str, StepLog] | None:
        """The step's log in ``run_id`` if its last attempt holds a fingerprint."""
        found = self._step_log(run_id, internal_name)
        if found is not None and found.attempts and found.attempts[-1].fingerprint:
            return run_id, found
        return None

    def _map_variables(self, run_id: str, internal_name: str) -> dict[str, Any]:
        """The map elements around a step of another run (a branch log read per map)."""
        found: dict[str, Any] = {}
        for branch_name in enclosing_branches(internal_name):
            try:
                branch = self.store.get_branch_log(branch_name, run_id, full=False)
            except (RunLogNotFoundError, BranchLogNotFoundError, RunLogStoreError, OSError):
                continue
            found.update(getattr(branch, "map_variable", None) or {})
        return found

    # ------------------------------------------------------------------ explaining

    def explain(self, step_log: StepLog, map_variables: dict[str, Any]) -> Explanation:
        """The decision on ``step_log`` and the reasons for it."""
        name = step_log.internal_name
        last = step_log.attempts[-1] if step_log.attempts else None
        fingerprint = last.fingerprint if last is not None else None
        if step_log.reused_from:
            origin = step_log.reused_from_step or name
            reason = f"reused from run {step_log.reused_from} step {origin}"
            if fingerprint is not None:
                reason += f" (fingerprint {fingerprint.key[:_SHOWN]}…)"
            return Explanation(
                name,
                REUSED,
                [reason],
                fingerprint=fingerprint.key if fingerprint else None,
                reused_from=(step_log.reused_from, origin),
            )

        failed = step_log.status == FAIL or (last is not None and last.status == FAIL)
        explanation = Explanation(
            name,
            FAILED if failed else RAN,
            fingerprint=fingerprint.key if fingerprint else None,
            not_reused=step_log.not_reused,
        )
        reasons = explanation.reasons
        if failed:
            message = _first_line((last.message if last else "") or step_log.message)
            reasons.append(f"failed: {message}" if message else "failed")
        if step_log.not_reused:
            reasons.append(f"not reused: {step_log.not_reused}")
        if fingerprint is None:
            reasons.append("no fingerprint recorded")
            if not failed:
                explanation.decision = UNKNOWN
            return explanation

        found = self._baseline(name)
        if found is None:
            reasons.append(
                f"run {self.against} has no fingerprint of this step to compare with"
                if self.against
                else "no earlier run of this step to compare with"
            )
            return explanation
        base_run, base_log = found
        explanation.baseline = (base_run, name)
        base_attempt = base_log.attempts[-1]
        assert base_attempt.fingerprint is not None  # the baseline search ensures it
        parts = changed_parts(base_attempt.fingerprint, fingerprint)
        explanation.changed_parts = parts
        if not parts:
            if base_attempt.fingerprint.key != fingerprint.key:
                reasons.append("fingerprint changed")
            elif not step_log.not_reused:
                reasons.append(self._same_key(name, base_run, base_log, failed))
            return explanation
        comparison = _Comparison(
            explanation, step_log, base_run, base_log, fingerprint, map_variables
        )
        for part in parts:
            reasons += getattr(self, f"_{part}")(comparison)
        return explanation

    def _same_key(self, name: str, base_run: str, base_log: StepLog, failed: bool) -> str:
        if failed:
            return f"nothing changed since run {base_run}"
        if base_log.status != SUCCESS:
            return f"the attempt with this fingerprint in run {base_run} did not succeed"
        node = self._node(self.run_log.run_id, name) or {}
        cache = node.get("cache")
        wanted = bool(self.run_log.run_config.get("reuse")) if cache is None else bool(cache)
        if not wanted:
            return "reuse was off for this step"
        return "reuse was on but its earlier result was not indexed"

    # One method per fingerprint part, named after it: each returns the reasons and records
    # the changes in the explanation.

    def _code(self, c: _Comparison) -> list[str]:
        node = self._node(self.run_log.run_id, c.step_log.internal_name) or {}
        base_node = self._node(c.base_run, c.step_log.internal_name) or {}
        lines = []
        command, base_command = node.get("command"), base_node.get("command")
        if command != base_command and (command or base_command):
            lines.append(f"command {_show(base_command)} → {_show(command)}")
        if node.get("command_type", "python") in ("python", "notebook"):
            base_fingerprint = c.base_log.attempts[-1].fingerprint
            assert base_fingerprint is not None
            before = self._code_details(base_fingerprint.code)
            after = self._code_details(c.fingerprint.code)
            if before is not None and after is not None:
                lines += code_changes(before, after, str(command or ""))
        lines = lines or ["code changed"]
        c.explanation.changes["code"] = list(lines)
        return lines

    def _definition(self, c: _Comparison) -> list[str]:
        node = self._node(self.run_log.run_id, c.step_log.internal_name)
        base_node = self._node(c.base_run, c.step_log.internal_name)
        if node is None or base_node is None:
            return ["definition changed"]
        changes = compare_values(_definition_fields(base_node), _definition_fields(node))
        if "code" in c.explanation.changed_parts:
            # The code's reasons name a changed command already.
            changes = [c for c in changes if c.name not in _COMMAND_FIELDS]
            if not changes:
                return []
        c.explanation.changes["definition"] = changes
        return [describe_change("", c) for c in changes] or ["definition changed"]

    def _parameters(self, c: _Comparison) -> list[str]:
        last = c.step_log.attempts[-1]
        changes = compare_values(c.base_log.attempts[-1].parameters, last.parameters)
        c.explanation.changes["parameters"] = changes
        lines = [describe_change("parameter ", c) for c in changes]
        if c.map_variables:
            before = self._map_variables(c.base_run, c.step_log.internal_name)
            elements = compare_values(before, c.map_variables)
            c.explanation.changes["map_variables"] = elements
            lines += [describe_change("map variable ", c) for c in elements]
        return lines or ["parameters changed"]

    def _inputs(self, c: _Comparison) -> list[str]:

        def gets(log: StepLog) -> dict[str, str]:
            return {e.name: e.data_hash for e in log.data_catalog if e.stage == "get"}

        changes = compare_values(gets(c.base_log), gets(c.step_log))
        c.explanation.changes["inputs"] = changes
        lines = []
        for change in changes:
            if change.change == ADDED:
                lines.append(f"{change.name} is a new input (sha256 {change.after[:_SHOWN]}…)")
            elif change.change == REMOVED:
                lines.append(f"{change.name} is no longer an input")
            else:
                lines.append(
                    f"{change.name} changed "
                    f"(sha256 {change.before[:_SHOWN]}… → {change.after[:_SHOWN]}…)"
                )
        return lines or ["inputs changed"]

    def _environment(self, c: _Comparison) -> list[str]:
        now = self.run_log.run_config.get("environment") or {}
        before = self._head(c.base_run).run_config.get("environment") or {}
        changes = compare_values(
            {k: before[k] for k in ("python", "implementation") if k in before},
            {k: now[k] for k in ("python", "implementation") if k in now},
        ) + compare_values(distributions_of(before), distributions_of(now))
        lines = []
        for change in changes:
            if change.change == ADDED:
                lines.append(f"{change.name} {change.after} is new")
            elif change.change == REMOVED:
                lines.append(f"{change.name} {change.before} is no longer installed")
            else:
                lines.append(f"{change.name} {change.before} → {change.after}")
        if not changes:
            changes = [Change("lock file or image", CHANGED)]
            lines = ["the lock file or the image changed"]
        c.explanation.changes["environment"] = changes
        return lines
