"""A rendered workflow as the mapping its YAML holds, and as YAML text.

Both are stable: the same models always give the same bytes, so rendered workflows diff cleanly.
"""

from __future__ import annotations

from typing import Any

import yaml
from hera.workflows import models as m

#: what is rendered: a ``Workflow``, or a ``CronWorkflow`` when the executor has a ``schedule``
Workflow = m.Workflow | m.CronWorkflow


def to_document(model: Workflow) -> dict[str, Any]:
    """A hera model as a mapping, Argo's field names, ``name`` first in every mapping."""
    document = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return _readable_order(document)


#: keys moved to the front of every mapping (hera's models list fields alphabetically; a task
#: reads better as "name, template, depends" and a template as "name, ...")
_FIRST_KEYS = ("name", "template", "depends")


def _readable_order(value: Any) -> Any:
    if isinstance(value, dict):
        ordered = {key: _readable_order(value[key]) for key in _FIRST_KEYS if key in value}
        ordered.update((k, _readable_order(v)) for k, v in value.items() if k not in ordered)
        return ordered
    if isinstance(value, list):
        return [_readable_order(item) for item in value]
    return value


class _Dumper(yaml.SafeDumper):
    """Block style, mappings indented by 2, sequences by 4 with the dash at 2 (as 0.5)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_yaml(document: dict[str, Any]) -> str:
    """``document`` as YAML; long strings are never folded, so diffs stay one line per change."""
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )
