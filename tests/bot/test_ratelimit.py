"""The per-user sliding-window limiter warns once per window, then drops."""

from __future__ import annotations

from bot.ratelimit import RateLimiter, Verdict


def test_limit_warn_then_drop_then_recover() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 10.0, clock=lambda: now[0])
    assert [limiter.check("a") for _ in range(4)] == [
        Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN, Verdict.DROP]
    assert limiter.check("b") is Verdict.ALLOW
    assert limiter.retry_after("a") == 10.0
    now[0] = 10.5
    assert limiter.check("a") is Verdict.ALLOW
