"""What differs between two runs: ``magnus runs diff RUN_A RUN_B``.

Only what differs is reported, ``before`` being RUN_A and ``after`` RUN_B:

- the run: its status, tag, pipeline definition (``dag_hash``), initial parameters
  (``run_config.initial_parameters``), final parameters, code identity (the commit and whether
  the working tree was clean, from the first step that recorded one) and environment (python,
  its implementation, and the installed distributions of ``run_config.environment``);
- each step present in both runs, by internal name (inside parallel branches, map elements and
  dag steps too): its status, the parameters its last attempt consumed and produced (a reused
  or composite step: what it passed on), its metrics, the SHA-256 of each catalog file it got or
  put, where it was reused from, its map's elements, and which parts of its fingerprint differ;
- the steps present in one run only (not the steps inside them, which are implied).

What differs between any two runs is left out: run ids, times and durations, the process that
ran a run (``owner``), attempt times, execution logs (their catalog entries are named after the
run) and the catalog paths, which hold the run id. Steps come in run order: RUN_A's, with the
steps only RUN_B has after the step they follow there.

``--json`` prints one object::

    {
      "before": "RUN_A", "after": "RUN_B",
      "identical": true | false,
      "run": {
        "status": CHANGE | null, "tag": CHANGE | null, "dag_hash": CHANGE | null,
        "code": CHANGE | null,             # before/after: {"commit": ..., "dependable": bool}
        "initial_parameters": [CHANGE, ...],
        "parameters": [CHANGE, ...],        # the final parameters
        "environment": [CHANGE, ...]        # name: "python", "implementation" or a distribution
      },
      "steps": [                            # only steps with a difference, in run order
        {
          "step": "train.left.fit",         # internal name
          "only_in": null | "before" | "after",
          "status": CHANGE | null,          # a step in one run only: added or removed
          "consumed": [CHANGE, ...], "produced": [CHANGE, ...], "metrics": [CHANGE, ...],
          "catalog": [CHANGE, ...],         # name: "<stage> <catalog name>"; values: SHA-256
          "reused_from": CHANGE | null,     # values: {"run_id", "step"} or null (it ran)
          "map_values": CHANGE | null,
          "fingerprint": ["code", "definition", "parameters", "inputs", "environment"]
        }
      ]
    }

where ``CHANGE`` is ``{"name", "change": "changed" | "added" | "removed", "before", "after"}``
(as ``magnus explain --json`` writes it: ``before`` is ``null`` for an addition, ``after`` for a
removal). Every key is always present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from magnus.catalog import is_execution_log
from magnus.explaining import (
    ADDED,
    CHANGED,
    REMOVED,
    Change,
    compare_values,
    describe_change,
    distributions_of,
)
from magnus.fingerprints import changed_parts
from magnus.reports import status_of, steps_in_order
from magnus.runlog.base import BaseRunLogStore
from magnus.runlog.models import RunLog, StepLog

BEFORE, AFTER = "before", "after"


def _scalar(name: str, before: Any, after: Any) -> Change | None:
    if before == after:
        return None
    kind = ADDED if before is None else REMOVED if after is None else CHANGED
    return Change(name, kind, before, after)


def _json(change: Change | None) -> dict[str, Any] | None:
    return None if change is None else change.to_json()


@dataclass
class StepDiff:
    """What differs in one step (see the module's documentation for the JSON form)."""

    step: str
    only_in: str | None = None
    status: Change | None = None
    consumed: list[Change] = field(default_factory=list)
    produced: list[Change] = field(default_factory=list)
    metrics: list[Change] = field(default_factory=list)
    catalog: list[Change] = field(default_factory=list)
    reused_from: Change | None = None
    map_values: Change | None = None
    fingerprint: list[str] = field(default_factory=list)

    def differs(self) -> bool:
        """Whether anything differs."""
        return bool(
            self.only_in
            or self.status
            or self.consumed
            or self.produced
            or self.metrics
            or self.catalog
            or self.reused_from
            or self.map_values
            or self.fingerprint
        )

    def to_json(self) -> dict[str, Any]:
        """The step's object in ``magnus runs diff --json``."""
        return {
            "step": self.step,
            "only_in": self.only_in,
            "status": _json(self.status),
            "consumed": [c.to_json() for c in self.consumed],
            "produced": [c.to_json() for c in self.produced],
            "metrics": [c.to_json() for c in self.metrics],
            "catalog": [c.to_json() for c in self.catalog],
            "reused_from": _json(self.reused_from),
            "map_values": _json(self.map_values),
            "fingerprint": list(self.fingerprint),
        }


@dataclass
class RunDiff:
    """What differs between two runs (see the module's documentation for the JSON form)."""

    before: str
    after: str
    status: Change | None = None
    tag: Change | None = None
    dag_hash: Change | None = None
    code: Change | None = None
    initial_parameters: list[Change] = field(default_factory=list)
    parameters: list[Change] = field(default_factory=list)
    environment: list[Change] = field(default_factory=list)
    steps: list[StepDiff] = field(default_factory=list)

    def run_differs(self) -> bool:
        """Whether anything differs at the run level."""
        return bool(
            self.status
            or self.tag
            or self.dag_hash
            or self.code
            or self.initial_parameters
            or self.parameters
            or self.environment
        )

    @property
    def identical(self) -> bool:
        """Whether nothing differs."""
        return not self.run_differs() and not self.steps

    def to_json(self) -> dict[str, Any]:
        """What ``magnus runs diff --json`` prints."""
        return {
            "before": self.before,
            "after": self.after,
            "identical": self.identical,
            "run": {
                "status": _json(self.status),
                "tag": _json(self.tag),
                "dag_hash": _json(self.dag_hash),
                "code": _json(self.code),
                "initial_parameters": [c.to_json() for c in self.initial_parameters],
                "parameters": [c.to_json() for c in self.parameters],
                "environment": [c.to_json() for c in self.environment],
            },
            "steps": [s.to_json() for s in self.steps],
        }


def diff_runs(store: BaseRunLogStore, before: str, after: str) -> RunDiff:
    """What differs between runs ``before`` and ``after`` of ``store``.

    Raises ``RunLogNotFoundError`` naming a run the store does not hold.
    """
    return diff_run_logs(
        store.get_run_log_by_id(before, full=True), store.get_run_log_by_id(after, full=True)
    )


def diff_run_logs(before: RunLog, after: RunLog) -> RunDiff:
    """What differs between two run logs, read with their steps."""
    old_config, new_config = before.run_config, after.run_config
    diff = RunDiff(
        before.run_id,
        after.run_id,
        status=_scalar("status", status_of(before), status_of(after)),
        tag=_scalar("tag", before.tag, after.tag),
        dag_hash=_scalar("dag_hash", before.dag_hash, after.dag_hash),
        code=_scalar("code", _code(before), _code(after)),
        initial_parameters=compare_values(
            old_config.get("initial_parameters") or {}, new_config.get("initial_parameters") or {}
        ),
        parameters=compare_values(before.parameters, after.parameters),
        environment=compare_values(
            _environment(old_config.get("environment") or {}),
            _environment(new_config.get("environment") or {}),
        ),
    )
    old_steps = {s.internal_name: s for s in steps_in_order(before)}
    new_steps = {s.internal_name: s for s in steps_in_order(after)}
    for name in _merged_order(list(old_steps), list(new_steps)):
        old, new = old_steps.get(name), new_steps.get(name)
        if old is not None and new is not None:
            step = _diff_step(old, new)
        elif _inside_one_sided(name, old_steps, new_steps):
            continue
        elif old is not None:
            step = StepDiff(name, BEFORE, Change("status", REMOVED, before=old.status))
        else:
            assert new is not None
            step = StepDiff(name, AFTER, Change("status", ADDED, after=new.status))
        if step.differs():
            diff.steps.append(step)
    return diff


def _code(run_log: RunLog) -> dict[str, Any] | None:
    """The commit the run's code came from and whether the tree was clean, or ``None``."""
    for step_log in steps_in_order(run_log):
        if step_log.code_identities:
            code = step_log.code_identities[0]
            return {"commit": code.code_identifier, "dependable": code.code_identifier_dependable}
    return None


def _environment(environment: Mapping[str, Any]) -> dict[str, Any]:
    # The platform and the interpreter's path are left out: they say where, not what, ran.
    found = {k: environment[k] for k in ("python", "implementation") if k in environment}
    return {**found, **distributions_of(environment)}


def _merged_order(before: list[str], after: list[str]) -> list[str]:
    """``before``'s names, each name only in ``after`` placed after the name it follows there."""
    known = set(before)
    following: dict[str | None, list[str]] = {}
    anchor: str | None = None
    for name in after:
        if name in known:
            anchor = name
        else:
            following.setdefault(anchor, []).append(name)
    merged = list(following.get(None, []))
    for name in before:
        merged.append(name)
        merged += following.get(name, [])
    return merged


def _inside_one_sided(
    name: str, before: Mapping[str, StepLog], after: Mapping[str, StepLog]
) -> bool:
    """Whether a step sits inside a step that only one of the runs has (so it is implied)."""
    parts = name.split(".")
    # Enclosing steps are at even depths: step.branch.step.branch...
    for depth in range(1, len(parts), 2):
        enclosing = ".".join(parts[:depth])
        if (enclosing in before) != (enclosing in after):
            return True
    return False


def _produced(step_log: StepLog) -> dict[str, Any]:
    if step_log.output_parameters is not None:
        return step_log.output_parameters
    return step_log.attempts[-1].output_parameters if step_log.attempts else {}


def _catalog(step_log: StepLog) -> dict[str, str]:
    return {
        f"{entry.stage} {entry.name}": entry.data_hash
        for entry in step_log.data_catalog
        if not is_execution_log(entry.name)
    }


def _reused(step_log: StepLog) -> dict[str, str] | None:
    if not step_log.reused_from:
        return None
    return {
        "run_id": step_log.reused_from,
        "step": step_log.reused_from_step or step_log.internal_name,
    }


def _diff_step(before: StepLog, after: StepLog) -> StepDiff:
    old_attempt = before.attempts[-1] if before.attempts else None
    new_attempt = after.attempts[-1] if after.attempts else None
    fingerprint: list[str] = []
    if old_attempt and new_attempt and old_attempt.fingerprint and new_attempt.fingerprint:
        fingerprint = changed_parts(old_attempt.fingerprint, new_attempt.fingerprint)
    return StepDiff(
        after.internal_name,
        status=_scalar("status", before.status, after.status),
        consumed=compare_values(
            old_attempt.parameters if old_attempt else {},
            new_attempt.parameters if new_attempt else {},
        ),
        produced=compare_values(_produced(before), _produced(after)),
        metrics=compare_values(before.user_defined_metrics, after.user_defined_metrics),
        catalog=compare_values(_catalog(before), _catalog(after)),
        reused_from=_scalar("reused_from", _reused(before), _reused(after)),
        map_values=_scalar("map_values", before.map_values, after.map_values),
        fingerprint=fingerprint,
    )


# ------------------------------------------------------------------------------ text


def _code_text(code: Any) -> str:
    if not code:
        return "none"
    commit = code.get("commit") or "no commit"
    return f"{commit} ({'clean' if code.get('dependable') else 'dirty'})"


def _reused_text(reused: Any) -> str:
    if not reused:
        return "ran"
    return f"reused from run {reused['run_id']} step {reused['step']}"


def render_text(diff: RunDiff) -> str:
    """The differences as text: the run, then each step, ``before → after``."""
    if diff.identical:
        return f"no differences between {diff.before} and {diff.after}"
    lines = [f"{diff.before} → {diff.after}"]
    if diff.run_differs():
        lines.append("run")
        lines += [f"  {describe_change('', c)}" for c in (diff.status, diff.tag) if c]
        if diff.dag_hash:
            before, after = (str(h or "")[:8] for h in (diff.dag_hash.before, diff.dag_hash.after))
            lines.append(f"  pipeline definition (dag_hash) {before}… → {after}…")
        if diff.code:
            lines.append(f"  code {_code_text(diff.code.before)} → {_code_text(diff.code.after)}")
        lines += [f"  {describe_change('initial parameter ', c)}" for c in diff.initial_parameters]
        lines += [f"  {describe_change('parameter ', c)}" for c in diff.parameters]
        lines += [f"  {describe_change('', c)}" for c in diff.environment]
    for step in diff.steps:
        if step.only_in:
            run_id = diff.before if step.only_in == BEFORE else diff.after
            status = step.status.before or step.status.after if step.status else ""
            lines.append(f"step {step.step}: only in {run_id} ({status})")
            continue
        lines.append(f"step {step.step}")
        if step.status:
            lines.append(f"  {describe_change('', step.status)}")
        lines += [f"  {describe_change('consumed ', c)}" for c in step.consumed]
        lines += [f"  {describe_change('produced ', c)}" for c in step.produced]
        lines += [f"  {describe_change('metric ', c)}" for c in step.metrics]
        lines += [f"  {_catalog_text(c)}" for c in step.catalog]
        if step.reused_from:
            before, after = step.reused_from.before, step.reused_from.after
            lines.append(f"  {_reused_text(before)} → {_reused_text(after)}")
        if step.map_values:
            lines.append(f"  {describe_change('', step.map_values)}")
        if step.fingerprint:
            lines.append(f"  fingerprint: {', '.join(step.fingerprint)} changed")
    return "\n".join(lines)


def _catalog_text(change: Change) -> str:
    if change.change == ADDED:
        return f"{change.name} added (sha256 {change.after[:8]}…)"
    if change.change == REMOVED:
        return f"{change.name} removed (was sha256 {change.before[:8]}…)"
    return f"{change.name} sha256 {change.before[:8]}… → {change.after[:8]}…"
