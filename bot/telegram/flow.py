"""How Telegram updates flow: chats run concurrently, one chat in order, albums gathered.

``ChatOrderedProcessor`` is a python-telegram-bot update processor: every update of a chat waits
for that chat's previous ones; different chats run at once (up to ``max_concurrent``). A chat
with more than ``max_queued`` updates waiting gets one polite refusal per burst. The parts of an
album (one ``media_group_id``) are gathered: the first part's handler sees all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Message, Update
from telegram.ext import BaseUpdateProcessor

logger = logging.getLogger(__name__)

OverflowFn = Callable[[Update], Awaitable[None]]


class AlbumCollector:
    """Messages of one media group, kept until the first part's handler takes them."""

    def __init__(self, quiet_s: float) -> None:
        self.quiet_s = quiet_s
        self._parts: dict[str, list[Message]] = {}
        self._last_seen: dict[str, float] = {}

    def add(self, message: Message) -> bool:
        """Record a part; True when it is the album's first."""
        group = str(message.media_group_id)
        first = group not in self._parts
        self._parts.setdefault(group, []).append(message)
        self._last_seen[group] = time.monotonic()
        return first

    async def settle(self, group: str) -> None:
        """Wait until no part has arrived for ``quiet_s`` seconds (bounded by 10 waits)."""
        for _ in range(10):
            remaining = self._last_seen.get(group, 0.0) + self.quiet_s - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)

    def peek(self, message: Message) -> list[Message]:
        """The parts gathered so far of ``message``'s album, left in place (just it if none)."""
        if message.media_group_id is None:
            return [message]
        return list(self._parts.get(str(message.media_group_id), [message]))

    def take(self, message: Message) -> list[Message]:
        """All parts of the album ``message`` belongs to, in message order (just it if none)."""
        if message.media_group_id is None:
            return [message]
        group = str(message.media_group_id)
        self._last_seen.pop(group, None)
        parts = self._parts.pop(group, [message])
        return sorted(parts, key=lambda m: m.message_id)


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Concurrent across chats, sequential within a chat, bounded queue per chat."""

    def __init__(self, max_concurrent: int, max_queued: int, albums: AlbumCollector) -> None:
        super().__init__(max_concurrent)
        self.max_queued = max_queued
        self.albums = albums
        self.on_overflow: OverflowFn | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._pending: dict[int, int] = {}
        self._warned: set[int] = set()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the update after its chat's earlier ones; drop it when the chat's queue is full."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        message = update.message if isinstance(update, Update) else None
        album = message is not None and message.media_group_id is not None
        if album and message is not None and not self.albums.add(message):
            _discard(coroutine)  # a later part of an album: its first part's handler takes it
            return
        if self._pending.get(chat.id, 0) >= self.max_queued:
            _discard(coroutine)
            await self._overflow(chat.id, update)
            return
        await self._run_in_order(chat.id, coroutine, message if album else None)

    def pending(self, chat_id: int) -> int:
        """How many of the chat's updates are running or waiting their turn (0: idle)."""
        return self._pending.get(chat_id, 0)

    async def _run_in_order(
        self, chat_id: int, coroutine: Awaitable[Any], album_first: Message | None
    ) -> None:
        self._pending[chat_id] = self._pending.get(chat_id, 0) + 1
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        try:
            async with lock:
                if album_first is not None:
                    await self.albums.settle(str(album_first.media_group_id))
                await coroutine
        finally:
            self._pending[chat_id] -= 1
            if self._pending[chat_id] == 0:
                del self._pending[chat_id]
                self._locks.pop(chat_id, None)
                self._warned.discard(chat_id)

    async def _overflow(self, chat_id: int, update: object) -> None:
        if chat_id in self._warned or self.on_overflow is None or not isinstance(update, Update):
            return
        self._warned.add(chat_id)
        try:
            await self.on_overflow(update)
        except Exception:
            logger.exception("could not send the queue-full notice to chat %s", chat_id)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""


def _discard(coroutine: Awaitable[Any]) -> None:
    if isinstance(coroutine, Coroutine):
        coroutine.close()
