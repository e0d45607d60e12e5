"""Small dialect-aware helpers shared by the repository and the gallery."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.tables import GalleryItem, Image, ImageSource, MessagePart

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
    for start in range(0, len(items), size):
        yield items[start:start + size]


def referenced_shas(session: Session, shas: Sequence[str]) -> set[str]:
    """The hashes among ``shas`` that some row still references (parts, sources, gallery)."""
    found: set[str] = set()
    for part in chunks(list(shas)):
        for column in (MessagePart.image_sha256, ImageSource.image_sha256,
                       GalleryItem.image_sha256):
            found.update(s for s in session.scalars(select(column).where(column.in_(part))) if s)
    return found


def existing_images(session: Session, shas: Sequence[str]) -> set[str]:
    """The hashes among ``shas`` that have an images row."""
    found: set[str] = set()
    for part in chunks(list(shas)):
        found.update(session.scalars(select(Image.sha256).where(Image.sha256.in_(part))))
    return found
