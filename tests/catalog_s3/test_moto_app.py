"""The test S3 server applies conditional writes one at a time, as S3 does atomically."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from fixtures.moto_app import ConditionalWritesOneAtATime


def most_at_once(headers: dict[str, str], method: str = "PUT") -> int:
    """How many of 8 concurrent requests the wrapped app was running at the same time."""
    counting = threading.Lock()
    active = most = 0

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        nonlocal active, most
        with counting:
            active += 1
            most = max(most, active)
        time.sleep(0.05)
        with counting:
            active -= 1
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = ConditionalWritesOneAtATime(app)
    threads = [
        threading.Thread(
            target=wrapped, args=({"REQUEST_METHOD": method, **headers}, lambda *_: None)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return most


def test_conditional_writes_run_one_at_a_time() -> None:
    assert most_at_once({"HTTP_IF_MATCH": '"etag"'}) == 1
    assert most_at_once({"HTTP_IF_NONE_MATCH": "*"}) == 1
    assert most_at_once({"HTTP_IF_NONE_MATCH": "*"}, method="POST") == 1


def test_other_requests_stay_concurrent() -> None:
    assert most_at_once({}) > 1
    assert most_at_once({"HTTP_IF_MATCH": '"etag"'}, method="GET") > 1
