"""An in-memory ConversationStore for service and transport tests (a shared JSON-able state).

``MemoryStore(state)`` with the same ``state`` object behaves like reopening the same database,
so a test can "restart" the bot between two turns.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.replies import Hit
from engine.types import ImagePart, TextPart, Turn


@dataclass
class MemoryState:
    users: dict[tuple[str, str], int] = field(default_factory=dict)
    turns: dict[int, list[Turn]] = field(default_factory=dict)
    shown: dict[int, set[str]] = field(default_factory=dict)
    searches: dict[int, np.ndarray] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    footprints: dict[str, dict[str, object]] = field(default_factory=dict)
    embeddings: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    gallery: list[tuple[int, str, Path, np.ndarray, str]] = field(default_factory=list)


class MemoryStore:
    """ConversationStore over a MemoryState; thread-safe."""

    def __init__(self, state: MemoryState | None = None, context_turns: int = 12) -> None:
        self.state = state or MemoryState()
        self.context_turns = context_turns
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

    def remember_search(self, user_id: int, query: np.ndarray) -> None:
        self.state.searches[user_id] = query

    def last_search(self, user_id: int) -> np.ndarray | None:
        return self.state.searches.get(user_id)

    def search(self, user_id: int, query: np.ndarray, k: int, exclude: set[str]) -> list[Hit]:
        scored = [(float(vec @ query), gid, label, path, sha)
                  for gid, label, path, vec, sha in self.state.gallery if sha not in exclude]
        scored.sort(key=lambda row: (-row[0], row[1]))
        return [Hit(gid, label, score, path, sha) for score, gid, label, path, sha in scored[:k]]

    def gallery_size(self) -> int:
        return len(self.state.gallery)

    def close(self) -> None:
        pass
