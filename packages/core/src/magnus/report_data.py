"""What a run's HTML report shows, as JSON-ready data read from its run log.

The page (``magnus.report_html``) embeds this data and draws it in the browser. It stays
small whatever the run's size: a map's elements are summed up (counts by status, the slowest
and the failed ones) and the timeline keeps at most ``MAX_BARS`` attempts, summing up the
others per step.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from magnus.console import execution_log_location
from magnus.control_flow import dumped_branch
from magnus.exceptions import RunLogNotFoundError
from magnus.pictures import picture_of
from magnus.reports import duration_of, status_of, steps_with_elements
from magnus.runlog.models import FAIL, RunLog, StepLog, parse_time
from magnus.tracking import iter_metric_points

if TYPE_CHECKING:
    from magnus.runlog.base import BaseRunLogStore

#: attempts drawn one by one on the timeline; the rest are summed up per step
MAX_BARS = 2000
#: map elements listed by duration, besides the failed ones
SLOWEST = 10
#: failed map elements (and their steps' details) listed per map
MAX_FAILED = 50
#: a value whose JSON is longer is shown cut, with its length
VALUE_LIMIT = 300
#: the end of an error message that is kept
MESSAGE_LINES = 25

#: the order in which a step shown for many logs takes its colour: any failure shows first
_STATUS_ORDER = ["FAIL", "PROCESSING", "TRIGGERED", "CREATED", "SUCCESS"]


def report_data(run_log: RunLog, retry_chain: list[str] | None = None) -> dict[str, Any]:
    """Everything the report page shows of ``run_log``; ``retry_chain`` as ``retry_chain()``."""
    dag = run_log.run_config.get("dag") or {}
    walk = _Walk(_start_of(run_log))
    walk.steps(run_log.steps, dag, in_map=False)
    summary = _run_summary(run_log, walk.codes)
    summary["retry_chain"] = retry_chain or []
    return {
        "run": summary,
        "picture": picture_of(dag),
        "states": {
            template: {"status": dominant_status(counts), "counts": dict(counts)}
            for template, counts in walk.states.items()
        },
        "maps": walk.maps,
        "details": walk.details,
        "timeline": walk.timeline(),
    }


def retry_chain(store: BaseRunLogStore, run_log: RunLog) -> list[str]:
    """The runs ``run_log`` retried, newest first: its original, that run's original, ...

    A run the store no longer has ends the chain (it is still named).
    """
    chain: list[str] = []
    original = run_log.original_run_id
    while original and original not in chain and original != run_log.run_id:
        chain.append(original)
        try:
            original = store.get_run_log_by_id(original, full=False).original_run_id
        except RunLogNotFoundError:
            break
    return chain


def dominant_status(counts: Counter[str] | dict[str, int]) -> str:
    """The status a step logged many times is shown with: failures first, success last."""
    present = [status for status, count in counts.items() if count]
    for status in _STATUS_ORDER:
        if status in present:
            return status
    return present[0] if present else "CREATED"


def _start_of(run_log: RunLog) -> datetime | None:
    return parse_time(run_log.start_time) if run_log.start_time else None


def _milliseconds(text: str, origin: datetime | None) -> float | None:
    if not text or origin is None:
        return None
    return round((parse_time(text) - origin).total_seconds() * 1000, 3)


def shown(value: Any) -> Any:
    """``value`` itself, or its JSON cut short when it is long (a list of 10,000 elements)."""
    text = json.dumps(value, default=str)
    if len(text) <= VALUE_LIMIT:
        return value
    return f"{text[:VALUE_LIMIT]}… ({len(text)} characters)"


def _message_end(message: str) -> str:
    lines = message.splitlines()
    kept = "\n".join(lines[-MESSAGE_LINES:])
    return kept if len(kept) <= 4000 else "…" + kept[-4000:]


def _metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Series (metrics tracked at several steps) as ``[[step, value], ...]``; others as they are."""
    shaped: dict[str, Any] = {}
    for name, step, value in iter_metric_points(metrics):
        # iter_metric_points yields a value that is not a series whole, a series point by point.
        if value is not metrics[name]:
            shaped.setdefault(name, []).append([step, value])
        else:
            shaped[name] = shown(value)
    return shaped


@dataclass
class _Attempt:
    label: str
    template: str
    start: float
    end: float
    status: str
    number: int
    in_map: bool


