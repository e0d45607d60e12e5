"""The gallery's loaded index: the FAISS index in memory plus, per id, who may see it and its
image's sha256. ``store.gallery`` loads it from the index file (or rebuilds it from the
database rows when they disagree) and swaps it on every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from store import faiss_index as fx
from store.config import GalleryConfig
from store.types import GalleryEntry

ABSENT, PUBLIC, NOBODY = -2, -1, -3


@dataclass
class LoadedIndex:
    """Index, its meta, and per id: its visibility owner (PUBLIC, a user id, ...) and sha256."""

    index: Any | None
    meta: fx.IndexMeta | None
    stamp: int | None
    # owner[id]: PUBLIC for public rows, the owner's user id for private ones, ABSENT if none.
    owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sha_ids: dict[str, list[int]] = field(default_factory=dict)
    id_sha: dict[int, str] = field(default_factory=dict)
    # Private ids by owner, so a query's filter costs a copy plus the user's own bits.
    private_ids: dict[int, list[int]] = field(default_factory=dict)
    # What the index file's tail holds beyond the file itself (see faiss_index.Tail).
    tail: fx.Tail = field(default_factory=fx.Tail)
    _public_bits: np.ndarray | None = None
    _bridges: set[str] = field(default_factory=set)

    @classmethod
    def empty(cls, stamp: int | None) -> LoadedIndex:
        return cls(None, None, stamp)

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]], index: Any, meta: fx.IndexMeta,
                  stamp: int | None, tail: fx.Tail | None = None) -> LoadedIndex:
        state = cls(index, meta, stamp, tail=tail or fx.Tail())
        state._note([r["id"] for r in rows], [r["image_sha256"] for r in rows],
                    [_owner_code(r["visibility"], r["owner_user_id"]) for r in rows])
        state._bridges = {r["bridge_id"] for r in rows}
        return state

    @property
    def count(self) -> int:
        return int((self.owner != ABSENT).sum())

    @property
    def public_count(self) -> int:
        return int((self.owner == PUBLIC).sum())

    @property
    def bridge_id(self) -> str | None:
        return self.meta.bridge_id if self.meta is not None and self.count else None

    @property
    def dim(self) -> int | None:
        return self.meta.dim if self.meta is not None else None

    def ids(self) -> np.ndarray:
        return np.flatnonzero(self.owner != ABSENT).astype(np.int64)

    def matches(self, meta: fx.IndexMeta) -> bool:
        """Rows and index agree: same ids (fingerprint), count, and one bridge."""
        expected = fx.IndexMeta.of(meta.bridge_id, meta.dim, meta.kind, self.ids())
        return (expected == meta and self.index is not None
                and int(self.index.ntotal) == meta.count and self._bridges <= {meta.bridge_id})

    def with_added(self, ids: Sequence[int], entries: Sequence[GalleryEntry], x: np.ndarray,
                   bridge_id: str, config: GalleryConfig) -> LoadedIndex:
        """Add vectors (normalised, (N, D)) under ``ids`` to the index (built if none)."""
        if self.index is None or self.meta is None or self.count == 0:
            self.index = fx.build_index(config.index, x.shape[1], config, x)
        self.index.add_with_ids(x, np.asarray(ids, dtype=np.int64))
        self._note(list(ids), [e.sha256 for e in entries],
                   [_owner_code(e.visibility, e.owner_user_id) for e in entries])
        self.meta = fx.IndexMeta.of(bridge_id, x.shape[1], config.index, self.ids())
        return self

    def without(self, ids: Sequence[int]) -> LoadedIndex:
        """Remove ids from the index (flat and IVF remove in place)."""
        known = [i for i in ids if 0 <= i < self.owner.size and self.owner[i] != ABSENT]
        if self.index is not None and known:
            self.index.remove_ids(np.asarray(known, dtype=np.int64))
        for i in known:  # per removed id, not per row: a chat's eviction stays cheap
            owner, sha = int(self.owner[i]), self.id_sha.pop(i, None)
            self.owner[i] = ABSENT
            _drop(self.sha_ids, sha, i)
            if owner >= 0:
                _drop(self.private_ids, owner, i)
        if self.meta is not None:
            m = self.meta
            self.meta = fx.IndexMeta.of(m.bridge_id, m.dim, m.kind, self.ids())
        self._public_bits = None
        return self

    def allowed(self, user_id: int | None, exclude: Iterable[str],
                only_own: bool = False) -> np.ndarray:
        """Packed bitmap of the ids this user may get: public plus their own (only their own
        with ``only_own``), minus excluded.
        """
        if only_own:
            bits = fx.bitmap(np.zeros(0, dtype=np.int64), self.owner.size)
        else:
            if self._public_bits is None:
                self._public_bits = fx.bitmap(np.flatnonzero(self.owner == PUBLIC),
                                              self.owner.size)
            bits = self._public_bits.copy()
            if bits.size * 8 < self.owner.size:  # grown by private rows since it was made
                bits = np.concatenate([bits, np.zeros(-(-self.owner.size // 8) - bits.size,
                                                      dtype=np.uint8)])
        own = self.private_ids.get(user_id) if user_id is not None else None
        if own:
            fx.set_bits(bits, np.asarray(own, dtype=np.int64), True)
        excluded = [i for sha in exclude for i in self.sha_ids.get(sha, ())]
        if excluded:
            fx.set_bits(bits, np.asarray(excluded), False)
        return bits

    def owned(self, user_id: int) -> list[int]:
        """The ids of ``user_id``'s private images, oldest first."""
        return sorted(self.private_ids.get(user_id, ()))

    def best_per_image(self, pairs: list[tuple[int, float]],
                       user_id: int | None) -> list[tuple[int, float]]:
        """One (id, score) per image, best first: a public image a chat also sent counts once
        (shown as the chat's own, so its caption says so).
        """
        best: dict[str, tuple[int, float]] = {}  # insertion order: best score first
        for i, score in pairs:
            sha = self.id_sha.get(i)
            if sha is None:
                continue
            if sha not in best:
                best[sha] = (i, score)
            elif user_id is not None and self.owner[i] == user_id:
                best[sha] = (i, best[sha][1])  # same image, same vector: same score
        return list(best.values())

    def _note(self, ids: list[int], shas: list[str], owners: list[int]) -> None:
        if ids:
            top = max(ids) + 1
            if top > self.owner.size:
                grown = np.full(max(top, self.owner.size * 2), ABSENT, dtype=np.int64)
                grown[: self.owner.size] = self.owner
                self.owner = grown
            self.owner[np.asarray(ids)] = owners
        for i, sha, owner in zip(ids, shas, owners, strict=True):
            self.sha_ids.setdefault(sha, []).append(i)
            self.id_sha[i] = sha
            if owner >= 0:
                self.private_ids.setdefault(owner, []).append(i)
        if PUBLIC in owners:  # a chat's upload leaves the public bitmap as it was
            self._public_bits = None


def _owner_code(visibility: str, owner_user_id: int | None) -> int:
    if visibility == "public":
        return PUBLIC
    return NOBODY if owner_user_id is None else int(owner_user_id)


def _drop(lists: dict[Any, list[int]], key: Any, item: int) -> None:
    """Remove ``item`` from ``lists[key]``, and the key once its list is empty."""
    items = lists.get(key)
    if items is None:
        return
    if item in items:
        items.remove(item)
    if not items:
        del lists[key]
