"""Per-endpoint rate limits: at most N calls in any sliding window of the renewal period."""

from __future__ import annotations

import threading
import time
from collections import deque

from labtrack.gateway.config import GatewayError, Limit


class RateLimiter:
    """Sliding-window call counter per endpoint name (the calls of one process)."""

    def __init__(self) -> None:
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, name: str, limit: Limit | None) -> None:
        """Count one call to ``name``; GatewayError 429 when the limit is reached."""
        if limit is None:
            return
        now = time.monotonic()
        with self._lock:
            window = self._calls.setdefault(name, deque())
            while window and window[0] <= now - limit.window_s:
                window.popleft()
            if len(window) >= limit.calls:
                raise GatewayError(
                    f"Rate limit exceeded for endpoint '{name}': {limit.calls} per {limit.renewal_period}.",
                    "REQUEST_LIMIT_EXCEEDED", 429)
            window.append(now)

    def forget(self, name: str) -> None:
        with self._lock:
            self._calls.pop(name, None)
