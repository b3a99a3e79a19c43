"""How times and durations are written for people: one format everywhere magnus shows them.

The run log stores naive wall-clock times of the machine that ran the step (its contract); shown,
a time carries the offset of this machine's zone at that moment, so it cannot be misread.
"""

from __future__ import annotations

from datetime import datetime


def duration_text(seconds: float) -> str:
    """``1.23s`` under a minute, ``2m03s`` under an hour, ``1h02m`` beyond."""
    if round(seconds, 2) < 60:  # 59.999 is 1m00s, not 60.00s
        return f"{max(seconds, 0.0):.2f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def time_text(moment: datetime) -> str:
    """``2026-12-06 12:01:02 UTC+01:00``: a naive time is taken as this machine's local time."""
    local = moment.astimezone() if moment.tzinfo is None else moment
    offset = local.strftime("%z") or "+0000"
    return f"{local:%Y-%m-%d %H:%M:%S} UTC{offset[:3]}:{offset[3:5]}"
