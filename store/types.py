"""Plain data the store hands out and takes in; the bot maps these to engine types."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Role = Literal["user", "assistant"]
PartKind = Literal["text", "image"]
Visibility = Literal["public", "private"]


@dataclass(frozen=True)
class StoredPart:
    """One ordered part of a message: text, or a reference to an image by its sha256.

    The engine's ``TextPart | ImagePart`` says the same, but ``store`` imports neither
    ``engine`` nor ``bot`` (DESIGN: dependencies point ``bot -> engine, store``), so the store
    keeps its own type, shaped like its ``message_parts`` rows; ``bot.service.store_adapter`` maps
    one to the other. Like the table's check constraint, it is always well formed: a text
    part holds only text, an image part only a sha256.
    """

    kind: PartKind
    text: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        text_ok = self.kind == "text" and self.text is not None and self.sha256 is None
        image_ok = self.kind == "image" and self.sha256 is not None and self.text is None
        if not (text_ok or image_ok):
            raise ValueError(f"a text part holds only text, an image part only a sha256: "
                             f"{self!r}")

    @classmethod
    def of_text(cls, text: str) -> StoredPart:
        return cls("text", text=text)

    @classmethod
    def of_image(cls, sha256: str) -> StoredPart:
        return cls("image", sha256=sha256)


@dataclass(frozen=True)
class NewImage:
    """Image bytes arriving with a turn; the store writes them content-addressed."""

    data: bytes = field(repr=False)
    # Container format as PIL names it ("PNG", "JPEG", "TIFF", ...) and pixel size.
    format: str
    width: int
    height: int
    # Where it came from: "telegram", "terminal", "gallery:<path>", ...
    source: str = "upload"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "upload") -> NewImage:
        """Read format and pixel size from the header (PIL, lazy: no full decode)."""
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return cls(data, image.format or "unknown", image.width, image.height, source)


# What append_turn accepts for each part: text, an existing image by sha256, or new bytes.
PartInput = StoredPart | NewImage | str


@dataclass(frozen=True)
class StoredTurn:
    """One message as stored: its role, its ordered parts and where it sits."""

    role: Role
    parts: tuple[StoredPart, ...]
    message_id: int
    conversation_id: int
    position: int
    created_at: datetime

    @property
    def image_shas(self) -> tuple[str, ...]:
        return tuple(p.sha256 for p in self.parts if p.sha256 is not None)


@dataclass(frozen=True)
class Context:
    """The context window of the active conversation, oldest turn first."""

    # None when the user has no conversation yet.
    conversation_id: int | None
    turns: tuple[StoredTurn, ...]
    # True when older turns exist that did not fit the budget.
    truncated: bool = False


@dataclass(frozen=True)
class UserInfo:
    """A chat user as the store knows them."""

    id: int
    platform: str
    platform_id: str
    settings: dict[str, object]
    consent_store_images: bool
    consent_training: bool
    created_at: datetime


@dataclass(frozen=True)
class ConversationInfo:
    """One conversation of a user; exactly one is active."""

    id: int
    started_at: datetime
    closed_at: datetime | None
    turns: int

    @property
    def active(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class ImageInfo:
    """An image's facts (the same for every user who sent it)."""

    sha256: str
    size_bytes: int
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class ForgetReport:
    """What forgetting a user removed."""

    rows: int
    files: int
    gallery_items: int


@dataclass(frozen=True)
class GalleryEntry:
    """A gallery row to add: a stored image (by sha256), its caption, label, provenance and
    who may see it. Its vector in the shared space is passed beside it (``Gallery.add``).

    Not ``engine.training.data.CaptionedImage``: ``store`` imports neither ``engine`` nor
    ``bot``, and a row names stored bytes and a visibility, not a file and its references.
    """

    sha256: str
    caption: str | None = None
    label: str | None = None
    source: str = ""
    owner_user_id: int | None = None
    visibility: Visibility = "public"


@dataclass(frozen=True)
class GalleryHit:
    """One search result: the gallery row and its inner-product score."""

    item_id: int
    sha256: str
    score: float
    caption: str | None
    label: str | None
    source: str
    visibility: Visibility
    # The owner of a private image (a chat's user row) and when it joined the gallery.
    owner_user_id: int | None = None
    added_at: datetime | None = None


@dataclass(frozen=True)
class PrivateAdd:
    """What adding a chat's uploads did: rows added, and the owner's oldest rows evicted."""

    added: list[int]
    already: int
    evicted: int


@dataclass(frozen=True)
class GalleryStats:
    """Counts and provenance of a gallery."""

    name: str
    count: int
    public: int
    private: int
    bridge_id: str | None
    index_kind: str
    dim: int | None
    labels: dict[str, int]
    # How many chats own private images.
    owners: int = 0
