"""SQLite durability settings: WAL with synchronous=NORMAL by default, FULL on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from store import StoreConfig, open_store

# PRAGMA synchronous reports a number: 1 = NORMAL, 2 = FULL.
LEVELS = {"NORMAL": 1, "FULL": 2}


@pytest.mark.parametrize(("level", "expected"), [(None, "NORMAL"), ("FULL", "FULL")])
def test_every_connection_gets_wal_and_the_configured_synchronous(
    tmp_path: Path, level: str | None, expected: str
) -> None:
    config = StoreConfig(data_dir=str(tmp_path))
    if level is not None:
        config = StoreConfig(data_dir=str(tmp_path), sqlite_synchronous=level)  # type: ignore[arg-type]
    store = open_store(config)
    try:
        user = store.repo.get_or_create_user("test", "1").id
        store.repo.append_turn(user, "user", ["hello"])
        for session in (store.db.write(), store.db.read()):
            with session as s:
                assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert s.execute(text("PRAGMA synchronous")).scalar() == LEVELS[expected]
    finally:
        store.close()

