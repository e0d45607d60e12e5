"""`capret db upgrade|status`: the database schema (Alembic), at CAPRET_DATABASE_URL or SQLite."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.config import AppConfig, load_config, secret
from store import SchemaTooNewError, database_url
from store.db import Database
from store.schema import check_schema, current_revision, head_revision, upgrade


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("db", help="database schema: upgrade, status")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("upgrade", help="apply pending schema migrations").set_defaults(
        func=run_upgrade)
    actions.add_parser("status", help="print the schema revision").set_defaults(func=run_status)


def _database(args: argparse.Namespace) -> Database:
    config = load_config(args.config).store
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    return Database(database_url(config, secret("CAPRET_DATABASE_URL")), config.busy_timeout_s)


def run_upgrade(args: argparse.Namespace) -> int:
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


def check_database(config: AppConfig) -> tuple[bool, str]:
    """`capret doctor`: the database is reachable and its schema current."""
    url = database_url(config.store, secret("CAPRET_DATABASE_URL"))
    shown = make_url(url).render_as_string(hide_password=True)
    db = Database(url, config.store.busy_timeout_s)
    try:
        state = check_schema(db)
    except SchemaTooNewError as exc:
        return False, str(exc)
    finally:
        db.dispose()
    if state == "current":
        return True, f"{shown} (schema {head_revision()})"
    auto = " (the app upgrades it on start)" if config.store.auto_upgrade else ""
    return config.store.auto_upgrade, f"{shown}: schema behind, run `capret db upgrade`{auto}"


def check_gallery(config: AppConfig) -> tuple[bool, str]:
    """`capret doctor`: the gallery has images, or a seed folder to index on first start."""
    from store import open_store

    store = open_store(config.store, secret("CAPRET_DATABASE_URL"), sweep=False)
    try:
        stats = store.gallery.stats()
    finally:
        store.close()
    seed = config.store.gallery.seed_folder
    if stats.count:
        return True, (f"{stats.count} images ({stats.index_kind}, vectors from bridge "
                      f"{stats.bridge_id})")
    if seed and Path(seed).is_dir():
        return True, f"empty; {seed} is indexed on first start"
    return False, "empty and no seed folder: run `capret gallery add PATH`"
