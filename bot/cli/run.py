"""`capret run`: the main job: the Telegram bot with a token, else the terminal chat."""

from __future__ import annotations

import argparse
import logging

from bot.config import load_config
from bot.environment import BOT_TOKEN_ENV, secret
from bot.logs import default_log_file

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret run` to ``sub``."""
    parser = sub.add_parser("run", help="start the bot (TELEGRAM_BOT_TOKEN set) or terminal chat")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the Telegram bot when TELEGRAM_BOT_TOKEN is set, else the terminal chat."""
    config = load_config(args.config)
    if secret(BOT_TOKEN_ENV):
        logger.info("TELEGRAM_BOT_TOKEN is set: starting the Telegram bot")
        print("Starting the Telegram bot (Ctrl-C stops it); log lines go to "
              f"{default_log_file()} (or the terminal with --verbose).", flush=True)
        from bot.telegram.main import run_telegram

        return run_telegram(config)
    logger.info("no TELEGRAM_BOT_TOKEN: starting the terminal chat")
    from bot.terminal import run_terminal

    return run_terminal(config)
