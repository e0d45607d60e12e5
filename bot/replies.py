"""Plain reply data, shared by every transport: a reply's text and gallery hits, and how a hit
is labelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path


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
        """The image file's bytes (sent back to the chat)."""
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
    chat's own images), then the score.
    """
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
