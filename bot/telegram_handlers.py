"""Telegram handlers: thin; an Update becomes plain inputs, the service answers, we render."""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.config import BotConfig
from bot.errors import UserFacingError
from bot.ratelimit import RateLimiter, Verdict
from bot.replies import HELP, START, Reply
from bot.service import ConversationService, UserRef
from bot.telegram_flow import AlbumCollector
from bot.telegram_render import GrowingReply, send_hits, send_text, typing

logger = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
Handler = Callable[[Any, Update, Context], Coroutine[Any, Any, None]]
MORE_LIKE_THIS = re.compile(r"^\s*(more|others?|similar)( ones?)?( like (this|these|that))?\W*$",
                            re.IGNORECASE)
BUSY = "I'm still working on your earlier messages: please wait a moment before sending more."
FLOOD = "You're sending messages faster than I can answer: please wait {s:.0f} s."


def replying(handler: Handler) -> Handler:
    """Turn a UserFacingError into a short reply in the chat."""

    @functools.wraps(handler)
    async def wrapper(self: Any, update: Update, context: Context) -> None:
        try:
            await handler(self, update, context)
        except UserFacingError as exc:
            if update.effective_chat is not None:
                await context.bot.send_message(update.effective_chat.id, str(exc))

    return wrapper


def user_of(update: Update) -> UserRef:
    user = update.effective_user
    assert user is not None
    return UserRef("telegram", str(user.id), user.full_name)


