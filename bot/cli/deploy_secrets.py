"""`capret deploy-secrets`: the secrets deploy/compose.gpu.yaml reads, made once into its .env.

Each is 32 random bytes from the operating system (``secrets``), written as 64 hex characters:
fit for a password in a database URL, an HTTP bearer token and Telegram's webhook secret token
(which allows only A-Z, a-z, 0-9, _ and -). The file is created readable by its owner only, and
never overwritten: PostgreSQL keeps the password its volume was first made with, so a new one
would lock the bot out (``--force`` when that is really meant).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from bot.environment import WEBHOOK_SECRET_ENV

DEFAULT_ENV_FILE = Path("deploy/.env")
# The variables deploy/compose.gpu.yaml interpolates and refuses to start without.
# The key's name is engine.backends.vllm_connect.API_KEY_ENV (not imported: it loads torch;
# a test checks they agree).
SECRET_NAMES = ("POSTGRES_PASSWORD", "CAPRET_VLLM_API_KEY", WEBHOOK_SECRET_ENV)
SECRET_BYTES = 32
HEADER = ("# Secrets of deploy/compose.gpu.yaml, written by `capret deploy-secrets`.\n"
          "# Keep this file private (mode 600) and out of version control.\n"
          "# TELEGRAM_BOT_TOKEN=... may go here too (from @BotFather), or in the shell.\n")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret deploy-secrets [--out FILE] [--force]` to ``sub``."""
    parser = sub.add_parser("deploy-secrets",
                            help="make the secrets deploy/compose.gpu.yaml needs (a .env file)")
    parser.add_argument("--out", type=Path, default=DEFAULT_ENV_FILE,
                        help=f"the file to write (default {DEFAULT_ENV_FILE})")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing file (the database keeps its old password)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write fresh secrets to ``args.out``; 1 when it exists (and not ``--force``)."""
    out: Path = args.out
    if out.exists() and not args.force:
        print(f"{out} exists; kept as it is (the database was made with its password). "
              "--force replaces it.", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    write_private(out, render_env(fresh_secrets()))
    print(f"wrote {', '.join(SECRET_NAMES)} to {out}")
    return 0


def fresh_secrets() -> dict[str, str]:
    """A new random value for every secret the compose file needs."""
    return {name: secrets.token_hex(SECRET_BYTES) for name in SECRET_NAMES}


def render_env(values: dict[str, str]) -> str:
    """The .env text: the header, then ``NAME=value`` lines."""
    return HEADER + "".join(f"{name}={value}\n" for name, value in values.items())


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read, from its first byte on."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(tmp, path)
