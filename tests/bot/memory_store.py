"""An in-memory StorePort for service and transport tests (a shared JSON-able state).

``MemoryStore(state)`` with the same ``state`` object behaves like reopening the same database,
so a test can "restart" the bot between two turns.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bot.replies import Hit
from bot.storage import SavedSearch, UploadsIndexed
from engine.types import ImagePart, TextPart, Turn


@dataclass
class MemoryState:
    users: dict[tuple[str, str], int] = field(default_factory=dict)
    turns: dict[int, list[Turn]] = field(default_factory=dict)
    shown: dict[int, set[str]] = field(default_factory=dict)
    searches: dict[int, SavedSearch] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    footprints: dict[str, dict[str, object]] = field(default_factory=dict)
    embeddings: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    gallery: list[tuple[int, str, Path, np.ndarray, str]] = field(default_factory=list)
    # Each chat's own images: (gallery id, sha256, vector, sent at), oldest first.
    private: dict[int, list[tuple[int, str, np.ndarray, datetime]]] = field(
        default_factory=dict)
    cap_told: set[int] = field(default_factory=set)
    next_private_id: int = 1_000_000


class MemoryStore:
    """StorePort over a MemoryState; thread-safe."""

    def __init__(self, state: MemoryState | None = None, context_turns: int = 12,
                 private_cap: int = 1000) -> None:
        self.state = state or MemoryState()
        self.context_turns = context_turns
        self.private_cap = private_cap
        # Private images live as files in the real store; here, beside the process.
        self._folder = Path(tempfile.mkdtemp(prefix="capret-memory-"))
        self._lock = threading.Lock()

    def add_gallery(self, label: str, path: Path, vector: np.ndarray) -> int:
        gid = len(self.state.gallery) + 1
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        self.state.gallery.append((gid, label, path, vector.astype(np.float32), sha))
        return gid

    def user_id(self, transport: str, external_id: str, name: str | None) -> int:
        with self._lock:
            return self.state.users.setdefault((transport, external_id), len(self.state.users) + 1)

    def context(self, user_id: int) -> list[Turn]:
        return list(self.state.turns.get(user_id, [])[-self.context_turns:])

    def append_exchange(self, user_id: int, user_turn: Turn, reply_turn: Turn) -> int | None:
        with self._lock:
            self.state.turns.setdefault(user_id, []).extend([user_turn, reply_turn])
        return None  # no reply ids here: no feedback buttons

    def rate(self, user_id: int, turn_id: int, rating: int) -> None:
        raise KeyError(turn_id)

    def reset(self, user_id: int) -> None:
        self.state.turns.pop(user_id, None)
        self.state.shown.pop(user_id, None)
        self.state.searches.pop(user_id, None)

    def history(self, user_id: int) -> list[Turn]:
        return list(self.state.turns.get(user_id, []))

    def export(self, user_id: int) -> bytes:
        turns = [{"role": t.role, "parts": [p.text if isinstance(p, TextPart) else
                                            {"image": p.sha256} for p in t.parts]}
                 for t in self.state.turns.get(user_id, [])]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("conversation.json", json.dumps(turns))
            for turn in self.state.turns.get(user_id, []):
                for part in turn.parts:
                    if isinstance(part, ImagePart) and part.sha256 in self.state.images:
                        archive.writestr(f"images/{part.sha256}.png",
                                         self.state.images[part.sha256])
        return buffer.getvalue()

    def forget(self, user_id: int) -> None:
        self.reset(user_id)
        self.state.private.pop(user_id, None)
        self.state.users = {k: v for k, v in self.state.users.items() if v != user_id}

    def put_image(self, user_id: int, sha256: str, data: bytes) -> None:
        self.state.images[sha256] = data

    def put_footprint(self, sha256: str, footprint: dict[str, object]) -> None:
        self.state.footprints[sha256] = dict(footprint)

    def get_image(self, sha256: str) -> bytes | None:
        return self.state.images.get(sha256)

    def cached_embeddings(self, sha256s: Sequence[str], encoder_id: str) -> dict[str, np.ndarray]:
        found = {s: self.state.embeddings.get((s, encoder_id)) for s in sha256s}
        return {s: v for s, v in found.items() if v is not None}

    def cache_embeddings(self, vectors: dict[str, np.ndarray], encoder_id: str) -> None:
        for sha, vector in vectors.items():
            self.state.embeddings[(sha, encoder_id)] = vector

    def shown(self, user_id: int) -> set[str]:
        return set(self.state.shown.get(user_id, set()))

    def mark_shown(self, user_id: int, sha256s: Sequence[str]) -> None:
        with self._lock:
            self.state.shown.setdefault(user_id, set()).update(sha256s)

    def remember_search(self, user_id: int, search: SavedSearch) -> None:
        self.state.searches[user_id] = search

    def last_search(self, user_id: int) -> SavedSearch | None:
        return self.state.searches.get(user_id)

    def search(self, user_id: int, query: np.ndarray, k: int, exclude: set[str],
               only_own: bool = False) -> list[Hit]:
        own = [Hit(gid, "", float(vec @ query), self._file(sha), sha, sent)
               for gid, sha, vec, sent in self.state.private.get(user_id, [])]
        public = [] if only_own else [Hit(gid, label, float(vec @ query), path, sha)
                                      for gid, label, path, vec, sha in self.state.gallery]
        best: dict[str, Hit] = {}
        for hit in sorted(own + public, key=lambda h: (-h.score, h.sent_at is None)):
            if hit.sha256 not in exclude:
                best.setdefault(hit.sha256, hit)
        return list(best.values())[:k]

    def index_uploads(self, user_id: int, sha256s: Sequence[str],
                      vectors: np.ndarray) -> UploadsIndexed:
        with self._lock:
            mine = self.state.private.setdefault(user_id, [])
            known = {sha for _, sha, _, _ in mine}
            added = 0
            for sha, vector in zip(sha256s, vectors, strict=True):
                if sha not in known:
                    known.add(sha)
                    self.state.next_private_id += 1
                    mine.append((self.state.next_private_id, sha,
                                 np.asarray(vector, np.float32), datetime.now(UTC)))
                    added += 1
            evicted = max(0, len(mine) - self.private_cap)
            del mine[:evicted]
            first = bool(evicted) and user_id not in self.state.cap_told
            if first:
                self.state.cap_told.add(user_id)
        return UploadsIndexed(added, evicted, first)

    def private_count(self, user_id: int) -> int:
        return len(self.state.private.get(user_id, []))

    def _file(self, sha: str) -> Path:
        path = self._folder / f"{sha}.png"
        if not path.exists():
            path.write_bytes(self.state.images[sha])
        return path

    def gallery_size(self) -> int:
        return len(self.state.gallery)

    def close(self) -> None:
        pass
