"""The database schema as typed SQLAlchemy 2.x models (Alembic migrations mirror it)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SHA = String(64)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Datetimes read back from SQLite are naive; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """The tables' common base: constraint names follow NAMING (stable for Alembic)."""

    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A chat user, identified by (platform, platform id)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "platform_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_id: Mapped[str] = mapped_column(String(128))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    consent_store_images: Mapped[bool] = mapped_column(Boolean, default=True)
    consent_training: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Conversation(Base):
    """A user's conversation; the one with closed_at NULL is active (at most one)."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index(
            "uq_conversations_one_active", "user_id", unique=True,
            sqlite_where=text("closed_at IS NULL"), postgresql_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """One turn of a conversation, ordered by position."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "position"),
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    parts: Mapped[list[MessagePart]] = relationship(
        order_by="MessagePart.position", cascade="all, delete-orphan", passive_deletes=True)


class MessagePart(Base):
    """An ordered part of a message: text, or an image by sha256."""

    __tablename__ = "message_parts"
    __table_args__ = (
        UniqueConstraint("message_id", "position"),
        CheckConstraint(
            "(kind = 'text' AND text IS NOT NULL AND image_sha256 IS NULL) OR "
            "(kind = 'image' AND image_sha256 IS NOT NULL AND text IS NULL)", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    text: Mapped[str | None] = mapped_column(Text)
    image_sha256: Mapped[str | None] = mapped_column(
        ForeignKey("images.sha256", ondelete="RESTRICT"), index=True)


class Image(Base):
    """An image's content facts; its bytes live in the blob folder under the sha256."""

    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(SHA, primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImageSource(Base):
    """Who brought an image and from where (owner NULL: the system, e.g. the gallery)."""

    __tablename__ = "image_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_sha256: Mapped[str] = mapped_column(
        ForeignKey("images.sha256", ondelete="RESTRICT"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Embedding(Base):
    """A cached image-encoder embedding, keyed by (image sha256, encoder id)."""

    __tablename__ = "embeddings"

    image_sha256: Mapped[str] = mapped_column(
        ForeignKey("images.sha256", ondelete="CASCADE"), primary_key=True)
    encoder_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ShownImage(Base):
    """An image shown by a conversation's current search (``/more`` skips it)."""

    __tablename__ = "shown_images"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    image_sha256: Mapped[str] = mapped_column(
        ForeignKey("images.sha256", ondelete="CASCADE"), primary_key=True)
    shown_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    """A user's rating of an assistant reply."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GalleryItem(Base):
    """A gallery row; its id is the FAISS id of its vector (also kept here to rebuild)."""

    __tablename__ = "gallery_items"
    __table_args__ = (
        Index("ix_gallery_items_gallery_sha", "gallery", "image_sha256"),
        # A chat's private gallery holds each image once (migration 0003).
        Index("uq_gallery_items_private", "gallery", "owner_user_id", "image_sha256",
              unique=True, sqlite_where=text("owner_user_id IS NOT NULL"),
              postgresql_where=text("owner_user_id IS NOT NULL")),
        CheckConstraint("visibility IN ('public', 'private')", name="visibility"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gallery: Mapped[str] = mapped_column(String(64))
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256", ondelete="RESTRICT"))
    caption: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(512), default="")
    owner_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)
    visibility: Mapped[str] = mapped_column(String(8), default="public")
    bridge_id: Mapped[str] = mapped_column(String(256))
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, normalised
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImageFootprint(Base):
    """Where a georeferenced image lies on Earth, as its GeoTIFF tags say (never guessed)."""

    __tablename__ = "image_footprints"

    image_sha256: Mapped[str] = mapped_column(
        ForeignKey("images.sha256", ondelete="CASCADE"), primary_key=True)
    epsg: Mapped[int] = mapped_column(Integer)
    crs: Mapped[str] = mapped_column(String(128))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    width_m: Mapped[float] = mapped_column(Float)
    height_m: Mapped[float] = mapped_column(Float)
    acquired: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageDay(Base):
    """One person's use of the bot on one UTC day: what the daily limits count."""

    __tablename__ = "usage_days"

    # "<transport>:<person id>": a person, whichever chat (private or group) they wrote in.
    account: Mapped[str] = mapped_column(String(160), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    model_calls: Mapped[int] = mapped_column(Integer, default=0)
    upload_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class ModelCall(Base):
    """How long one model call took (the admin's /stats percentiles)."""

    __tablename__ = "model_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    seconds: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
