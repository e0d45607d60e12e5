"""Users, their images and conversations: atomic turns and context windows.

Every public method is one transaction. Image bytes that arrive with a turn are written
content-addressed before the transaction and removed again if it fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session, selectinload

from store import turn_sql
from store.blobs import BlobStore
from store.config import StoreConfig
from store.db import Database
from store.errors import MissingImageError, UnknownUserError
from store.image_refs import delete_unreferenced_files, existing_images
from store.sql import insert_ignore
from store.tables import (
    Conversation,
    Image,
    ImageSource,
    Message,
    User,
    as_utc,
    utcnow,
)
from store.types import (
    Context,
    ConversationInfo,
    ImageInfo,
    NewImage,
    PartInput,
    Role,
    StoredPart,
    StoredTurn,
    UserInfo,
)

logger = logging.getLogger(__name__)


class Repository:
    """Users, conversations and their images; one transaction per call."""

    def __init__(self, db: Database, blobs: BlobStore, config: StoreConfig) -> None:
        self.db = db
        self.blobs = blobs
        self.config = config

    # ----- users -------------------------------------------------------------------------
    def get_or_create_user(self, platform: str, platform_id: str | int) -> UserInfo:
        """The user with this chat platform id, created on first sight."""
        pid = str(platform_id)
        where = (User.platform == platform, User.platform_id == pid)
        with self.db.read() as s:
            user = s.scalars(select(User).where(*where)).first()
            if user is not None:
                return _user_info(user)
        return self.get_user(self._create_user(platform, pid))

    def user_context(
        self, platform: str, platform_id: str | int, max_turns: int | None = None,
        max_images: int | None = None,
    ) -> tuple[int, Context]:
        """The user's id (created on first sight) and ``load_context``'s window, read from one
        snapshot: a chat message's one read.
        """
        pid = str(platform_id)
        with self.db.read_conn() as conn:
            found = turn_sql.user_and_active(conn, platform, pid)
            if found is not None:
                user_id, conv = found
                return user_id, self._context(conn, conv, max_turns, max_images)
        return self._create_user(platform, pid), Context(None, ())

    def get_user(self, user_id: int) -> UserInfo:
        """The user; UnknownUserError when absent."""
        with self.db.read() as s:
            return _user_info(_user(s, user_id))

    def update_user(
        self, user_id: int, settings: dict[str, Any] | None = None,
        consent_store_images: bool | None = None, consent_training: bool | None = None,
    ) -> UserInfo:
        """Merge ``settings`` into the user's and set the given consent flags."""
        with self.db.write() as s:
            user = _user(s, user_id, lock=True)
            if settings:
                user.settings = {**(user.settings or {}), **settings}
            if consent_store_images is not None:
                user.consent_store_images = consent_store_images
            if consent_training is not None:
                user.consent_training = consent_training
            s.flush()
            return _user_info(user)

    # ----- images ------------------------------------------------------------------------
    def add_image(self, image: NewImage, user_id: int | None = None) -> ImageInfo:
        """Store an image's bytes and rows (owner ``user_id``; None = the system)."""
        try:
            with self.blobs.writing():
                self.blobs.put(image.data)
                with self.db.write() as s:
                    self._ensure_image(s, image, user_id)
        except BaseException:
            self._discard_files([image.sha256])
            raise
        return _image_info_of(image)

    def image_info(self, sha256: str) -> ImageInfo | None:
        """Facts of a stored image, or None."""
        with self.db.read() as s:
            row = s.get(Image, sha256)
            return None if row is None else ImageInfo(
                row.sha256, row.size_bytes, row.format, row.width, row.height)

    # ----- turns -------------------------------------------------------------------------
    def append_turn(self, user_id: int, role: Role, parts: Sequence[PartInput]) -> StoredTurn:
        """Append one whole turn to the user's active conversation, atomically.

        ``parts`` are text (``str`` or a text StoredPart), existing images (an image
        StoredPart) or new image bytes (NewImage). Either the message and all its parts (and
        new images) are committed, or nothing is: no row, no file.
        """
        return self.append_turns(user_id, [(role, parts)])[0]

    def append_turns(
        self, user_id: int, turns: Sequence[tuple[Role, Sequence[PartInput]]]
    ) -> list[StoredTurn]:
        """Append several turns (e.g. a question and its reply) in one transaction."""
        for role, parts in turns:
            if role not in ("user", "assistant"):
                raise ValueError(f"role must be 'user' or 'assistant', not {role!r}")
            if not parts:
                raise ValueError("a turn needs at least one part")
        new = [p for _, parts in turns for p in parts if isinstance(p, NewImage)]
        try:
            with self.blobs.writing():
                for image in new:
                    self.blobs.put(image.data)
                with self.db.write() as s:
                    return self._append_all(s, user_id, turns)
        except BaseException:
            self._discard_files([image.sha256 for image in new])
            raise

    def load_context(
        self, user_id: int, max_turns: int | None = None, max_images: int | None = None
    ) -> Context:
        """The newest turns of the active conversation within a budget of turns and images.

        The window holds whole turns, oldest first. The newest turn is always included;
        older turns are added while both budgets hold (defaults: the StoreConfig's); a cut
        window starts at a user turn.
        """
        with self.db.read() as s:
            _user(s, user_id)
            conv = _active(s, user_id)
            return self._context(s.connection(), None if conv is None else conv.id, max_turns,
                                 max_images)

    def history(self, user_id: int, conversation_id: int | None = None) -> list[StoredTurn]:
        """Every turn of one of the user's conversations (default: the active one)."""
        with self.db.read() as s:
            conv = _conversation(s, user_id, conversation_id)
            if conv is None:
                return []
            rows = s.scalars(
                select(Message).where(Message.conversation_id == conv.id)
                .order_by(Message.position).options(selectinload(Message.parts))
            ).all()
            return [_turn(m) for m in rows]

    def list_conversations(self, user_id: int) -> list[ConversationInfo]:
        """The user's conversations, newest first, with their number of turns."""
        with self.db.read() as s:
            _user(s, user_id)
            counts = (select(Message.conversation_id, func.count().label("n"))
                      .group_by(Message.conversation_id).subquery())
            rows = s.execute(
                select(Conversation, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.conversation_id == Conversation.id)
                .where(Conversation.user_id == user_id)
                .order_by(Conversation.started_at.desc(), Conversation.id.desc())
            ).all()
            return [ConversationInfo(c.id, as_utc(c.started_at),
                                     c.closed_at and as_utc(c.closed_at), int(n))
                    for c, n in rows]

    def active_conversation(self, user_id: int) -> int:
        """The id of the user's active conversation (created when there is none)."""
        with self.db.write() as s:
            return _active_or_new(s, _user(s, user_id, lock=True)).id

    def reset(self, user_id: int) -> int:
        """Close the active conversation (kept) and start a new one; returns the new id."""
        with self.db.write() as s:
            _user(s, user_id, lock=True)
            s.execute(update(Conversation)
                      .where(Conversation.user_id == user_id, Conversation.closed_at.is_(None))
                      .values(closed_at=utcnow()))
            conv = Conversation(user_id=user_id, started_at=utcnow())
            s.add(conv)
            s.flush()
            return conv.id

    # ----- internals ---------------------------------------------------------------------
    def _create_user(self, platform: str, pid: str) -> int:
        """A new user's id (or the one a concurrent first message just gave them): one
        write transaction of two Core statements. Through a read and an ORM write, a first
        message's lookup took 1.3 ms of CPU, 0.4 now (of its 2.2 ms in the store, issue 30).
        """
        with self.db.write_conn() as conn:
            return turn_sql.create_user(conn, platform, pid)

    def _context(self, conn: Connection, conversation_id: int | None, max_turns: int | None,
                 max_images: int | None) -> Context:
        """The window of a conversation (None: the user has none yet) within the budgets."""
        max_turns = self.config.context_turns if max_turns is None else max_turns
        max_images = self.config.context_images if max_images is None else max_images
        if conversation_id is None:
            return Context(None, ())
        rows = turn_sql.newest_turns(conn, conversation_id, max(max_turns, 1) + 1)
        return _window(rows, max_turns, max_images)

    def _append_all(self, s: Session, user_id: int,
                    turns: Sequence[tuple[Role, Sequence[PartInput]]]) -> list[StoredTurn]:
        """The turns appended in order to the user's active conversation (started if none),
        under the user's row lock; statements in SQLAlchemy Core (``store/turn_sql.py``).
        """
        conn = s.connection()
        turn_sql.lock_user(conn, user_id)
        conv, position = turn_sql.active_and_next(conn, user_id)
        if conv is None:
            conv = turn_sql.new_conversation(conn, user_id)
        ids = turn_sql.insert_messages(conn, conv, position, [role for role, _ in turns])
        rows = [self._part_row(s, message_id, index, part, user_id)
                for (message_id, _), (_, parts) in zip(ids, turns, strict=True)
                for index, part in enumerate(parts)]
        turn_sql.insert_parts(conn, rows)
        return [StoredTurn(role, tuple(_stored(p) for p in parts), message_id, conv,
                           position + offset, at)
                for offset, ((message_id, at), (role, parts)) in enumerate(zip(ids, turns,
                                                                               strict=True))]

    def _part_row(self, s: Session, message_id: int, position: int, part: PartInput,
                  user_id: int) -> dict[str, Any]:
        """A part's ``message_parts`` row; a new image is stored first, a referenced one must
        exist (MissingImageError).
        """
        if isinstance(part, NewImage):
            self._ensure_image(s, part, user_id)
        stored = _stored(part)
        # A StoredPart is always well formed: an image part names an image stored already.
        if stored.sha256 is not None and not existing_images(s, [stored.sha256]):
            raise MissingImageError(f"no stored image {stored.sha256!r}")
        return turn_sql.part_row(message_id, position, stored)

    def _ensure_image(self, s: Session, image: NewImage, user_id: int | None) -> None:
        insert_ignore(s, Image.__table__, [{
            "sha256": image.sha256, "size_bytes": len(image.data), "format": image.format,
            "width": image.width, "height": image.height, "created_at": utcnow()}])
        same = s.scalars(select(ImageSource.id).where(
            ImageSource.image_sha256 == image.sha256, ImageSource.source == image.source,
            ImageSource.user_id.is_(None) if user_id is None else ImageSource.user_id == user_id,
        )).first()
        if same is None:
            s.add(ImageSource(image_sha256=image.sha256, user_id=user_id, source=image.source))

    def _discard_files(self, shas: Sequence[str]) -> None:
        """After a failed write: delete the files no committed row references."""
        delete_unreferenced_files(self.db, self.blobs, shas)


