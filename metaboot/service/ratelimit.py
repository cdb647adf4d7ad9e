"""Per-instance request limits over a sliding window.

Keyed by the identified instance (or, for requests that identify nobody, by the address they
came from), so IPv4 and IPv6 clients are limited alike — neutron's haproxy limits one family
only. The window is exact: the timestamps of the last ``limit`` admitted requests are kept, and
a request is admitted when the oldest of them has left the window. Memory is bounded by
``limit`` per active key, and idle keys are swept.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._last_sweep = clock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def check(self, key: str) -> int:
        """0 when the request is admitted (and counted), else the seconds to wait."""
        now = self._clock()
        if now - self._last_sweep > self.window:
            self._sweep(now)
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque(maxlen=self.limit)
        if len(hits) >= self.limit:
            wait = hits[0] + self.window - now
            if wait > 0:
                return max(1, math.ceil(wait))
        hits.append(now)
        return 0

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        stale = [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]
        for key in stale:
            del self._hits[key]
