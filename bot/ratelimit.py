"""Per-user sliding-window rate limit; tells the caller when to warn (once per window)."""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Hashable


class Verdict(enum.Enum):
    """What to do with one message."""

    ALLOW = "allow"
    # Over the limit: reply politely (first refusal in this window).
    WARN = "warn"
    # Over the limit and already warned: drop silently (a flood gets one reply, not many).
    DROP = "drop"


class RateLimiter:
    """At most ``max_events`` per ``window_s`` seconds per key."""

    def __init__(
        self, max_events: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_events = max_events
        self.window_s = window_s
        self._clock = clock
        self._events: dict[Hashable, deque[float]] = {}
        self._warned_at: dict[Hashable, float] = {}

    def check(self, key: Hashable) -> Verdict:
        """Record an attempt by ``key`` and judge it."""
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.window_s:
            events.popleft()
        if len(events) < self.max_events:
            events.append(now)
            return Verdict.ALLOW
        warned = self._warned_at.get(key)
        if warned is not None and now - warned < self.window_s:
            return Verdict.DROP
        self._warned_at[key] = now
        return Verdict.WARN

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may send again."""
        events = self._events.get(key)
        if not events or len(events) < self.max_events:
            return 0.0
        return max(0.0, self.window_s - (self._clock() - events[0]))
