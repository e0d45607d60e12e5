"""Webhook mode: Telegram POSTs each update to our URL, and a secret token proves it was Telegram.

Without the token anyone who learns the URL could post updates as any user (a group's
administrator confirming /forget, say). Telegram sends the token registered by ``setWebhook``
in the ``X-Telegram-Bot-Api-Secret-Token`` header; python-telegram-bot's webhook server refuses
(403) every request without it or with another. So webhook mode does not start without one.
"""

from __future__ import annotations

import re
from typing import Any

from telegram import Update

from bot.bot_config import BotConfig
from bot.environment import WEBHOOK_SECRET_ENV, secret

# Telegram's rule for secret_token: 1-256 of these characters; fewer than 16 is guessable.
SECRET_CHARS = re.compile(r"[A-Za-z0-9_-]+")
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
HOW_TO_MAKE = "generate one with `capret deploy-secrets` or `openssl rand -hex 32`"


class WebhookSecretError(ValueError):
    """Webhook mode without a usable secret token; the message says how to make one."""


def webhook_secret() -> str:
    """The secret token from ``TELEGRAM_WEBHOOK_SECRET``, checked; raises if unusable."""
    value = secret(WEBHOOK_SECRET_ENV)
    if value is None:
        raise WebhookSecretError(f"webhook mode needs {WEBHOOK_SECRET_ENV}: {HOW_TO_MAKE}")
    if not SECRET_CHARS.fullmatch(value) or len(value) > MAX_SECRET_CHARS:
        raise WebhookSecretError(f"{WEBHOOK_SECRET_ENV} may hold only A-Z, a-z, 0-9, _ and - "
                                 f"(at most {MAX_SECRET_CHARS}): {HOW_TO_MAKE}")
    if len(value) < MIN_SECRET_CHARS:
        raise WebhookSecretError(f"{WEBHOOK_SECRET_ENV} is too short to be secret (fewer "
                                 f"than {MIN_SECRET_CHARS} characters): {HOW_TO_MAKE}")
    return value


def webhook_options(bot: BotConfig, secret_token: str) -> dict[str, Any]:
    """The arguments of ``run_webhook`` / ``Updater.start_webhook`` for ``bot``'s settings."""
    if not bot.webhook_url:
        raise ValueError("bot.webhook_url is not set: this is polling mode")
    return {"listen": bot.webhook_listen, "port": bot.webhook_port,
            "url_path": bot.webhook_path,
            "webhook_url": f"{bot.webhook_url.rstrip('/')}/{bot.webhook_path}",
            "secret_token": secret_token, "allowed_updates": Update.ALL_TYPES}
