"""The Telegram transport: builds the python-telegram-bot Application and runs it.

The token comes only from ``TELEGRAM_BOT_TOKEN``; the Bot API server root from
``TELEGRAM_API_URL`` (default Telegram's own), so a self-hosted telegram-bot-api works too.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.bot_config import BotConfig
from bot.config import AppConfig
from bot.environment import API_URL_ENV, BOT_TOKEN_ENV, secret
from bot.service.conversation import ConversationService
from bot.service.store_adapter import StoreAdapter
from bot.telegram.flow import AlbumCollector, ChatOrderedProcessor
from bot.telegram.handlers import Handlers
from bot.telegram.request import AiohttpRequest
from bot.telegram.webhook import WebhookSecretError, webhook_options, webhook_secret
from bot.usage import UsageGuard, admin_ids

logger = logging.getLogger(__name__)

DEFAULT_API_ROOT = "https://api.telegram.org"


def api_root() -> str:
    """The Bot API server root, without a trailing slash."""
    return (secret(API_URL_ENV) or DEFAULT_API_ROOT).rstrip("/")


def build_application(
    service: ConversationService, config: BotConfig, token: str, root: str = DEFAULT_API_ROOT,
    usage: UsageGuard | None = None,
) -> Application:
    """The Application: ordered-per-chat processing, Telegram's send limits, every handler."""
    albums = AlbumCollector(config.album_wait_s)
    processor = ChatOrderedProcessor(
        config.max_concurrent_updates, config.max_queued_per_chat, albums)
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .concurrent_updates(processor)
        .rate_limiter(AIORateLimiter(overall_max_rate=config.send_rate_per_s, max_retries=2))
        .request(AiohttpRequest(config.connection_pool_size))
        .get_updates_request(AiohttpRequest(1))
        .build()
    )
    handlers = Handlers(service, config, albums, usage)
    processor.on_overflow = handlers.on_overflow
    register(application, handlers)
    return application


# Every command the bot answers in Telegram: its replies name no other
# (tests/bot/test_command_names.py).
COMMANDS = ("start", "help", "about", "reset", "history", "export", "forget", "search", "more",
            "similar", "stats", "tiles")


def register(application: Application, handlers: Handlers) -> None:
    """Attach every handler; the guard (allow-list, rate limit) runs first."""
    application.add_handler(TypeHandler(Update, handlers.guard), group=-1)
    for name in COMMANDS:  # each handled by the method of its name
        application.add_handler(CommandHandler(name, getattr(handlers, name)))
    application.add_handler(CallbackQueryHandler(handlers.forget_answer, pattern=r"^forget:"))
    application.add_handler(CallbackQueryHandler(handlers.feedback_answer,
                                                 pattern=r"^rate:\d+:-?1$"))
    # Every document goes to the decoder, which names what it accepts when it refuses one.
    application.add_handler(MessageHandler(filters.PHOTO | filters.Document.ALL, handlers.image))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, handlers.text))
    application.add_handler(MessageHandler(filters.ALL, handlers.unsupported))
    application.add_error_handler(handlers.error)


def run_telegram(config: AppConfig) -> int:
    """Run the bot until interrupted: polling, or a webhook when ``bot.webhook_url`` is set."""
    from bot.app import build_service

    token = secret(BOT_TOKEN_ENV)
    if token is None:
        logger.error("TELEGRAM_BOT_TOKEN is not set")
        return 2
    try:  # before anything loads: a webhook never runs without its secret token
        hook = webhook_options(config.bot, webhook_secret()) if config.bot.webhook_url else None
    except WebhookSecretError as exc:
        logger.error("%s", exc)
        return 2
    admins = admin_ids()
    service = build_service(config)
    usage = None
    if isinstance(service.store, StoreAdapter):
        usage = UsageGuard(service.store.usage, config.bot, admins)
    try:
        _serve(build_application(service, config.bot, token, api_root(), usage), hook)
    finally:
        service.close()
    return 0


def _serve(application: Application, hook: dict[str, Any] | None) -> None:
    """Poll, or serve the webhook (``webhook_options``), until interrupted."""
    if hook is not None:
        logger.info("webhook mode: %s (listening on %s:%d)", hook["webhook_url"],
                    hook["listen"], hook["port"])
        application.run_webhook(**hook)
    else:
        logger.info("polling %s", api_root())
        application.run_polling(allowed_updates=Update.ALL_TYPES)
