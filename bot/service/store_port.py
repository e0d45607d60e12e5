"""``StorePort``: what the conversation service needs from persistence, the boundary it
codes against.

Persistence has three names, one per layer: ``store`` (the package; its facade ``store.Store``
from ``open_store``), ``StorePort`` (this protocol, in the service's terms: engine turns, reply
hits) and ``bot.service.store_adapter.StoreAdapter`` (the port over ``store.Store``). Tests use
``tests/bot/memory_store.py``; ``tests/bot/test_store_port_contract.py`` runs both against one
contract. Methods are synchronous (the service runs them in worker threads), one unit of work
each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bot.replies import Hit
from engine.types import Turn


@dataclass(frozen=True)
class SavedSearch:
    """A conversation's last search: its query (search_dim,) and whether it was only among
    the chat's own images (``/search mine``).
    """

    query: np.ndarray
    only_own: bool = False


@dataclass(frozen=True)
class UploadsIndexed:
    """What indexing a chat's uploads did."""

    added: int
    # The chat's oldest images that left its gallery for the cap.
    evicted: int = 0
    # True the first time the chat's gallery overflows (the chat is told once).
    first_overflow: bool = False


class StorePort(Protocol):
    """Users, conversations, images, embedding cache and the gallery, as the service sees them."""

    def user_id(self, transport: str, external_id: str, name: str | None) -> int:
        """The user's id, created on first contact."""
        ...

    def context(self, user_id: int) -> list[Turn]:
        """The current conversation's context window, oldest first."""
        ...

    def user_context(self, transport: str, external_id: str,
                     name: str | None) -> tuple[int, list[Turn]]:
        """``user_id`` and ``context`` in one unit of work: the id (created on first contact)
        and the current context window, from one snapshot (a message's one read).
        """
        ...

    def append_exchange(self, user_id: int, user_turn: Turn, reply_turn: Turn) -> int | None:
        """Store a user turn and its reply together (both or neither); the reply's id."""
        ...

    def rate(self, user_id: int, turn_id: int, rating: int) -> None:
        """Set the user's rating (+1/-1) of one of their replies; KeyError if not theirs."""
        ...

    def reset(self, user_id: int) -> None:
        """Start a new conversation."""
        ...

    def history(self, user_id: int) -> list[Turn]:
        """All turns of the current conversation."""
        ...

    def export(self, user_id: int) -> bytes:
        """Everything kept about the user, as a zip archive."""
        ...

    def forget(self, user_id: int) -> None:
        """Delete everything about the user."""
        ...

    def put_image(self, user_id: int, sha256: str, data: bytes) -> None:
        """Keep an image the user sent, content-addressed (``sha256`` of ``data``)."""
        ...

    def put_footprint(self, sha256: str, footprint: dict[str, object]) -> None:
        """Keep a stored image's footprint (``bot.geo.Footprint.as_dict()``)."""
        ...

    def get_image(self, sha256: str) -> bytes | None:
        """An image file kept earlier, or None."""
        ...

    def cached_embeddings(self, sha256s: Sequence[str], encoder_id: str) -> dict[str, np.ndarray]:
        """Cached encoder embeddings of those images that have one."""
        ...

    def cache_embeddings(self, vectors: dict[str, np.ndarray], encoder_id: str) -> None:
        """Remember encoder embeddings by (sha256, encoder_id)."""
        ...

    def shown(self, user_id: int) -> set[str]:
        """Hashes of the gallery images the current conversation's last search has shown."""
        ...

    def mark_shown(self, user_id: int, sha256s: Sequence[str]) -> None:
        """Remember images the current conversation's last search has shown."""
        ...

    def remember_search(self, user_id: int, search: SavedSearch) -> None:
        """Keep the current conversation's last search for /more; a new search has shown
        nothing yet (``shown`` starts empty), so it ranks the whole gallery again.
        """
        ...

    def last_search(self, user_id: int) -> SavedSearch | None:
        """The current conversation's last search, or None."""
        ...

    def search(self, user_id: int, query: np.ndarray, k: int, exclude: set[str],
               only_own: bool = False) -> list[Hit]:
        """The k best gallery images the user may see (public and their own; only their own
        with ``only_own``) for a (search_dim,) query, skipping sha256s in ``exclude``. Their
        own images carry ``sent_at``.
        """
        ...

    def index_uploads(self, user_id: int, sha256s: Sequence[str],
                      vectors: np.ndarray) -> UploadsIndexed:
        """Add images the chat sent (stored already) to its private gallery, each once, with
        their (N, search_dim) vectors; past the cap its oldest leave.
        """
        ...

    def private_count(self, user_id: int) -> int:
        """How many of the chat's own images are searchable."""
        ...

    def gallery_size(self) -> int:
        """How many images the gallery holds: public ones and every chat's own."""
        ...

    def close(self) -> None:
        """Release connections (at shutdown)."""
        ...
