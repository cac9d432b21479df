"""How the tests prove that a binding releases the GIL.

The switch interval is raised to 100 s, so Python never preempts a thread that
holds the GIL. One thread runs ``long_call``; the main thread keeps calling
``short_call`` until it returns. If ``long_call`` kept the GIL, no short call
could finish between its start and end stamps.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def calls_during(
    long_call: Callable[[], Any], short_call: Callable[[], Any]
) -> tuple[Any, int, int]:
    """(what ``long_call`` returned, short calls finished while it ran, short calls in all)."""
    stamps: dict[str, Any] = {}
    inside = threading.Event()

    def worker_body() -> None:
        inside.set()
        stamps["start"] = time.perf_counter_ns()
        stamps["result"] = long_call()
        stamps["end"] = time.perf_counter_ns()

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        worker = threading.Thread(target=worker_body)
        worker.start()
        inside.wait()
        finished = []
        while worker.is_alive():
            short_call()
            finished.append(time.perf_counter_ns())
            time.sleep(0)  # let the worker take the GIL back once its call returns
        worker.join()
    finally:
        sys.setswitchinterval(old)
    overlapping = sum(stamps["start"] < t < stamps["end"] for t in finished)
    return stamps["result"], overlapping, len(finished)
