"""Who may delete or export a group's memory: the group's own administrators.

A group's memory (its turns and the images its members sent) belongs to the whole group, so
only its creator and administrators, as Telegram's ``getChatMember`` names them, may ``/forget``
or ``/export`` it; in a forum topic, an administrator of the group. Answers are cached briefly
(``BotConfig.group_admin_cache_s``): one confirmation asks twice (the command and the tap),
and a demoted administrator loses the right within that time.
"""

from __future__ import annotations

import logging
import time

from telegram import Bot, ChatMember
from telegram.error import TelegramError

from bot.errors import UserFacingError

logger = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR})
NOT_ADMIN = "Only this group's administrators can {action} its memory."
CHECK_FAILED = ("I could not check whether you are an administrator of this group "
                "(Telegram said: {error}), so I did nothing. Please try again later.")


class GroupAdmins:
    """``getChatMember`` answers per (chat, user), kept for ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._seen: dict[tuple[int, int], tuple[float, bool]] = {}

    async def require(self, bot: Bot, chat_id: int, user_id: int, action: str) -> None:
        """Return if ``user_id`` administers group ``chat_id``; otherwise raise a
        ``UserFacingError`` saying why (not an administrator, or Telegram could not tell).
        """
        try:
            admin = await self.is_admin(bot, chat_id, user_id)
        except TelegramError as exc:
            logger.warning("getChatMember(%d, %d) failed: %s", chat_id, user_id, exc)
            raise UserFacingError(CHECK_FAILED.format(error=exc.message)) from exc
        if not admin:
            raise UserFacingError(NOT_ADMIN.format(action=action))

    async def is_admin(self, bot: Bot, chat_id: int, user_id: int) -> bool:
        """Whether ``user_id`` is the creator or an administrator of ``chat_id`` (cached)."""
        now = time.monotonic()
        cached = self._seen.get((chat_id, user_id))
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        member = await bot.get_chat_member(chat_id, user_id)
        admin = member.status in ADMIN_STATUSES
        self._drop_stale(now)
        self._seen[(chat_id, user_id)] = (now, admin)
        return admin

    def _drop_stale(self, now: float) -> None:
        """Keep the cache as small as the recent askers (a failure is never cached)."""
        stale = [key for key, (at, _) in self._seen.items() if now - at >= self.ttl_s]
        for key in stale:
            del self._seen[key]
