"""`capret db upgrade|status`: the database schema (Alembic), at CAPRET_DATABASE_URL or SQLite."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.config import load_config
from bot.environment import DATABASE_URL_ENV, secret
from store import SchemaTooNewError, database_url
from store.db import Database
from store.schema import check_schema, current_revision, head_revision, upgrade


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret db upgrade|status` to ``sub``."""
    parser = sub.add_parser("db", help="database schema: upgrade, status")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("upgrade", help="apply pending schema migrations").set_defaults(
        func=run_upgrade)
    actions.add_parser("status", help="print the schema revision").set_defaults(func=run_status)


def _database(args: argparse.Namespace) -> Database:
    config = load_config(args.config).store
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    return Database(database_url(config, secret(DATABASE_URL_ENV)), config.busy_timeout_s)


def run_upgrade(args: argparse.Namespace) -> int:
    """Apply pending migrations and print the schema revision; 1 if the database is newer."""
    db = _database(args)
    try:
        before, after = upgrade(db)
    except SchemaTooNewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(f"schema at {after}" + (f" (was {before or 'empty'})" if before != after else
                                  " (already current)"))
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the schema revision and its state; 0 only when it is current."""
    db = _database(args)
    try:
        state = check_schema(db)
        print(f"schema {current_revision(db) or 'empty'}, newest known {head_revision()}: "
              f"{state}")
        return 0 if state == "current" else 1
    except SchemaTooNewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
