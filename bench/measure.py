"""Run one command in a fresh wrapper process and measure its wall time and peak memory.

Why a wrapper: on Linux a child's ``ru_maxrss`` starts from the memory of the process that
forked it (``exec`` records the old image's peak), so a harness that has grown (it generates
workloads and a 1 GiB file) would lend its own size to every child. A small wrapper started
afresh per run forks the command instead, and reports ``getrusage(RUSAGE_CHILDREN)``: the peak of
the largest process of the child's tree that was waited for (like ``/usr/bin/time -v``, not the
sum of processes alive together). The wrapper also times the child, so its own start-up is not
counted, and kills the child's process group at the cap.

The harness imports :func:`run`; ``python measure.py RESULT TIMEOUT -- COMMAND...`` is the
wrapper (standard library only).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OK = "ok"
FAILED = "failed"
TIMEOUT = "timeout"

# A line that names an exception, as the last line of a traceback does ("ValueError: ...").
_EXCEPTION_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Interrupt))\b")
# Time the wrapper gets, beyond the cap, to kill the child and report before it is killed too.
_GRACE_S = 30.0


@dataclass
class Measurement:
    """What one run of one command cost, and whether it worked."""

    status: str
    seconds: float
    rss_mb: float
    error: str = ""
    #: other figures a child reported beside its time (the report's size in bytes, say)
    figures: dict[str, float] = field(default_factory=dict)


def first_error_line(text: str, limit: int = 160) -> str:
    """The most telling line of a failed run's output, cut to ``limit`` characters.

    A traceback's last exception line wins; else the first line mentioning an error or a
    failure; else the last non-empty line. A line ending in ":" gets the next one appended.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    exception_lines = [index for index, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
    mentions = [
        index
        for index, line in enumerate(lines)
        if "error" in line.lower() or "fail" in line.lower()
    ]
    if exception_lines:
        index = exception_lines[-1]
    elif mentions:
        index = mentions[0]
    else:
        return "no output" if not lines else lines[-1][:limit]
    chosen = lines[index]
    if chosen.endswith(":") and index + 1 < len(lines):
        # "Error: Incompatible configuration:" says nothing without the line that follows.
        chosen = f"{chosen} {lines[index + 1]}"
    return chosen if len(chosen) <= limit else chosen[: limit - 1] + "…"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run(
    command: Sequence[str],
    cwd: Path,
    timeout: float,
    log_path: Path,
    env: Mapping[str, str] | None = None,
) -> Measurement:
    """Run ``command`` in ``cwd`` through the wrapper, output to ``log_path``."""
    result_path = log_path.with_suffix(".result.json")
    result_path.unlink(missing_ok=True)
    itself = str(Path(__file__).resolve())
    wrapper = [sys.executable, itself, str(result_path), str(timeout), "--", *command]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            wrapper,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        try:
            process.wait(timeout + _GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait()
    if not result_path.is_file():
        return Measurement(FAILED, timeout, 0.0, "the measuring wrapper died without a result")
    result = json.loads(result_path.read_text())
    result_path.unlink()
    seconds, rss_mb = result["seconds"], result["rss_kb"] / 1024
    if result["timed_out"]:
        return Measurement(TIMEOUT, seconds, rss_mb, f"killed after {timeout:.0f} s")
    if result["exit"] != 0:
        text = log_path.read_text(errors="replace")
        return Measurement(FAILED, seconds, rss_mb, first_error_line(text))
    return Measurement(OK, seconds, rss_mb)


def _wrap(result_path: str, timeout: float, command: list[str]) -> None:
    """The wrapper: run ``command``, kill its group at the cap, write what it cost."""
    fired = threading.Event()
    start = time.perf_counter()
    # Its own group, so that the cap reaches every process it starts and nothing else.
    child = subprocess.Popen(command, start_new_session=True)

    def expire() -> None:
        fired.set()
        _kill_group(child.pid)

    timer = threading.Timer(timeout, expire)
    timer.start()
    exit_code = child.wait()
    seconds = time.perf_counter() - start
    timer.cancel()
    _kill_group(child.pid)  # stragglers of a crashed fan-out must not leak into the next run
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "exit": exit_code,
        "seconds": seconds,
        "rss_kb": usage.ru_maxrss,  # kilobytes on Linux
        "timed_out": fired.is_set(),
    }
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    _wrap(sys.argv[1], float(sys.argv[2]), sys.argv[4:])