@dataclass
class _Walk:
    """One pass over the run's step logs, beside the recorded graph."""

    origin: datetime | None
    states: dict[str, Counter[str]] = field(default_factory=dict)
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[_Attempt] = field(default_factory=list)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_in_maps: Counter[str] = field(default_factory=Counter)

    def steps(self, logs: dict[str, StepLog], graph: dict[str, Any], in_map: bool) -> None:
        for step_log in logs.values():
            node = graph.get("steps", {}).get(step_log.name) or {}
            self.step(step_log, node, in_map)

    def step(self, step_log: StepLog, node: dict[str, Any], in_map: bool) -> None:
        template = str(node.get("internal_name") or step_log.internal_name)
        self.states.setdefault(template, Counter())[step_log.status] += 1
        if not in_map:
            self.details.append(self.detail(step_log, template))
        elif step_log.status == FAIL and self.failed_in_maps[template] < MAX_FAILED:
            self.failed_in_maps[template] += 1
            self.details.append(self.detail(step_log, template))
        # The success and fail steps' attempts only mark where a branch ended: no bars for them.
        timed = step_log.attempts if step_log.step_type not in ("success", "fail") else []
        for attempt in timed:
            start = _milliseconds(attempt.start_time, self.origin)
            end = _milliseconds(attempt.end_time, self.origin)
            if start is not None:
                self.attempts.append(
                    _Attempt(
                        step_log.internal_name,
                        template,
                        start,
                        end if end is not None else start,
                        attempt.status,
                        attempt.attempt_number,
                        in_map,
                    )
                )
        for code in step_log.code_identities:
            key = json.dumps(code.model_dump(mode="json"), sort_keys=True)
            self.codes.setdefault(key, code.model_dump(mode="json"))
        is_map = node.get("type") == "map"
        if is_map:
            self.map_summary(step_log, template)
        for branch_name, branch in step_log.branches.items():
            key = branch_name[len(step_log.internal_name) + 1 :]
            graph = dict(dumped_branch(node, key) or {})
            self.steps(branch.steps, graph, in_map or is_map)

    def detail(self, step_log: StepLog, template: str) -> dict[str, Any]:
        """What the page lists under one step log."""
        return {
            "id": step_log.internal_name,
            "template": template,
            "name": step_log.name,
            "type": step_log.step_type,
            "status": step_log.status,
            "message": _message_end(step_log.message),
            "mock": step_log.mock,
            "attempts": [
                {
                    "number": attempt.attempt_number,
                    "status": attempt.status,
                    "start": attempt.start_time,
                    "end": attempt.end_time,
                    "duration": attempt.duration,
                    "message": _message_end(attempt.message),
                    "parameters": {k: shown(v) for k, v in attempt.parameters.items()},
                    "produced": {k: shown(v) for k, v in attempt.output_parameters.items()},
                }
                for attempt in step_log.attempts
            ],
            "produced": {k: shown(v) for k, v in (step_log.output_parameters or {}).items()},
            "catalog": [
                {
                    "name": entry.name,
                    "stage": entry.stage,
                    "hash": entry.data_hash,
                    "path": entry.catalog_relative_path,
                }
                for entry in step_log.data_catalog
            ],
            "metrics": _metrics(step_log.user_defined_metrics),
            "execution_log": execution_log_location(step_log),
            "reused_from": step_log.reused_from,
            "reused_from_step": step_log.reused_from_step,
            "not_reused": step_log.not_reused,
            "changed_since_original": step_log.changed_since_original,
            "branches": len(step_log.branches),
        }

    def map_summary(self, step_log: StepLog, template: str) -> None:
        """A map's elements: counts by status, the slowest and the failed ones."""
        elements = []
        for name, branch in step_log.branches.items():
            spans = [
                (attempt.start_time, attempt.end_time)
                for leaf in _leaves(branch.steps)
                for attempt in leaf.attempts
                if attempt.start_time and attempt.end_time
            ]
            seconds = (
                (
                    parse_time(max(e for _, e in spans)) - parse_time(min(s for s, _ in spans))
                ).total_seconds()
                if spans
                else 0.0
            )
            failing = next(
                (leaf for leaf in _leaves(branch.steps) if leaf.status == FAIL and leaf.message),
                None,
            )
            elements.append(
                {
                    "element": name[len(step_log.internal_name) + 1 :],
                    "value": shown(branch.map_variable),
                    "status": branch.status,
                    "seconds": round(seconds, 6),
                    "message": _message_end(branch.message or (failing.message if failing else "")),
                    "step": failing.internal_name if failing else "",
                }
            )
        elements.sort(key=lambda element: element["seconds"], reverse=True)
        failed = [element for element in elements if element["status"] == FAIL]
        self.maps[step_log.internal_name] = {
            "template": template,
            "counts": dict(Counter(element["status"] for element in elements)),
            "elements": len(elements),
            "slowest": elements[:SLOWEST],
            "failed": failed[:MAX_FAILED],
            "failed_total": len(failed),
        }

    def timeline(self) -> dict[str, Any]:
        """Bars for at most ``MAX_BARS`` attempts; the others summed up per step."""
        attempts = sorted(self.attempts, key=lambda a: (a.start, a.end))
        if len(attempts) > MAX_BARS:
            # Attempts outside maps and failed ones first, then the longest.
            ranked = sorted(
                attempts,
                key=lambda a: (a.in_map and a.status != FAIL, -(a.end - a.start)),
            )
            kept_ids = {id(a) for a in ranked[:MAX_BARS]}
            kept = [a for a in attempts if id(a) in kept_ids]
            rest = [a for a in attempts if id(a) not in kept_ids]
        else:
            kept, rest = attempts, []
        groups: dict[str, list[_Attempt]] = {}
        for attempt in rest:
            groups.setdefault(attempt.template, []).append(attempt)
        return {
            "bars": [[a.label, a.start, a.end, a.status, a.number, a.template] for a in kept],
            "summed": [
                {
                    "template": template,
                    "count": len(group),
                    "start": min(a.start for a in group),
                    "end": max(a.end for a in group),
                    "counts": dict(Counter(a.status for a in group)),
                }
                for template, group in groups.items()
            ],
            "total": len(attempts),
        }


def _leaves(steps: dict[str, StepLog]) -> list[StepLog]:
    return [step_log for step_log, _ in steps_with_elements(steps) if not step_log.branches]


def _run_summary(run_log: RunLog, codes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    config = {k: v for k, v in run_log.run_config.items() if k not in ("dag", "environment")}
    return {
        "run_id": run_log.run_id,
        "status": status_of(run_log),
        "message": _message_end(run_log.message),
        "tag": run_log.tag,
        "original_run_id": run_log.original_run_id,
        "start_time": run_log.start_time,
        "end_time": run_log.end_time,
        "duration": duration_of(run_log),
        "dag_hash": run_log.dag_hash,
        "parameters": {k: shown(v) for k, v in run_log.parameters.items()},
        "code": list(codes.values()),
        "environment": run_log.run_config.get("environment") or {},
        "configuration": config,
    }
