"""`capret chat`: talk to the model in the terminal (same service and commands as Telegram)."""

from __future__ import annotations

import argparse

from bot.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret chat` to ``sub``."""
    parser = sub.add_parser("chat", help="terminal chat: /image PATH attaches an image")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the terminal chat over the configured engine and store."""
    from bot.terminal import run_terminal

    return run_terminal(load_config(args.config))
