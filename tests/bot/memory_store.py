"""An in-memory StorePort for service and transport tests (a shared state, no files but images).

It follows the real store adapter (``bot/service/store_adapter.py`` over ``store``): the
contract suite ``tests/bot/test_store_port_contract.py`` runs both. ``MemoryStore(state)`` with
the same ``state`` object behaves like reopening the same database, so a test can "restart" the bot
between two turns.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.replies import Hit
from bot.service.store_port import SavedSearch, UploadsIndexed
from engine.types import ImagePart, TextPart, Turn
from store import MissingImageError, NewImage, UnknownUserError
from store.faiss_index import normalise
from store.user_data import EXPORT_JSON


@dataclass
class StoredTurn:
    """A turn with the id the real store gives its message row."""

    id: int
    turn: Turn


@dataclass
class MemoryState:
    """Everything the fake keeps; share it between MemoryStores to "reopen" the store."""

    users: dict[tuple[str, str], int] = field(default_factory=dict)
    next_user_id: int = 1
    # Each user's conversations, oldest first; the last one is the active one.
    conversations: dict[int, list[list[StoredTurn]]] = field(default_factory=dict)
    next_turn_id: int = 1
    # (user id, reply id) -> +1 / -1.
    ratings: dict[tuple[int, int], int] = field(default_factory=dict)
    # Per user, for the active conversation (a reset starts afresh, as a new conversation).
    shown: dict[int, set[str]] = field(default_factory=dict)
    searches: dict[int, SavedSearch] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    # Who sent each image (the real store's image_sources rows).
    senders: dict[str, set[int]] = field(default_factory=dict)
    footprints: dict[str, dict[str, object]] = field(default_factory=dict)
    embeddings: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    # The public gallery: (gallery id, label, file, unit vector, sha256).
    gallery: list[tuple[int, str, Path, np.ndarray, str]] = field(default_factory=list)
    # Each chat's own images: (gallery id, sha256, unit vector, sent at), oldest first.
    private: dict[int, list[tuple[int, str, np.ndarray, datetime]]] = field(
        default_factory=dict)
    cap_told: set[int] = field(default_factory=set)
    next_private_id: int = 1_000_000


class MemoryStore:
    """StorePort over a MemoryState; thread-safe."""

    def __init__(self, state: MemoryState | None = None, context_turns: int = 12,
                 private_cap: int = 1000, context_images: int = 4) -> None:
        self.state = state or MemoryState()
        self.context_turns = context_turns
        self.context_images = context_images
        self.private_cap = private_cap
        # Private images live as files in the real store; here, beside the process.
        self._folder = Path(tempfile.mkdtemp(prefix="capret-memory-"))
        self._lock = threading.RLock()

    def add_gallery(self, label: str, path: Path, vector: np.ndarray) -> int:
        """Add a public gallery image (what `capret gallery add` does to the real store)."""
        import hashlib

        gid = len(self.state.gallery) + 1
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        self.state.gallery.append((gid, label, path, normalise(vector)[0], sha))
        return gid

    # ----- users and turns
    def user_id(self, transport: str, external_id: str, name: str | None) -> int:
        with self._lock:
            key = (transport, external_id)
            if key not in self.state.users:
                self.state.users[key] = self.state.next_user_id
                self.state.next_user_id += 1
            return self.state.users[key]

    def context(self, user_id: int) -> list[Turn]:
        """The newest whole turns within the turn and image budgets, as the real store cuts
        them (``store.repository._window``): a cut window starts at a user turn.
        """
        newest_first = [t.turn for t in reversed(self._active(user_id))]
        chosen: list[Turn] = []
        images = 0
        for turn in newest_first:
            n = sum(isinstance(p, ImagePart) for p in turn.parts)
            if chosen and (len(chosen) >= self.context_turns or images + n > self.context_images):
                break
            chosen.append(turn)
            images += n
        cut = len(chosen) < len(newest_first)
        while cut and len(chosen) > 1 and chosen[-1].role == "assistant":
            chosen.pop()
        return list(reversed(chosen))

    def user_context(self, transport: str, external_id: str,
                     name: str | None) -> tuple[int, list[Turn]]:
        with self._lock:
            uid = self.user_id(transport, external_id, name)
            return uid, self.context(uid)

    def append_exchange(self, user_id: int, user_turn: Turn, reply_turn: Turn) -> int | None:
        with self._lock:
            self._user(user_id)
            for turn in (user_turn, reply_turn):
                for part in turn.parts:
                    if isinstance(part, ImagePart) and part.sha256 not in self.state.images \
                            and not self._in_gallery(part.sha256):
                        raise MissingImageError(f"no stored image {part.sha256!r}")
            active = self._active(user_id)
            for turn in (user_turn, reply_turn):
                active.append(StoredTurn(self.state.next_turn_id, turn))
                self.state.next_turn_id += 1
            return active[-1].id

    def rate(self, user_id: int, turn_id: int, rating: int) -> None:
        with self._lock:
            replies = {t.id for conv in self.state.conversations.get(user_id, [])
                       for t in conv if t.turn.role == "assistant"}
            if turn_id not in replies:
                raise KeyError(f"user {user_id} has no reply {turn_id}")
            self.state.ratings[(user_id, turn_id)] = rating

    def reset(self, user_id: int) -> None:
        with self._lock:
            self._user(user_id)
            self.state.conversations.setdefault(user_id, []).append([])
            self.state.shown.pop(user_id, None)
            self.state.searches.pop(user_id, None)

    def history(self, user_id: int) -> list[Turn]:
        return [t.turn for t in self._active(user_id)]

    def export(self, user_id: int) -> bytes:
        """A zip like the real export: ``data.json`` plus ``images/<sha256>.<format>``."""
        with self._lock:
            data = self._user_data(user_id)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr(EXPORT_JSON, json.dumps(data, indent=1, default=str))
                for image in data["images"]:
                    archive.writestr(f"images/{image['sha256']}.{image['format'].lower()}",
                                     self.state.images[image["sha256"]])
            return buffer.getvalue()

    def forget(self, user_id: int) -> None:
        """Delete the user's rows and every image only they referenced (and its embeddings
        and footprint), as the real store does.
        """
        with self._lock:
            self._user(user_id)
            theirs = self._user_shas(user_id)
            self.state.conversations.pop(user_id, None)
            self.state.ratings = {k: v for k, v in self.state.ratings.items() if k[0] != user_id}
            self.state.shown.pop(user_id, None)
            self.state.searches.pop(user_id, None)
            self.state.private.pop(user_id, None)
            self.state.cap_told.discard(user_id)
            for senders in self.state.senders.values():
                senders.discard(user_id)
            self.state.users = {k: v for k, v in self.state.users.items() if v != user_id}
            still = set().union(*(self._user_shas(u) for u in self.state.users.values()))
            for sha in theirs - still:
                self.state.images.pop(sha, None)
                self.state.senders.pop(sha, None)
                self.state.footprints.pop(sha, None)
                for key in [k for k in self.state.embeddings if k[0] == sha]:
                    del self.state.embeddings[key]

    # ----- images and embeddings
    def put_image(self, user_id: int, sha256: str, data: bytes) -> None:
        image = NewImage.from_bytes(data, source="upload")
        if image.sha256 != sha256:
            raise ValueError(f"image bytes hash to {image.sha256}, not {sha256}")
        with self._lock:
            self.state.images[sha256] = data
            self.state.senders.setdefault(sha256, set()).add(user_id)

    def put_footprint(self, sha256: str, footprint: dict[str, object]) -> None:
        self.state.footprints.setdefault(sha256, dict(footprint))  # the first one kept wins

    def get_image(self, sha256: str) -> bytes | None:
        return self.state.images.get(sha256)

    def cached_embeddings(self, sha256s: Sequence[str], encoder_id: str) -> dict[str, np.ndarray]:
        found = {s: self.state.embeddings.get((s, encoder_id)) for s in sha256s}
        return {s: v.copy() for s, v in found.items() if v is not None}

    def cache_embeddings(self, vectors: dict[str, np.ndarray], encoder_id: str) -> None:
        for sha, vector in vectors.items():  # first writer wins, float32 like the real rows
            self.state.embeddings.setdefault((sha, encoder_id), np.asarray(vector, np.float32))

    # ----- searches
    def shown(self, user_id: int) -> set[str]:
        return set(self.state.shown.get(user_id, set()))

    def mark_shown(self, user_id: int, sha256s: Sequence[str]) -> None:
        with self._lock:
            self.state.shown.setdefault(user_id, set()).update(sha256s)

    def remember_search(self, user_id: int, search: SavedSearch) -> None:
        query = np.asarray(search.query, dtype=np.float32).copy()
        with self._lock:
            self.state.searches[user_id] = SavedSearch(query, search.only_own)
            self.state.shown.pop(user_id, None)

    def last_search(self, user_id: int) -> SavedSearch | None:
        return self.state.searches.get(user_id)

    def search(self, user_id: int, query: np.ndarray, k: int, exclude: set[str],
               only_own: bool = False) -> list[Hit]:
        q = normalise(query)[0]
        own = [Hit(gid, "", float(vec @ q), self._file(sha), sha, sent)
               for gid, sha, vec, sent in self.state.private.get(user_id, [])]
        public = [] if only_own else [Hit(gid, label, float(vec @ q), path, sha)
                                      for gid, label, path, vec, sha in self.state.gallery]
        best: dict[str, Hit] = {}
        for hit in sorted(own + public, key=lambda h: (-h.score, h.sent_at is None)):
            if hit.sha256 not in exclude:
                best.setdefault(hit.sha256, hit)
        return list(best.values())[:k]

    def index_uploads(self, user_id: int, sha256s: Sequence[str],
                      vectors: np.ndarray) -> UploadsIndexed:
        with self._lock:
            missing = [sha for sha in sha256s if sha not in self.state.images]
            if missing:
                raise KeyError(f"images not stored (add them first): {missing[:3]}")
            mine = self.state.private.setdefault(user_id, [])
            known = {sha for _, sha, _, _ in mine}
            added = 0
            for sha, vector in zip(sha256s, normalise(vectors), strict=True):
                if sha not in known:
                    known.add(sha)
                    self.state.next_private_id += 1
                    mine.append((self.state.next_private_id, sha, vector, datetime.now(UTC)))
                    added += 1
            evicted = max(0, len(mine) - self.private_cap)
            del mine[:evicted]
            first = bool(evicted) and user_id not in self.state.cap_told
            if first:
                self.state.cap_told.add(user_id)
        return UploadsIndexed(added, evicted, first)

    def private_count(self, user_id: int) -> int:
        return len(self.state.private.get(user_id, []))

    def gallery_size(self) -> int:
        """Public and private images, as the real gallery counts them."""
        return len(self.state.gallery) + sum(len(p) for p in self.state.private.values())

    def close(self) -> None:
        pass

    # ----- internals
    def _user(self, user_id: int) -> None:
        if user_id not in self.state.users.values():
            raise UnknownUserError(f"no user with id {user_id}")

    def _active(self, user_id: int) -> list[StoredTurn]:
        conversations = self.state.conversations.setdefault(user_id, [])
        if not conversations:
            conversations.append([])
        return conversations[-1]

    def _in_gallery(self, sha: str) -> bool:
        return any(sha == g[4] for g in self.state.gallery)

    def _user_shas(self, user_id: int) -> set[str]:
        """The images the user's rows reference: their turns, uploads and private gallery."""
        shas = {p.sha256 for conv in self.state.conversations.get(user_id, []) for t in conv
                for p in t.turn.parts if isinstance(p, ImagePart)}
        shas |= {sha for sha, senders in self.state.senders.items() if user_id in senders}
        shas |= {sha for _, sha, _, _ in self.state.private.get(user_id, [])}
        return shas & set(self.state.images)

    def _user_data(self, user_id: int) -> dict[str, Any]:
        self._user(user_id)
        conversations = [{"id": n, "turns": [
            {"id": t.id, "position": i, "role": t.turn.role,
             "parts": [{"kind": "text", "text": p.text, "sha256": None}
                       if isinstance(p, TextPart) else
                       {"kind": "image", "text": None, "sha256": p.sha256}
                       for p in t.turn.parts]} for i, t in enumerate(conv)]}
            for n, conv in enumerate(self.state.conversations.get(user_id, []), 1)]
        images = [{"sha256": sha, "format": NewImage.from_bytes(self.state.images[sha]).format}
                  for sha in sorted(self._user_shas(user_id))]
        return {
            "user": {"id": user_id},
            "conversations": conversations,
            "images": images,
            "feedback": [{"message_id": m, "rating": r}
                         for (u, m), r in self.state.ratings.items() if u == user_id],
            "gallery_items": [{"id": gid, "sha256": sha, "visibility": "private"}
                              for gid, sha, _, _ in self.state.private.get(user_id, [])],
        }

    def _file(self, sha: str) -> Path:
        path = self._folder / f"{sha}.png"
        if not path.exists():
            path.write_bytes(self.state.images[sha])
        return path
