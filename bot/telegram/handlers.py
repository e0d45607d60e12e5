"""Telegram handlers: thin; an Update becomes plain inputs, the service answers, we render."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.bot_config import BotConfig
from bot.errors import UserFacingError
from bot.help_text import HELP, HELP_GROUP, START
from bot.ratelimit import RateLimiter, Verdict
from bot.replies import Reply
from bot.service.conversation import ConversationService
from bot.telegram.chat import (
    conversation_of,
    is_addressed,
    is_group,
    place_of,
    without_mention,
)
from bot.telegram.confirm import (
    ANY_ADMIN,
    CANCELLED,
    EXPIRED,
    NOT_YOURS,
    QUESTION,
    forget_buttons,
    parse_confirmation,
)
from bot.telegram.flow import AlbumCollector
from bot.telegram.group_admins import GroupAdmins
from bot.telegram.render import GrowingReply, send_hits, send_text, typing
from bot.usage import UsageGuard, render_stats

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
                place = place_of(update)
                await context.bot.send_message(place.chat_id, str(exc),
                                               message_thread_id=place.thread_id)

    return wrapper


class Handlers:
    """Every handler of the bot, sharing the service, the limits and the album collector."""

    def __init__(self, service: ConversationService, config: BotConfig, albums: AlbumCollector,
                 usage: UsageGuard | None = None):
        self.service = service
        self.config = config
        self.albums = albums
        # Daily limits and /stats (None: no limits, e.g. a store without usage counters).
        self.usage = usage
        self.limiter = RateLimiter(config.rate_limit_messages, config.rate_limit_window_s)
        self.group_admins = GroupAdmins(config.group_admin_cache_s)

    async def guard(self, update: Update, context: Context) -> None:
        """Group addressing, allow-list and per-user rate limit, before any other handler."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None or not self._addressed(update, context):
            raise ApplicationHandlerStop
        place = place_of(update)
        allowed = self.config.allowed_user_ids
        if allowed and user.id not in allowed:
            await context.bot.send_message(chat.id, "Sorry, this bot is private.",
                                           message_thread_id=place.thread_id)
            raise ApplicationHandlerStop
        verdict = self.limiter.check(user.id)
        if verdict is Verdict.WARN:
            wait = self.limiter.retry_after(user.id)
            await context.bot.send_message(chat.id, FLOOD.format(s=max(wait, 1)),
                                           message_thread_id=place.thread_id)
        if verdict is not Verdict.ALLOW:
            raise ApplicationHandlerStop

    async def on_overflow(self, update: Update) -> None:
        """A chat's queue is full: say so once."""
        if update.effective_chat is not None:
            place = place_of(update)
            await update.get_bot().send_message(place.chat_id, BUSY,
                                                message_thread_id=place.thread_id)

    async def start(self, update: Update, context: Context) -> None:
        """/start: greeting and what the bot can do."""
        await self._say(update, context, START)

    async def help(self, update: Update, context: Context) -> None:
        """/help: what the bot can do in this chat, with examples."""
        text = HELP_GROUP.format(bot=context.bot.username) if is_group(update) else HELP
        if self._is_admin(update):
            text += "\n\nAdmin: /stats users, turns, images, model-call times, sizes."
        await self._say(update, context, text)

    @replying
    async def stats(self, update: Update, context: Context) -> None:
        """/stats (admins only): usage, timings and sizes."""
        if self.usage is None or not self._is_admin(update):
            raise UserFacingError("/stats is for the bot's admins.")
        stats = await self.usage.stats()
        size = await asyncio.to_thread(self.service.store.gallery_size)
        await self._say(update, context, render_stats(stats, size))

    async def about(self, update: Update, context: Context) -> None:
        """/about: model, weights, gallery size."""
        await self._say(update, context, await self.service.about())

    async def reset(self, update: Update, context: Context) -> None:
        """/reset: start a new conversation."""
        await self._say(update, context, await self.service.reset(conversation_of(update)))

    async def history(self, update: Update, context: Context) -> None:
        """/history: the current conversation as text."""
        await self._say(update, context, await self.service.history(conversation_of(update)))

    @replying
    async def export(self, update: Update, context: Context) -> None:
        """/export: the conversation's data as a zip archive (a group's: its admins only)."""
        await self._require_group_admin(update, context, "export")
        archive = await self.service.export(conversation_of(update))
        place = place_of(update)
        await context.bot.send_document(place.chat_id, archive, filename="capret-export.zip",
                                        caption="Everything I keep about this conversation.",
                                        message_thread_id=place.thread_id)

    @replying
    async def forget(self, update: Update, context: Context) -> None:
        """/forget: ask the asker for confirmation with buttons (a group's: its admins only)."""
        await self._require_group_admin(update, context, "delete")
        assert update.effective_user is not None
        asker = ANY_ADMIN if _anonymous_admin(update) else update.effective_user.id
        place = place_of(update)
        await context.bot.send_message(place.chat_id, QUESTION,
                                       reply_markup=forget_buttons(asker, time.time()),
                                       message_thread_id=place.thread_id)

    @replying
    async def feedback_answer(self, update: Update, context: Context) -> None:
        """A 👍/👎 tap under a reply: kept, acknowledged, the choice marked (changeable)."""
        query = update.callback_query
        assert query is not None and query.data is not None
        _, turn, rating = query.data.split(":")
        text = await self.service.rate(conversation_of(update), int(turn), int(rating))
        await query.answer(text)
        await query.edit_message_reply_markup(rating_buttons(int(turn), int(rating)))

    @replying
    async def forget_answer(self, update: Update, context: Context) -> None:
        """The /forget confirmation buttons: only the asker's tap counts, and not for long."""
        query = update.callback_query
        assert query is not None
        asked = parse_confirmation(query.data)
        if asked is not None and not asked.answers_for(query.from_user.id):
            await query.answer(NOT_YOURS, show_alert=True)
            return
        await query.answer()
        if asked is None or asked.expired(time.time(), self.config.forget_confirm_s):
            await query.edit_message_text(EXPIRED)
            return
        if not asked.delete:
            await query.edit_message_text(CANCELLED)
            return
        # Still an administrator now (and, for an anonymous request, the tapper is one).
        await self._require_group_admin(update, context, "delete")
        await query.edit_message_text(await self.service.forget(conversation_of(update)))

    @replying
    async def search(self, update: Update, context: Context) -> None:
        """/search <text>: forced retrieval."""
        text = " ".join(context.args or [])
        if not text:
            raise UserFacingError("Tell me what to look for, e.g. /search harbour with boats")
        await self._charge_call(update)
        async with self._typing(context, update):
            reply = await self.service.search(conversation_of(update), text)
            await self._render(update, context, reply)

    @replying
    async def tiles(self, update: Update, context: Context) -> None:
        """/tiles: the newest large scene's grid, each tile with its caption."""
        sheet = await self.service.tiles(conversation_of(update))
        place = place_of(update)
        await context.bot.send_photo(place.chat_id, sheet, caption="The scene tile by tile.",
                                     message_thread_id=place.thread_id)

    @replying
    async def more(self, update: Update, context: Context) -> None:
        """/more: the next results of the last search."""
        async with self._typing(context, update):
            await self._render(update, context, await self.service.more(conversation_of(update)))

    @replying
    async def similar(self, update: Update, context: Context) -> None:
        """/similar or "more like this": image-to-image search from the replied or last image."""
        await self._charge_call(update)
        await self._similar(update, context)

    @replying
    async def text(self, update: Update, context: Context) -> None:
        """A text message: a question, a search, or "more like this" as a reply."""
        message = update.effective_message
        assert message is not None
        text = without_mention(message.text or "", context.bot.username)
        await self._charge_call(update)
        if MORE_LIKE_THIS.match(text):
            await self._similar(update, context)
            return
        await self._ask(update, context, text, [])

    @replying
    async def image(self, update: Update, context: Context) -> None:
        """A photo, an image file or an album: described, or its caption answered."""
        message = update.effective_message
        assert message is not None
        parts = self.albums.take(message)
        await self._charge_call(update)
        uploads = [await self._download(update, part) for part in parts]
        caption = next((part.caption for part in parts if part.caption), "")
        await self._ask(update, context, without_mention(caption, context.bot.username), uploads)

    @replying
    async def unsupported(self, update: Update, context: Context) -> None:
        """Anything else (stickers, voice, empty messages...)."""
        raise UserFacingError("I understand text and images (photos or image files) only.")

    async def error(self, update: object, context: Context) -> None:
        """Log an unexpected error with an id and show the id to the user."""
        error_id = uuid.uuid4().hex[:8]
        logger.error("error %s handling %s", error_id, update, exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            place = place_of(update)
            await context.bot.send_message(
                place.chat_id,
                f"Sorry, something went wrong (error id {error_id}). Nothing you sent before "
                "was lost; please try again.", message_thread_id=place.thread_id)

    # ----- helpers
    async def _ask(self, update: Update, context: Context, text: str, uploads: list[bytes]) -> None:
        place = place_of(update)
        # In a group the answer quotes the question it answers (others may be talking).
        message = update.effective_message
        quote = message.message_id if message is not None and is_group(update) else None
        growing = GrowingReply(context.bot, place.chat_id, self.config.stream_edit_interval_s,
                               reply_to=quote, thread_id=place.thread_id)
        async with self._typing(context, update):
            reply = await self.service.ask(conversation_of(update), text, uploads, growing.update)
            await growing.finish(reply.text)
            if reply.hits:
                await send_hits(context.bot, place.chat_id, reply.hits, place.thread_id)
            elif reply.turn_id is not None:
                await growing.attach(rating_buttons(reply.turn_id))

    async def _similar(self, update: Update, context: Context) -> None:
        message = update.effective_message
        target = message.reply_to_message if message is not None else None
        has_image = target is not None and _has_image(target)
        upload = await self._download(update, target) if target and has_image else None
        async with self._typing(context, update):
            reply = await self.service.similar(conversation_of(update), upload)
            await self._render(update, context, reply)

    def _typing(self, context: Context, update: Update) -> AbstractAsyncContextManager[None]:
        place = place_of(update)
        return typing(context.bot, place.chat_id, after_s=self.config.typing_delay_s,
                      thread_id=place.thread_id)

    async def _render(self, update: Update, context: Context, reply: Reply) -> None:
        place = place_of(update)
        if reply.text:
            await send_text(context.bot, place.chat_id, reply.text, thread_id=place.thread_id)
        if reply.hits:
            await send_hits(context.bot, place.chat_id, reply.hits, place.thread_id)

    async def _say(self, update: Update, context: Context, text: str) -> None:
        place = place_of(update)
        await send_text(context.bot, place.chat_id, text, thread_id=place.thread_id)

    def _addressed(self, update: Update, context: Context) -> bool:
        """In groups only messages meant for the bot count; a whole album counts when any
        of its parts mentions the bot (usually the caption of one part).
        """
        message = update.effective_message  # edited messages too, not only new ones
        if update.callback_query is not None or message is None or not is_group(update):
            return True
        bot = context.bot
        parts = self.albums.peek(message)
        if any(is_addressed(part, bot.username, bot.id) for part in parts):
            return True
        self.albums.take(message)  # an album not for us: drop its gathered parts
        return False

    async def _require_group_admin(self, update: Update, context: Context, action: str) -> None:
        """In a group, only its administrators may act on its whole memory (raises if not)."""
        user, chat = update.effective_user, update.effective_chat
        if not is_group(update) or _anonymous_admin(update):
            return
        assert user is not None and chat is not None
        await self.group_admins.require(context.bot, chat.id, user.id, action)

    def _is_admin(self, update: Update) -> bool:
        user = update.effective_user
        return self.usage is not None and user is not None and self.usage.is_admin(user.id)

    async def _charge_call(self, update: Update) -> None:
        """Count a model call against the sender's daily limit (refused when used up)."""
        if self.usage is not None and update.effective_user is not None:
            await self.usage.model_call(update.effective_user.id)

    async def _download(self, update: Update, message: Message) -> bytes:
        if message.document is not None:
            size, file_id = message.document.file_size, message.document.file_id
        elif message.photo:
            size, file_id = message.photo[-1].file_size, message.photo[-1].file_id
        else:
            raise UserFacingError("That message has no image.")
        if size is not None and size > self.config.max_image_bytes:
            raise UserFacingError(
                f"The file is too large (limit {self.config.max_image_bytes // 2**20} MB).")
        if self.usage is not None and update.effective_user is not None:
            await self.usage.upload(update.effective_user.id, size or 0)
        try:
            file = await message.get_bot().get_file(file_id)
            return bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            raise UserFacingError(f"I could not download that file ({exc.message}).") from exc


def rating_buttons(turn_id: int, chosen: int = 0) -> InlineKeyboardMarkup:
    """👍/👎 under a description; the chosen one marked."""
    def button(label: str, rating: int) -> InlineKeyboardButton:
        mark = " ✓" if rating == chosen else ""
        return InlineKeyboardButton(label + mark, callback_data=f"rate:{turn_id}:{rating}")

    return InlineKeyboardMarkup([[button("👍", 1), button("👎", -1)]])


def _anonymous_admin(update: Update) -> bool:
    """A message an administrator sent anonymously, "as the group" (Telegram sets the sender
    chat; only administrators can).
    """
    message, chat = update.effective_message, update.effective_chat
    sender = message.sender_chat if message is not None else None
    return (update.callback_query is None and chat is not None and sender is not None
            and sender.id == chat.id)


def _has_image(message: Message) -> bool:
    return bool(message.photo) or message.document is not None
