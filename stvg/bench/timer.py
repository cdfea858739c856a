"""The one clock of the benchmarks: wall time and this process's CPU time of a block or a call."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (wall, ``perf_counter``) and
    ``t.cpu_seconds`` (``process_time``: every thread of this process, not its DataLoader
    workers; other processes on the machine do not disturb it)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = time.process_time() - self._cpu


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """``(wall seconds, fn(*args))``."""
    with Timer() as timer:
        out = fn(*args)
    return timer.seconds, out
