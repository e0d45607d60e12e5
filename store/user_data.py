"""A user's data out (export as one zip) and gone (forget: rows, files, gallery vectors)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.blobs import BlobStore
from store.db import Database
from store.errors import UnknownUserError
from store.gallery import Gallery
from store.image_refs import delete_unreferenced_files, delete_unreferenced_images
from store.sql import chunks
from store.tables import (
    Conversation,
    Feedback,
    GalleryItem,
    Image,
    ImageSource,
    Message,
    MessagePart,
    ShownImage,
    User,
)
from store.types import ForgetReport

logger = logging.getLogger(__name__)
EXPORT_JSON = "data.json"


class UserData:
    """Export and forget one user, across the database, the image files and the gallery."""

    def __init__(self, db: Database, blobs: BlobStore, gallery: Gallery) -> None:
        self.db, self.blobs, self.gallery = db, blobs, gallery

    def export(self, user_id: int, dest: str | Path) -> Path:
        """Write the user's data as one zip: ``data.json`` plus ``images/<sha256>.<ext>``."""
        with self.db.read() as s:
            data = _user_data(s, user_id)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".")
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(EXPORT_JSON, json.dumps(data, indent=1, default=str))
                for image in data["images"]:
                    sha = image["sha256"]
                    if self.blobs.exists(sha):
                        name = f"images/{sha}.{image['format'].lower()}"
                        archive.write(self.blobs.path(sha), name, zipfile.ZIP_STORED)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def forget(self, user_id: int) -> ForgetReport:
        """Delete every row of the user, their gallery vectors and every image file only
        they referenced.
        """
        with self.db.write() as s:
            if s.get(User, user_id) is None:
                raise UnknownUserError(f"no user with id {user_id}")
            candidates = sorted(_user_shas(s, user_id))
            gallery_ids = list(s.scalars(select(GalleryItem.id)
                                         .where(GalleryItem.owner_user_id == user_id)))
            rows = _delete_user_rows(s, user_id)
            rows += delete_unreferenced_images(s, candidates)
        if gallery_ids:
            self.gallery.discard(gallery_ids)
        files = delete_unreferenced_files(self.db, self.blobs, candidates)
        logger.info("forgot user %d: %d rows, %d files", user_id, rows, files)
        return ForgetReport(rows=rows, files=files, gallery_items=len(gallery_ids))


def _user_conversations(user_id: int) -> Any:
    return select(Conversation.id).where(Conversation.user_id == user_id)


def _user_messages(user_id: int) -> Any:
    return select(Message.id).where(Message.conversation_id.in_(_user_conversations(user_id)))


def _user_shas(s: Session, user_id: int) -> set[str]:
    queries = [
        select(MessagePart.image_sha256).where(
            MessagePart.message_id.in_(_user_messages(user_id)),
            MessagePart.image_sha256.is_not(None)),
        select(ImageSource.image_sha256).where(ImageSource.user_id == user_id),
        select(GalleryItem.image_sha256).where(GalleryItem.owner_user_id == user_id),
    ]
    return {sha for q in queries for sha in s.scalars(q) if sha}


def _delete_user_rows(s: Session, user_id: int) -> int:
    messages, conversations = _user_messages(user_id), _user_conversations(user_id)
    statements = [
        delete(Feedback).where(Feedback.user_id == user_id),
        delete(Feedback).where(Feedback.message_id.in_(messages)),
        delete(MessagePart).where(MessagePart.message_id.in_(messages)),
        delete(ShownImage).where(ShownImage.conversation_id.in_(conversations)),
        delete(Message).where(Message.conversation_id.in_(conversations)),
        delete(Conversation).where(Conversation.user_id == user_id),
        delete(ImageSource).where(ImageSource.user_id == user_id),
        delete(GalleryItem).where(GalleryItem.owner_user_id == user_id),
        delete(User).where(User.id == user_id),
    ]
    return sum(int(s.execute(stmt).rowcount) for stmt in statements)  # type: ignore[attr-defined,misc]


def _user_data(s: Session, user_id: int) -> dict[str, Any]:
    user = s.get(User, user_id)
    if user is None:
        raise UnknownUserError(f"no user with id {user_id}")
    conversations = []
    for conv in s.scalars(select(Conversation).where(Conversation.user_id == user_id)
                          .order_by(Conversation.id)):
        messages = s.scalars(select(Message).where(Message.conversation_id == conv.id)
                             .order_by(Message.position)).all()
        conversations.append({
            "id": conv.id, "started_at": conv.started_at, "closed_at": conv.closed_at,
            "turns": [{"id": m.id, "position": m.position, "role": m.role,
                       "created_at": m.created_at,
                       "parts": [{"kind": p.kind, "text": p.text, "sha256": p.image_sha256}
                                 for p in m.parts]} for m in messages]})
    shas = sorted(_user_shas(s, user_id))
    images = [{"sha256": i.sha256, "size_bytes": i.size_bytes, "format": i.format,
               "width": i.width, "height": i.height}
              for part in chunks(shas) for i in s.scalars(select(Image)
                                                          .where(Image.sha256.in_(part)))]
    return {
        "user": {"id": user.id, "platform": user.platform, "platform_id": user.platform_id,
                 "settings": user.settings, "consent_store_images": user.consent_store_images,
                 "consent_training": user.consent_training, "created_at": user.created_at},
        "conversations": conversations,
        "images": images,
        "image_sources": [{"sha256": r.image_sha256, "source": r.source,
                           "created_at": r.created_at} for r in
                          s.scalars(select(ImageSource).where(ImageSource.user_id == user_id))],
        "feedback": [{"message_id": f.message_id, "rating": f.rating, "comment": f.comment,
                      "created_at": f.created_at} for f in
                     s.scalars(select(Feedback).where(Feedback.user_id == user_id))],
        "gallery_items": [{"id": g.id, "sha256": g.image_sha256, "caption": g.caption,
                           "label": g.label, "visibility": g.visibility,
                           "added_at": g.added_at} for g in
                          s.scalars(select(GalleryItem)
                                    .where(GalleryItem.owner_user_id == user_id))],
    }
