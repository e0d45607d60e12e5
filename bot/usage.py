"""Daily usage limits per person (model calls, uploaded megabytes) and the admins' /stats.

Counts live in the store (``store.usage``), so limits hold across restarts and workers. Admins
(``TELEGRAM_ADMIN_IDS``) are counted but never refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Protocol

from bot.bot_config import BotConfig
from bot.environment import ADMIN_IDS_ENV, secret
from bot.errors import UserFacingError
from engine.typed_config import ConfigError
from store.usage import DayUsage, UsageStats, next_reset

Clock = Callable[[], datetime]


class LedgerPort(Protocol):
    """What the limits need from the store (``store.usage.UsageLedger``)."""

    def charge(self, account: str, day: date, model_calls: int = 0, upload_bytes: int = 0,
               max_calls: int | None = None, max_bytes: int | None = None) -> DayUsage | None:
        """Add to the account's day; None (nothing added) when a limit would be passed."""
        ...

    def stats(self, today: date) -> UsageStats:
        """People, turns, images and model-call timings for /stats."""
        ...


class LimitReached(UserFacingError):
    """A daily limit is reached; the message names it and when it resets."""


def admin_ids(raw: str | None = None) -> frozenset[int]:
    """Telegram user ids from ``TELEGRAM_ADMIN_IDS`` (comma- or space-separated)."""
    raw = secret(ADMIN_IDS_ENV) if raw is None else raw
    try:
        return frozenset(int(part) for part in (raw or "").replace(",", " ").split())
    except ValueError as exc:
        raise ConfigError(f"{ADMIN_IDS_ENV} must list numeric Telegram user ids: {raw!r}") from exc


class UsageGuard:
    """Charges each person's model calls and uploads against the day's limits."""

    def __init__(self, ledger: LedgerPort, config: BotConfig, admins: frozenset[int],
                 clock: Clock | None = None) -> None:
        self.ledger = ledger
        self.config = config
        self.admins = admins
        self.clock = clock or (lambda: datetime.now(UTC))

    def is_admin(self, user_id: int) -> bool:
        """Admins (TELEGRAM_ADMIN_IDS) are counted but never limited."""
        return user_id in self.admins

    async def model_call(self, user_id: int) -> None:
        """Count one model call; LimitReached when the day's calls are used up."""
        limit = None if self.is_admin(user_id) else self.config.daily_model_calls
        if await self._charge(user_id, calls=1, limit_calls=limit) is None:
            raise LimitReached(
                f"You have used today's {limit} requests to the model. "
                f"{self._resets()} Until then /help, /history and /more still work.")

    async def upload(self, user_id: int, size: int) -> None:
        """Count an upload of ``size`` bytes; LimitReached when it passes the day's megabytes."""
        limit_mb = None if self.is_admin(user_id) else self.config.daily_upload_mb
        limit = None if limit_mb is None else int(limit_mb * 2**20)
        if await self._charge(user_id, size=size, limit_bytes=limit) is None:
            raise LimitReached(
                f"This file would take you past today's upload limit of {limit_mb:g} MB. "
                f"{self._resets()}")

    async def stats(self) -> UsageStats:
        """The numbers behind /stats, as of today (UTC)."""
        return await asyncio.to_thread(self.ledger.stats, self.clock().date())

    async def _charge(self, user_id: int, calls: int = 0, size: int = 0,
                      limit_calls: int | None = None,
                      limit_bytes: int | None = None) -> DayUsage | None:
        return await asyncio.to_thread(
            self.ledger.charge, f"telegram:{user_id}", self.clock().astimezone(UTC).date(),
            calls, size, limit_calls, limit_bytes)

    def _resets(self) -> str:
        now = self.clock()
        left = next_reset(now) - now
        hours, minutes = divmod(int(left.total_seconds()) // 60, 60)
        return f"The limit resets at 00:00 UTC (in {hours} h {minutes:02d} min)."


def render_stats(stats: UsageStats, gallery_size: int) -> str:
    """The /stats reply."""
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    size = "-" if stats.database_bytes is None else f"{stats.database_bytes / 2**20:.1f} MB"
    return "\n".join([
        f"People who used the model: {stats.accounts:,} ({stats.active_today:,} today)",
        f"Turns stored: {stats.turns:,}",
        f"Images people sent: {stats.images:,}",
        f"Model calls: p50 {seconds(stats.model_call_p50_s)}, p95 "
        f"{seconds(stats.model_call_p95_s)} (newest {stats.model_calls_timed:,})",
        f"Gallery: {gallery_size:,} images",
        f"Database: {size}",
    ])
