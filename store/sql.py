"""Small dialect-aware SQL helpers: insert-or-ignore, and chunked ``IN`` lists."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

CHUNK = 500


def insert_ignore(bind: Session | Connection, table: Any,
                  rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (concurrent writers may insert the same key)."""
    if not rows:
        return
    dialect = (bind.get_bind() if isinstance(bind, Session) else bind).dialect.name
    statement = _insert_ignore(dialect, table)
    if statement is not None:
        bind.execute(statement, list(rows))
        return
    # other databases: check first (fine under their default isolation for our use)
    key = [c.name for c in table.primary_key.columns]
    for row in rows:
        where = [table.c[k] == row[k] for k in key]
        if bind.execute(select(*table.primary_key.columns).where(*where)).first() is None:
            bind.execute(table.insert(), [row])


@functools.cache
def _insert_ignore(dialect: str, table: Any) -> Any:
    """The dialect's INSERT ... ON CONFLICT DO NOTHING of a table, built once (as
    ``store/turn_sql.py`` builds its statements); None where the dialect has none.
    """
    make: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    return None if make is None else make(table).on_conflict_do_nothing()


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """``items`` in slices of ``size`` (keeps ``IN (...)`` lists within every dialect's limit)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
