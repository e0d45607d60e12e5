"""Which stored images rows still use, and removing those nothing uses (rows, then files).

An image's file stays while its ``images`` row exists; that row stays while a message part, a
source claim (``image_sources``) or a gallery row references it. Every deletion of users,
gallery rows or failed writes ends here.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.blobs import BlobStore
from store.db import Database
from store.sql import chunks
from store.tables import Embedding, GalleryItem, Image, ImageSource, MessagePart, ShownImage


def existing_images(session: Session, shas: Sequence[str]) -> set[str]:
    """The hashes among ``shas`` that have an images row."""
    found: set[str] = set()
    for part in chunks(list(shas)):
        found.update(session.scalars(select(Image.sha256).where(Image.sha256.in_(part))))
    return found


def images_with_rows(db: Database, shas: list[str]) -> set[str]:
    """``existing_images`` in a read session of its own: what the blob store asks before it
    deletes files (a file is kept while its images row exists).
    """
    with db.read() as s:
        return existing_images(s, shas)


def referenced_shas(session: Session, shas: Sequence[str]) -> set[str]:
    """The hashes among ``shas`` that some row still references (parts, sources, gallery)."""
    found: set[str] = set()
    for part in chunks(list(shas)):
        for column in (MessagePart.image_sha256, ImageSource.image_sha256,
                       GalleryItem.image_sha256):
            found.update(s for s in session.scalars(select(column).where(column.in_(part))) if s)
    return found


def delete_unreferenced_images(session: Session, candidates: Sequence[str]) -> int:
    """Delete the rows of the candidates no row references any more (their cached
    embeddings, shown marks and images rows; footprints go by cascade); the rows deleted.
    """
    unique = list(dict.fromkeys(candidates))
    still = referenced_shas(session, unique)
    rows = 0
    for part in chunks([sha for sha in unique if sha not in still]):
        for stmt in (delete(Embedding).where(Embedding.image_sha256.in_(part)),
                     delete(ShownImage).where(ShownImage.image_sha256.in_(part)),
                     delete(Image).where(Image.sha256.in_(part))):
            rows += int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    return rows


def delete_unreferenced_files(db: Database, blobs: BlobStore, shas: Sequence[str]) -> int:
    """Delete the files of those images that have no images row (after their rows went, or
    after a failed write); the files deleted.
    """
    if not shas:
        return 0
    with blobs.deleting():
        return blobs.delete_unreferenced(list(shas), lambda found: images_with_rows(db, found))