class Handlers:
    """Every handler of the bot, sharing the service, the limits and the album collector."""

    def __init__(self, service: ConversationService, config: BotConfig, albums: AlbumCollector):
        self.service = service
        self.config = config
        self.albums = albums
        self.limiter = RateLimiter(config.rate_limit_messages, config.rate_limit_window_s)

    async def guard(self, update: Update, context: Context) -> None:
        """Allow-list and per-user rate limit, before any other handler."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            raise ApplicationHandlerStop
        allowed = self.config.allowed_user_ids
        if allowed and user.id not in allowed:
            await context.bot.send_message(chat.id, "Sorry, this bot is private.")
            raise ApplicationHandlerStop
        verdict = self.limiter.check(user.id)
        if verdict is Verdict.WARN:
            wait = self.limiter.retry_after(user.id)
            await context.bot.send_message(chat.id, FLOOD.format(s=max(wait, 1)))
        if verdict is not Verdict.ALLOW:
            raise ApplicationHandlerStop

    async def on_overflow(self, update: Update) -> None:
        """A chat's queue is full: say so once."""
        if update.effective_chat is not None:
            await update.get_bot().send_message(update.effective_chat.id, BUSY)

    async def start(self, update: Update, context: Context) -> None:
        """/start: greeting and what the bot can do."""
        await self._say(update, context, START)

    async def help(self, update: Update, context: Context) -> None:
        """/help: what the bot can do, with examples."""
        await self._say(update, context, HELP)

    async def about(self, update: Update, context: Context) -> None:
        """/about: model, weights, gallery size."""
        await self._say(update, context, await self.service.about())

    async def reset(self, update: Update, context: Context) -> None:
        """/reset: start a new conversation."""
        await self._say(update, context, await self.service.reset(user_of(update)))

    async def history(self, update: Update, context: Context) -> None:
        """/history: the current conversation as text."""
        await self._say(update, context, await self.service.history(user_of(update)))

    async def export(self, update: Update, context: Context) -> None:
        """/export: the user's data as a zip archive."""
        archive = await self.service.export(user_of(update))
        chat_id = _chat_id(update)
        await context.bot.send_document(chat_id, archive, filename="capret-export.zip",
                                        caption="Everything I keep about you.")

    async def forget(self, update: Update, context: Context) -> None:
        """/forget: ask for confirmation with buttons."""
        buttons = [[InlineKeyboardButton("Yes, delete everything", callback_data="forget:yes"),
                    InlineKeyboardButton("Cancel", callback_data="forget:no")]]
        await context.bot.send_message(
            _chat_id(update), "Delete everything I keep about you (conversations, images)?",
            reply_markup=InlineKeyboardMarkup(buttons))

    async def forget_answer(self, update: Update, context: Context) -> None:
        """The /forget confirmation button."""
        query = update.callback_query
        assert query is not None
        await query.answer()
        if query.data == "forget:yes":
            text = await self.service.forget(user_of(update))
        else:
            text = "Nothing was deleted."
        await query.edit_message_text(text)

    @replying
    async def search(self, update: Update, context: Context) -> None:
        """/search <text>: forced retrieval."""
        text = " ".join(context.args or [])
        if not text:
            raise UserFacingError("Tell me what to look for, e.g. /search harbour with boats")
        async with self._typing(context, update):
            await self._render(update, context, await self.service.search(user_of(update), text))

    @replying
    async def more(self, update: Update, context: Context) -> None:
        """/more: the next results of the last search."""
        async with self._typing(context, update):
            await self._render(update, context, await self.service.more(user_of(update)))

    @replying
    async def similar(self, update: Update, context: Context) -> None:
        """/similar or "more like this": image-to-image search from the replied or last image."""
        await self._similar(update, context)

    @replying
    async def text(self, update: Update, context: Context) -> None:
        """A text message: a question, a search, or "more like this" as a reply."""
        message = update.effective_message
        assert message is not None
        if MORE_LIKE_THIS.match(message.text or ""):
            await self._similar(update, context)
            return
        await self._ask(update, context, message.text or "", [])

    @replying
    async def image(self, update: Update, context: Context) -> None:
        """A photo, an image file or an album: described, or its caption answered."""
        message = update.effective_message
        assert message is not None
        parts = self.albums.take(message)
        uploads = [await self._download(part) for part in parts]
        caption = next((part.caption for part in parts if part.caption), "")
        await self._ask(update, context, caption, uploads)

    @replying
    async def unsupported(self, update: Update, context: Context) -> None:
        """Anything else (stickers, voice, empty messages...)."""
        raise UserFacingError("I understand text and images (photos or image files) only.")

    async def error(self, update: object, context: Context) -> None:
        """Log an unexpected error with an id and show the id to the user."""
        error_id = uuid.uuid4().hex[:8]
        logger.error("error %s handling %s", error_id, update, exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            await context.bot.send_message(
                update.effective_chat.id,
                f"Sorry, something went wrong (error id {error_id}). Nothing you sent before "
                "was lost; please try again.")

    # ----- helpers
    async def _ask(self, update: Update, context: Context, text: str, uploads: list[bytes]) -> None:
        chat_id = _chat_id(update)
        growing = GrowingReply(context.bot, chat_id, self.config.stream_edit_interval_s)
        async with self._typing(context, update):
            reply = await self.service.ask(user_of(update), text, uploads, growing.update)
            await growing.finish(reply.text)
            if reply.hits:
                await send_hits(context.bot, chat_id, reply.hits)

    async def _similar(self, update: Update, context: Context) -> None:
        message = update.effective_message
        target = message.reply_to_message if message is not None else None
        upload = await self._download(target) if target is not None and _has_image(target) else None
        async with self._typing(context, update):
            reply = await self.service.similar(user_of(update), upload)
            await self._render(update, context, reply)

    def _typing(self, context: Context, update: Update) -> AbstractAsyncContextManager[None]:
        return typing(context.bot, _chat_id(update), after_s=self.config.typing_delay_s)

    async def _render(self, update: Update, context: Context, reply: Reply) -> None:
        chat_id = _chat_id(update)
        if reply.text:
            await send_text(context.bot, chat_id, reply.text)
        if reply.hits:
            await send_hits(context.bot, chat_id, reply.hits)

    async def _say(self, update: Update, context: Context, text: str) -> None:
        await send_text(context.bot, _chat_id(update), text)

    async def _download(self, message: Message) -> bytes:
        if message.document is not None:
            size, file_id = message.document.file_size, message.document.file_id
        elif message.photo:
            size, file_id = message.photo[-1].file_size, message.photo[-1].file_id
        else:
            raise UserFacingError("That message has no image.")
        if size is not None and size > self.config.max_image_bytes:
            raise UserFacingError(
                f"The file is too large (limit {self.config.max_image_bytes // 2**20} MB).")
        try:
            file = await message.get_bot().get_file(file_id)
            return bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            raise UserFacingError(f"I could not download that file ({exc.message}).") from exc


def _chat_id(update: Update) -> int:
    assert update.effective_chat is not None
    return update.effective_chat.id


def _has_image(message: Message) -> bool:
    return bool(message.photo) or message.document is not None
