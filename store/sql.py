"""Small dialect-aware SQL helpers: insert-or-ignore, and chunked ``IN`` lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

CHUNK = 500


def insert_ignore(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (concurrent writers may insert the same key)."""
    if not rows:
        return
    name = session.get_bind().dialect.name
    if name == "postgresql":
        session.execute(postgresql.insert(table).on_conflict_do_nothing(), list(rows))
    elif name == "sqlite":
        session.execute(sqlite.insert(table).on_conflict_do_nothing(), list(rows))
    else:  # other databases: check first (fine under their default isolation for our use)
        key = [c.name for c in table.primary_key.columns]
        for row in rows:
            where = [table.c[k] == row[k] for k in key]
            if session.execute(select(*table.primary_key.columns).where(*where)).first() is None:
                session.execute(table.insert(), [row])


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """``items`` in slices of ``size`` (keeps ``IN (...)`` lists within every dialect's limit)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