def _user(s: Session, user_id: int, lock: bool = False) -> User:
    user = s.get(User, user_id, with_for_update=lock or None)
    if user is None:
        raise UnknownUserError(f"no user with id {user_id}")
    return user


def _active(s: Session, user_id: int) -> Conversation | None:
    return s.scalars(select(Conversation).where(
        Conversation.user_id == user_id, Conversation.closed_at.is_(None))).first()


def _active_or_new(s: Session, user: User) -> Conversation:
    conv = _active(s, user.id)
    if conv is None:
        conv = Conversation(user_id=user.id, started_at=utcnow())
        s.add(conv)
        s.flush()
    return conv


def _conversation(s: Session, user_id: int, conversation_id: int | None) -> Conversation | None:
    _user(s, user_id)
    if conversation_id is None:
        return _active(s, user_id)
    conv = s.get(Conversation, conversation_id)
    if conv is None or conv.user_id != user_id:
        raise KeyError(f"user {user_id} has no conversation {conversation_id}")
    return conv


def _window(newest_first: Sequence[StoredTurn], max_turns: int, max_images: int) -> Context:
    chosen: list[StoredTurn] = []
    images = 0
    for turn in newest_first:
        n = len(turn.image_shas)
        if chosen and (len(chosen) >= max_turns or images + n > max_images):
            break
        chosen.append(turn)
        images += n
    cut = len(chosen) < len(newest_first)
    while cut and len(chosen) > 1 and chosen[-1].role == "assistant":
        chosen.pop()  # start the window at a user turn, not mid-exchange
    conv_id = newest_first[0].conversation_id if newest_first else None
    return Context(conv_id, tuple(reversed(chosen)), truncated=cut)


def _stored(part: PartInput) -> StoredPart:
    """A part as a turn holds it: text, or an image by its sha256."""
    if isinstance(part, str):
        return StoredPart.of_text(part)
    if isinstance(part, NewImage):
        return StoredPart.of_image(part.sha256)
    return part


def _turn(m: Message) -> StoredTurn:
    parts = tuple(StoredPart(p.kind, p.text, p.image_sha256)  # type: ignore[arg-type]
                  for p in m.parts)
    return StoredTurn(m.role, parts, m.id, m.conversation_id, m.position,  # type: ignore[arg-type]
                      as_utc(m.created_at))


def _user_info(u: User) -> UserInfo:
    return UserInfo(u.id, u.platform, u.platform_id, dict(u.settings or {}),
                    u.consent_store_images, u.consent_training, as_utc(u.created_at))


def _image_info_of(image: NewImage) -> ImageInfo:
    return ImageInfo(image.sha256, len(image.data), image.format, image.width, image.height)
