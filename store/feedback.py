"""Ratings of the bot's replies (👍 +1 / 👎 -1): one per conversation and reply, changeable."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from store.db import Database
from store.tables import Conversation, Feedback, Message, utcnow


@dataclass(frozen=True)
class RatedReply:
    """A well-rated description: the image it describes (by sha256) and the reply's text.

    ``capret feedback export`` writes these as a caption dataset; ``store`` imports no
    ``engine`` type, so it is not a ``CaptionedImage`` (which names a file).
    """

    sha256: str
    text: str


class FeedbackBook:
    """Ratings kept in the ``feedback`` table (removed with their user or message)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def rate(self, user_id: int, message_id: int, rating: int,
             comment: str | None = None) -> None:
        """Set the rating (and optional comment) of a reply in one of the user's conversations
        (a new tap replaces the old one); KeyError when the message is not the user's
        assistant reply.
        """
        with self.db.write() as s:
            owner = s.scalar(select(Conversation.user_id).join(Message).where(
                Message.id == message_id, Message.role == "assistant"))
            if owner != user_id:
                raise KeyError(f"user {user_id} has no reply {message_id}")
            s.execute(delete(Feedback).where(Feedback.user_id == user_id,
                                             Feedback.message_id == message_id))
            s.add(Feedback(message_id=message_id, user_id=user_id, rating=rating,
                           comment=comment, created_at=utcnow()))

    def rating(self, user_id: int, message_id: int) -> int | None:
        """The user's rating of that reply, or None."""
        with self.db.read() as s:
            return s.scalar(select(Feedback.rating).where(
                Feedback.user_id == user_id, Feedback.message_id == message_id))

    def well_rated(self) -> list[RatedReply]:
        """Replies rated up that describe exactly one image (the question turn before)."""
        found = []
        with self.db.read() as s:
            rated = s.scalars(select(Message).join(Feedback, Feedback.message_id == Message.id)
                              .where(Feedback.rating > 0).order_by(Message.id)).unique()
            for reply in rated:
                question = s.scalar(select(Message).where(
                    Message.conversation_id == reply.conversation_id,
                    Message.position == reply.position - 1))
                images = [p.image_sha256 for p in (question.parts if question else [])
                          if p.kind == "image" and p.image_sha256]
                text = " ".join(p.text or "" for p in reply.parts if p.kind == "text").strip()
                if len(images) == 1 and text:
                    found.append(RatedReply(images[0], text))
        return found

