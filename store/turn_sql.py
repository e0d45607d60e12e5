"""Turns in SQLAlchemy Core: the statements behind a chat message, without ORM objects.

A message reads the user and their context window (two statements) and writes its question
and reply (four: lock the user, find the conversation, insert the messages, their parts).
Through the ORM the same work took 28 statements and 9-13 ms of CPU per message (identity
map, unit-of-work flushes, a refresh per turn: scripts/bench_store.py --messages, issue 30).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Row,
    Table,
    and_,
    bindparam,
    func,
    insert,
    select,
)

from store.errors import UnknownUserError
from store.sql import insert_ignore
from store.tables import Base, as_utc, utcnow
from store.types import Role, StoredPart, StoredTurn

USERS: Table = Base.metadata.tables["users"]
CONVERSATIONS: Table = Base.metadata.tables["conversations"]
MESSAGES: Table = Base.metadata.tables["messages"]
PARTS: Table = Base.metadata.tables["message_parts"]

_ACTIVE = and_(CONVERSATIONS.c.user_id == USERS.c.id, CONVERSATIONS.c.closed_at.is_(None))

# Each statement is built once, its values bound at execution: building a select per call
# cost four times its execution on SQLite (263 vs 61 us), and a built statement keeps its
# compiled form's cache key.
_USER_AND_ACTIVE = (
    select(USERS.c.id, CONVERSATIONS.c.id).select_from(USERS.outerjoin(CONVERSATIONS, _ACTIVE))
    .where(USERS.c.platform == bindparam("platform"),
           USERS.c.platform_id == bindparam("platform_id")))
_USER_ID = select(USERS.c.id).where(USERS.c.platform == bindparam("platform"),
                                   USERS.c.platform_id == bindparam("platform_id"))
_LOCK_USER = select(USERS.c.id).where(USERS.c.id == bindparam("user_id")).with_for_update()
_ACTIVE_AND_NEXT = select(
    CONVERSATIONS.c.id,
    select(func.max(MESSAGES.c.position))
    .where(MESSAGES.c.conversation_id == CONVERSATIONS.c.id).scalar_subquery(),
).where(CONVERSATIONS.c.user_id == bindparam("user_id"), CONVERSATIONS.c.closed_at.is_(None))
_NEWEST_TURNS = (
    select(MESSAGES.c.id, MESSAGES.c.role, MESSAGES.c.position, MESSAGES.c.created_at,
           PARTS.c.kind, PARTS.c.text, PARTS.c.image_sha256)
    .select_from(MESSAGES.outerjoin(PARTS, PARTS.c.message_id == MESSAGES.c.id))
    .where(MESSAGES.c.id.in_(
        select(MESSAGES.c.id).where(MESSAGES.c.conversation_id == bindparam("conversation_id"))
        .order_by(MESSAGES.c.position.desc()).limit(bindparam("limit")).scalar_subquery()))
    .order_by(MESSAGES.c.position.desc(), PARTS.c.position))
_NEW_CONVERSATION = insert(CONVERSATIONS)
_NEW_MESSAGES = insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True)
_NEW_PART = insert(PARTS)


def user_and_active(conn: Connection, platform: str, platform_id: str
                    ) -> tuple[int, int | None] | None:
    """(user id, active conversation id or None) of a chat platform id; None: no such user."""
    row = conn.execute(_USER_AND_ACTIVE, {"platform": platform,
                                          "platform_id": platform_id}).first()
    return None if row is None else (row[0], row[1])


def create_user(conn: Connection, platform: str, platform_id: str) -> int:
    """The id of the user with this chat platform id, inserted unless a concurrent writer
    did first (call it in a write transaction).
    """
    insert_ignore(conn, USERS, [{
        "platform": platform, "platform_id": platform_id, "settings": {},
        "consent_store_images": True, "consent_training": False, "created_at": utcnow()}])
    return int(conn.execute(_USER_ID, {"platform": platform,
                                       "platform_id": platform_id}).scalar_one())


def lock_user(conn: Connection, user_id: int) -> None:
    """Lock the user's row for appending turns (PostgreSQL; SQLite's writers are serial).
    UnknownUserError when the user is absent.
    """
    if conn.scalar(_LOCK_USER, {"user_id": user_id}) is None:
        raise UnknownUserError(f"no user with id {user_id}")


def active_and_next(conn: Connection, user_id: int) -> tuple[int | None, int]:
    """The user's active conversation (None: none yet) and the position its next message
    takes. Read after ``lock_user``, in a statement of its own: under PostgreSQL's read
    committed, a new statement sees what the previous lock holder committed.
    """
    row = conn.execute(_ACTIVE_AND_NEXT, {"user_id": user_id}).first()
    if row is None:
        return None, 0
    return row[0], 0 if row[1] is None else int(row[1]) + 1


def new_conversation(conn: Connection, user_id: int) -> int:
    """Start an active conversation for the user (who has none); its id."""
    return _new_id(conn.execute(_NEW_CONVERSATION, {"user_id": user_id,
                                                    "started_at": utcnow()}))


def insert_messages(conn: Connection, conversation_id: int, first_position: int,
                    roles: Sequence[Role]) -> list[tuple[int, datetime]]:
    """Insert messages at consecutive positions (one statement); each one's id and creation
    time, in order.
    """
    times = [utcnow() for _ in roles]
    rows = [{"conversation_id": conversation_id, "position": first_position + offset,
             "role": role, "created_at": times[offset]} for offset, role in enumerate(roles)]
    ids = conn.execute(_NEW_MESSAGES, rows).all()
    return [(int(found[0]), at) for found, at in zip(ids, times, strict=True)]


def part_row(message_id: int, position: int, part: StoredPart) -> dict[str, Any]:
    """The ``message_parts`` row of a part (its image, if any, stored already)."""
    return {"message_id": message_id, "position": position, "kind": part.kind,
            "text": part.text, "image_sha256": part.sha256}


def insert_parts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert message parts (one statement)."""
    if rows:
        conn.execute(_NEW_PART, list(rows))


def newest_turns(conn: Connection, conversation_id: int, limit: int) -> list[StoredTurn]:
    """The conversation's newest ``limit`` turns with their parts, newest first (one query)."""
    rows = conn.execute(_NEWEST_TURNS, {"conversation_id": conversation_id,
                                        "limit": limit}).all()
    return _turns(rows, conversation_id)


# A message joined to one of its parts: id, role, position, created_at, kind, text, sha256.
PartRow = Row[Any, Any, Any, Any, Any, Any, Any]


def _turns(rows: Sequence[PartRow], conversation_id: int) -> list[StoredTurn]:
    """Message x part rows (grouped by message, parts in order) as stored turns."""
    turns: list[StoredTurn] = []
    parts: list[StoredPart] = []
    for index, (mid, role, position, created, kind, text, sha) in enumerate(rows):
        if kind is not None:  # a message without parts (never written so) joins to NULLs
            parts.append(StoredPart(kind, text, sha))
        if index + 1 == len(rows) or rows[index + 1][0] != mid:
            turns.append(StoredTurn(role, tuple(parts), mid, conversation_id, position,
                                    as_utc(created)))
            parts = []
    return turns


def _new_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT gave its row."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
