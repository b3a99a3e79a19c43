"""One self-contained HTML page: a run's report, or a pipeline's picture before it runs.

The page needs nothing but itself (it opens from a file:// address or a bucket): its style and
script (``magnus/assets``) are inlined and what it shows is embedded as JSON in a
``<script type="application/json">``, drawn when the page loads.
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from typing import Any

from magnus.pictures import picture_of
from magnus.report_data import report_data
from magnus.runlog.models import RunLog

_SECTIONS = """
<section id="run"></section>
<h2>Pipeline</h2>
<p class="muted">Click a parallel, map or dag step to open or close it.{hint}</p>
<div class="graph" id="graph"></div>
{more}
"""

_RUN_SECTIONS = """
<h2>Timeline</h2>
<div class="graph" id="timeline"></div>
<h2>Maps</h2>
<div id="maps"></div>
<h2>Steps</h2>
<div id="details"></div>
"""


def render_report(run_log: RunLog, retry_chain: list[str] | None = None) -> str:
    """The report of a run: its graph by status, timeline, maps, steps, code and environment.

    ``retry_chain``: the runs it retried, newest first (``magnus.report_data.retry_chain``).
    """
    return _page(f"magnus run {run_log.run_id}", report_data(run_log, retry_chain), _RUN_SECTIONS)


def render_picture(dump: dict[str, Any], title: str) -> str:
    """The picture of a pipeline (a graph's dump), drawn as in a report but with no statuses."""
    return _page(title, {"picture": picture_of(dump)}, "")


def _page(title: str, data: dict[str, Any], more: str) -> str:
    assets = resources.files("magnus") / "assets"
    style = (assets / "report.css").read_text(encoding="utf-8")
    script = (assets / "report.js").read_text(encoding="utf-8")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{style}</style>\n</head><body>\n"
        + (f"<h1>{html.escape(title)}</h1>" if "run" not in data else "")
        + _SECTIONS.format(
            more=more, hint=" Click a step to see its details below." if more else ""
        )
        + f'<script type="application/json" id="magnus-data">{_embedded(data)}</script>\n'
        f"<script>\n{script}</script>\n</body></html>\n"
    )


def _embedded(data: dict[str, Any]) -> str:
    """JSON a browser's ``JSON.parse`` reads, safe inside a ``<script>`` element."""
    text = json.dumps(_finite(data), default=str, separators=(",", ":"), ensure_ascii=False)
    # "</script>" in a parameter would end the element: "<" only occurs inside JSON strings,
    # where its escape reads the same.
    return text.replace("<", "\\u003c")


def _finite(value: Any) -> Any:
    """NaN and infinities as strings: JSON has no token for them (the run log's JSON does)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
