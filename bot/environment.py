"""What comes from the environment, never from YAML or code: secrets and deployment settings.

Every variable the bot reads is named here once.
"""

from __future__ import annotations

import os

# Telegram: the bot's token, the Bot API root (a self-hosted telegram-bot-api), the webhook's
# secret token, and the admins' user ids (comma-separated).
BOT_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
API_URL_ENV = "TELEGRAM_API_URL"
WEBHOOK_SECRET_ENV = "TELEGRAM_WEBHOOK_SECRET"
ADMIN_IDS_ENV = "TELEGRAM_ADMIN_IDS"
# Any SQLAlchemy URL; unset: SQLite in the store's data_dir.
DATABASE_URL_ENV = "CAPRET_DATABASE_URL"


def secret(name: str) -> str | None:
    """Secrets (bot token, database URL) come only from the environment."""
    value = os.environ.get(name, "").strip()
    return value or None
