"""Gallery images shown by a conversation's current search (``/more`` skips them; a new
search clears them, so it ranks the whole gallery again).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from store.db import Database
from store.sql import insert_ignore
from store.tables import ShownImage, utcnow


class ShownImages:
    """Rows of ``shown_images``: (conversation, image sha256); they go with either."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def mark(self, conversation_id: int, shas: Iterable[str]) -> None:
        """Record images shown in a conversation."""
        rows = [{"conversation_id": conversation_id, "image_sha256": sha, "shown_at": utcnow()}
                for sha in dict.fromkeys(shas)]
        with self.db.write() as s:
            insert_ignore(s, ShownImage.__table__, rows)

    def of(self, conversation_id: int) -> set[str]:
        """Hashes of the images already shown in the conversation."""
        with self.db.read() as s:
            return set(s.scalars(select(ShownImage.image_sha256)
                                 .where(ShownImage.conversation_id == conversation_id)))

    def clear(self, conversation_id: int) -> None:
        """Forget what the conversation was shown: its next search starts afresh."""
        with self.db.write() as s:
            s.execute(delete(ShownImage).where(ShownImage.conversation_id == conversation_id))
