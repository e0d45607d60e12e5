"""Turning service replies into Telegram messages: typing, growing replies, splits, albums."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

from telegram import Bot, InlineKeyboardMarkup, InputMediaPhoto, Message
from telegram.constants import ChatAction
from telegram.error import BadRequest

from bot.replies import Hit, hit_caption
from bot.telegram.split import split_text

logger = logging.getLogger(__name__)

TELEGRAM_TEXT_LIMIT = 4096
TYPING_REFRESH_S = 4.0
ALBUM_MAX = 10


@contextlib.asynccontextmanager
async def typing(
    bot: Bot, chat_id: int, every_s: float = TYPING_REFRESH_S, after_s: float = 0.0,
    thread_id: int | None = None,
) -> AsyncIterator[None]:
    """Show "typing…" in the chat, refreshed every ``every_s`` seconds, while the body runs;
    only from ``after_s`` seconds on (a quicker reply needs no indicator, nor its request).
    """

    async def keep_typing() -> None:
        await asyncio.sleep(after_s)
        while True:
            try:
                await bot.send_chat_action(chat_id, ChatAction.TYPING, message_thread_id=thread_id)
            except Exception as exc:  # typing is cosmetic; never fail the reply for it
                logger.debug("chat action failed: %s", exc)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class GrowingReply:
    """A reply shown as it grows: one message edited at most every ``interval_s`` seconds,
    continued in a new message past Telegram's 4,096 characters.
    """

    def __init__(self, bot: Bot, chat_id: int, interval_s: float, reply_to: int | None = None,
                 thread_id: int | None = None):
        self.bot = bot
        self.chat_id = chat_id
        self.interval_s = interval_s
        self.reply_to = reply_to
        # The forum topic the reply belongs in (None: the chat itself).
        self.thread_id = thread_id
        self._messages: list[Message] = []
        self._shown: list[str] = []
        # The first piece shows after one interval: a quick reply is one message, no edits.
        self._last_edit = time.monotonic()

    async def update(self, text: str) -> None:
        """New text so far; shown when the edit interval has passed."""
        if time.monotonic() - self._last_edit >= self.interval_s and text.strip():
            await self._show(text, final=False)

    async def finish(self, text: str) -> None:
        """Show the complete text (splitting it as needed)."""
        await self._show(text, final=True)

    async def attach(self, markup: InlineKeyboardMarkup) -> None:
        """Put buttons under the reply's last message."""
        if self._messages:
            await self._messages[-1].edit_reply_markup(reply_markup=markup)

    async def _show(self, text: str, final: bool) -> None:
        chunks = split_text(text, TELEGRAM_TEXT_LIMIT)
        suffix = "" if final else " …"
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            shown = chunk + suffix if last and len(chunk) + len(suffix) <= 4096 else chunk
            await self._put(index, shown)
        self._last_edit = time.monotonic()

    async def _put(self, index: int, text: str) -> None:
        if index < len(self._messages):
            if self._shown[index] == text:
                return
            try:
                await self._messages[index].edit_text(text)
            except BadRequest as exc:  # "message is not modified" and the like
                logger.debug("edit skipped: %s", exc)
            self._shown[index] = text
            return
        reply_to = self.reply_to if index == 0 else None
        message = await self.bot.send_message(self.chat_id, text, reply_to_message_id=reply_to,
                                              message_thread_id=self.thread_id)
        self._messages.append(message)
        self._shown.append(text)


async def send_text(bot: Bot, chat_id: int, text: str, reply_to: int | None = None,
                    thread_id: int | None = None) -> None:
    """Send a text of any length as consecutive messages."""
    for index, chunk in enumerate(split_text(text, TELEGRAM_TEXT_LIMIT)):
        await bot.send_message(chat_id, chunk, reply_to_message_id=reply_to if index == 0 else None,
                               message_thread_id=thread_id)


async def send_hits(bot: Bot, chat_id: int, hits: Sequence[Hit],
                    thread_id: int | None = None) -> None:
    """Gallery images as an album (or one photo), each captioned with its label and score."""
    for start in range(0, len(hits), ALBUM_MAX):
        batch = hits[start:start + ALBUM_MAX]
        if len(batch) == 1:
            await bot.send_photo(chat_id, batch[0].read_bytes(), caption=hit_caption(batch[0]),
                                 message_thread_id=thread_id)
            continue
        media = [InputMediaPhoto(hit.read_bytes(), caption=hit_caption(hit)) for hit in batch]
        await bot.send_media_group(chat_id, media, message_thread_id=thread_id)
