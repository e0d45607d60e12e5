"""Plain reply data and the texts the bot says, shared by every transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

HELP = """I describe satellite and aerial images, answer questions about them and find images.

• Send a photo: I describe the scene. Add a caption to ask about it ("how many planes?").
• Send an image as a file: JPEG, PNG, WebP or (Geo)TIFF, also 16-bit or multispectral.
• Send several photos at once: one question about all of them.
• Ask follow-ups: "is there a river?", "what is left of the runway?"
• Ask for images: "show me airports near the sea" or /search harbour with many boats
• /more: the next results of the last search, without repeats.
• Every image you send joins your own gallery, searchable only by you (in a group: by that
  group): /search mine harbour looks among your images only.
• Reply "more like this" (or /similar) to an image: similar images from the gallery.
• Send a large scene as a file: described as a whole and by tiles; /tiles shows the grid.
• A GeoTIFF's location (centre, size, CRS, date) comes from its tags; photos have none.

/reset new conversation · /history what we said · /export your data · /forget delete all
about you · /about the model"""

HELP_GROUP = """I describe satellite and aerial images, answer questions about them and find images.
In this group I answer only messages meant for me:

• Mention me (@{bot}) in a message or in a photo's caption: "@{bot} what is this?"
• Reply to one of my messages to ask a follow-up.
• Commands: /search@{bot} harbour with boats, /more, /similar (in reply to an image).

This group has its own memory (each topic of a forum has its own), shared by everyone here;
images sent here are searched only here. /reset new conversation · /history what was said ·
/export this group's data · /forget delete it · /about the model"""

START = "Hello! Send me a satellite or aerial image, or ask for images by text.\n\n" + HELP


@dataclass(frozen=True)
class Hit:
    """One gallery image found by a search."""

    gallery_id: int
    label: str
    score: float
    path: Path
    # The image's content hash: what "already shown in this conversation" is keyed by.
    sha256: str
    # When the asking chat sent it, if it is one of the chat's own images (None: public).
    sent_at: datetime | None = None

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class Reply:
    """What the service answers one request with: text and/or gallery images."""

    text: str
    hits: tuple[Hit, ...] = field(default=())
    # The stored reply's id, when the store keeps one (what a 👍/👎 tap rates).
    turn_id: int | None = None


def hit_caption(hit: Hit, today: date | None = None) -> str:
    """A gallery image's caption: its label or caption (and "yours, sent 3 Nov" for the
    chat's own images), then the score."""
    label = hit.label if len(hit.label) <= 900 else hit.label[:900] + "…"
    if hit.sent_at is not None:
        mine = f"yours, sent {sent_on(hit.sent_at, today)}"
        label = f"{label} — {mine}" if label else mine
    return f"{label} — score {hit.score:.2f}"


def sent_on(when: datetime, today: date | None = None) -> str:
    """A day as people say it: "3 Nov", with the year when it is not this year's."""
    today = today or datetime.now(UTC).date()
    day = f"{when.day} {when:%b}"
    return day if when.year == today.year else f"{day} {when.year}"


def split_text(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at line or word ends if any."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = rest.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest.strip() or not pieces:
        pieces.append(rest)
    return [p for p in pieces if p.strip()] or [text[:limit]]
