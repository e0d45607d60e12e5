"""The gallery: images with vectors in the bridge's shared space, searchable by vector.

Rows live in ``gallery_items`` (with their vectors, so the index can always be rebuilt);
the FAISS index is a file beside them whose ids are the rows' ids. The index records which
bridge weights made its vectors and refuses queries from other weights.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from store import faiss_index as fx
from store.blobs import BlobStore
from store.config import GalleryConfig
from store.db import Database
from store.errors import GalleryMismatchError, StaleGalleryError
from store.image_refs import delete_unreferenced_files, delete_unreferenced_images, existing_images
from store.loaded_index import LoadedIndex
from store.sql import chunks
from store.tables import (
    GalleryItem,
    ImageSource,
    as_utc,
    utcnow,
)
from store.types import GalleryEntry, GalleryHit, GalleryStats, PrivateAdd

logger = logging.getLogger(__name__)
REBUILD_HINT = "rebuild it with `capret gallery rebuild`"
# The index file is rewritten once its tail holds this many changes, or 1/16 of its vectors.
TAIL_MIN, TAIL_FRACTION = 256, 16


class Gallery:
    """One named gallery: database rows plus a FAISS index file, ids aligned."""

    def __init__(self, db: Database, blobs: BlobStore, folder: str | Path,
                 config: GalleryConfig) -> None:
        self.db, self.blobs, self.config = db, blobs, config
        self.name = config.name
        self.path = Path(folder) / f"{self.name}.faiss"
        self._lock = threading.RLock()
        self._state: LoadedIndex | None = None

    # ----- reading -----------------------------------------------------------------------
    @property
    def bridge_id(self) -> str | None:
        """The bridge weights that made the vectors (None: empty gallery)."""
        return self._loaded().bridge_id

    def __len__(self) -> int:
        return self._loaded().count

    def check_bridge(self, bridge_id: str) -> None:
        """Raise StaleGalleryError unless the vectors were made by ``bridge_id``."""
        current = self.bridge_id
        if current is not None and current != bridge_id:
            raise StaleGalleryError(
                f"gallery {self.name!r} holds vectors made by bridge weights {current!r}, but "
                f"the engine's bridge is {bridge_id!r}: {REBUILD_HINT}")

    def search(self, query: np.ndarray, k: int, bridge_id: str, user_id: int | None = None,
               exclude: Iterable[str] = (), only_own: bool = False) -> list[GalleryHit]:
        """Top-k images by inner product with ``query`` (search_dim,), best first.

        Only public images and ``user_id``'s own uploads are candidates (never another
        user's private ones; with ``only_own``, only their own); images whose sha256 is in
        ``exclude`` are skipped. An image that is both public and the user's counts once.
        """
        self.check_bridge(bridge_id)
        with self._lock:
            state = self._loaded()
            if state.count == 0 or k <= 0 or (only_own and user_id is None):
                return []
            allowed = state.allowed(user_id, exclude, only_own)
            want = k
            while True:  # duplicates (one image, two rows) may take places: ask for more
                scores, ids = fx.search(state.index, np.asarray(query), want, allowed,
                                        self.config)
                pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True)
                         if i >= 0]
                found = state.best_per_image(pairs, user_id)
                if len(found) >= k or len(pairs) < want or want >= state.count:
                    break
                want *= 2
        return self._hits(found[:k])

    def private_count(self, owner_user_id: int) -> int:
        """How many private images that owner has in the gallery."""
        with self._lock:
            return len(self._loaded().private_ids.get(owner_user_id, ()))

    def contains(self, shas: Iterable[str], owner_user_id: int | None = None) -> set[str]:
        """Which of these images the gallery already holds for that owner (for resuming)."""
        wanted, found = sorted(set(shas)), set[str]()
        with self.db.read() as s:
            for part in chunks(wanted):
                found.update(s.scalars(select(GalleryItem.image_sha256).where(
                    GalleryItem.gallery == self.name, GalleryItem.image_sha256.in_(part),
                    _owner_is(owner_user_id))))
        return found

    def stats(self) -> GalleryStats:
        """Counts by visibility and label, and the vectors' provenance."""
        state = self._loaded()
        labels: dict[str, int] = {}
        with self.db.read() as s:
            for label in s.scalars(select(GalleryItem.label)
                                   .where(GalleryItem.gallery == self.name)):
                labels[label or "?"] = labels.get(label or "?", 0) + 1
        return GalleryStats(self.name, state.count, state.public_count,
                            state.count - state.public_count, state.bridge_id,
                            self.config.index, state.dim, labels, len(state.private_ids))

    # ----- writing -----------------------------------------------------------------------
    def add(self, entries: Sequence[GalleryEntry], vectors: np.ndarray,
            bridge_id: str) -> list[int]:
        """Add images (already stored) with their vectors (N, search_dim); returns their ids."""
        if len(entries) != len(vectors):
            raise ValueError(f"{len(entries)} entries but {len(vectors)} vectors")
        if not entries:
            return []
        x = fx.normalise(vectors)
        with self._exclusive():
            self.check_bridge(bridge_id)
            ids = self._insert_rows(entries, x, bridge_id)
            self._state = self._loaded().with_added(ids, entries, x, bridge_id, self.config)
            self._persist(ids, x)
        return ids

    def add_private(self, owner_user_id: int, entries: Sequence[GalleryEntry],
                    vectors: np.ndarray, bridge_id: str) -> PrivateAdd:
        """Add a chat's uploads (already stored) as its private images, each image once per
        chat; past ``private_cap`` the chat's oldest leave the gallery (not its history).
        """
        if len(entries) != len(vectors):
            raise ValueError(f"{len(entries)} entries but {len(vectors)} vectors")
        chosen = {e.sha256: (e, v) for e, v in zip(entries, fx.normalise(vectors), strict=True)}
        with self._exclusive():
            self.check_bridge(bridge_id)
            present = self.contains(chosen, owner_user_id)
            new = [(e, v) for sha, (e, v) in chosen.items() if sha not in present]
            rows = [GalleryEntry(e.sha256, e.caption, e.label, e.source, owner_user_id,
                                 "private") for e, _ in new]
            ids: list[int] = []
            if rows:
                x = np.stack([v for _, v in new])
                ids = self._insert_rows(rows, x, bridge_id)
                self._state = self._loaded().with_added(ids, rows, x, bridge_id, self.config)
                self._persist(ids, x)
            oldest = self._loaded().owned(owner_user_id)
            evict = oldest[:max(0, len(oldest) - self.config.private_cap)]
            shas = self._delete_rows(evict) if evict else []
            if evict:
                self._drop_from_index(evict)
        self._delete_files(shas)
        return PrivateAdd(ids, len(entries) - len(rows), len(evict))

    def remove(self, item_ids: Sequence[int]) -> int:
        """Remove gallery rows and their vectors; images nothing else uses go too (files
        included); a user's claim on an image (their upload) keeps it.
        """
        ids = sorted(set(item_ids))
        with self._exclusive():
            shas = self._delete_rows(ids)
            self._drop_from_index(ids)
        self._delete_files(shas)
        return len(ids)

    def discard(self, item_ids: Sequence[int]) -> None:
        """Drop ids whose rows are already deleted (e.g. by forgetting a user) from the index."""
        with self._exclusive():
            self._drop_from_index(sorted(set(item_ids)))

    def items(self, batch: int = 256) -> Iterator[list[tuple[int, str]]]:
        """All (id, sha256) of the gallery in batches, by id (for re-embedding)."""
        last = -1
        while True:
            with self.db.read() as s:
                rows = s.execute(select(GalleryItem.id, GalleryItem.image_sha256).where(
                    GalleryItem.gallery == self.name, GalleryItem.id > last)
                    .order_by(GalleryItem.id).limit(batch)).all()
            if not rows:
                return
            last = rows[-1][0]
            yield [(int(i), str(sha)) for i, sha in rows]

    def set_vectors(self, item_ids: Sequence[int], vectors: np.ndarray, bridge_id: str) -> None:
        """Replace stored vectors (re-embedding); call ``rebuild_index`` when all are done."""
        x = fx.normalise(vectors)
        with self.db.write() as s:
            for item_id, vector in zip(item_ids, x, strict=True):
                row = s.get(GalleryItem, item_id)
                if row is not None:
                    row.vector, row.bridge_id = vector.tobytes(), bridge_id

    def rebuild_index(self) -> None:
        """Rebuild the index file from the vectors in the database."""
        with self._exclusive():
            self._state = self._rebuild()
            self._save()

    def reload(self) -> None:
        """Forget the in-memory index; the next call loads it again."""
        with self._lock:
            self._state = None

    # ----- internals ---------------------------------------------------------------------
    def _loaded(self) -> LoadedIndex:
        with self._lock:
            stamp = _stamp(self.path)
            if self._state is None or self._state.stamp != stamp:
                self._state = self._load()
            return self._state

    def _load(self) -> LoadedIndex:
        rows = self._rows(vectors=False)
        saved = fx.load(self.path)
        if saved is not None:
            index, meta, tail = saved
            fresh = LoadedIndex.from_rows(rows, index, meta, _stamp(self.path), tail)
            if fresh.matches(meta):
                return fresh
            logger.warning("gallery %r: index file and database disagree (%d vectors, %d rows):"
                           " rebuilding from the stored vectors", self.name, meta.count, len(rows))
        elif rows:
            logger.info("gallery %r: no index file, building it from the database", self.name)
        else:
            return LoadedIndex.empty(_stamp(self.path))
        state = self._rebuild()
        self._save(state)
        return state

    def _rebuild(self) -> LoadedIndex:
        rows = self._rows(vectors=True)
        bridges = {r["bridge_id"] for r in rows}
        if len(bridges) > 1:
            raise GalleryMismatchError(
                f"gallery {self.name!r} mixes vectors of bridges {sorted(bridges)}: "
                f"{REBUILD_HINT}")
        if not rows:
            return LoadedIndex.empty(None)
        x = np.stack([np.frombuffer(r["vector"], dtype=np.float32) for r in rows])
        ids = np.array([r["id"] for r in rows], dtype=np.int64)
        index = fx.build_index(self.config.index, x.shape[1], self.config, x)
        index.add_with_ids(x, ids)
        meta = fx.IndexMeta.of(bridges.pop(), x.shape[1], self.config.index, ids)
        return LoadedIndex.from_rows(rows, index, meta, None)

    def _rows(self, vectors: bool) -> list[dict[str, Any]]:
        cols = [GalleryItem.id, GalleryItem.image_sha256, GalleryItem.owner_user_id,
                GalleryItem.visibility, GalleryItem.bridge_id]
        if vectors:
            cols.append(GalleryItem.vector)
        with self.db.read() as s:
            result = s.execute(select(*cols).where(GalleryItem.gallery == self.name)
                               .order_by(GalleryItem.id))
            return [dict(row._mapping) for row in result]

    def _insert_rows(self, entries: Sequence[GalleryEntry], x: np.ndarray,
                     bridge_id: str) -> list[int]:
        with self.db.write() as s:
            missing = set(e.sha256 for e in entries) - existing_images(
                s, [e.sha256 for e in entries])
            if missing:
                raise KeyError(f"images not stored (add them first): {sorted(missing)[:3]}")
            rows = [GalleryItem(
                gallery=self.name, image_sha256=e.sha256, caption=e.caption, label=e.label,
                source=e.source, owner_user_id=e.owner_user_id, visibility=e.visibility,
                bridge_id=bridge_id, vector=v.tobytes(), added_at=utcnow())
                for e, v in zip(entries, x, strict=True)]
            s.add_all(rows)
            s.flush()
            return [r.id for r in rows]

    def _delete_rows(self, ids: Sequence[int]) -> list[str]:
        """Delete rows (and images nothing references any more); their hashes, for files."""
        with self.db.write() as s:
            shas = [sha for part in chunks(ids) for sha in s.scalars(
                select(GalleryItem.image_sha256).where(GalleryItem.id.in_(part)))]
            for part in chunks(ids):
                s.execute(delete(GalleryItem).where(GalleryItem.id.in_(part)))
            _drop_unreferenced_images(s, shas)
        return shas

    def _delete_files(self, shas: Sequence[str]) -> None:
        delete_unreferenced_files(self.db, self.blobs, shas)

    def _drop_from_index(self, ids: list[int]) -> None:
        state = self._loaded()
        if not fx.can_remove(state.index):
            self._state = self._rebuild()
            self._save()
        else:
            self._state = state.without(ids)
            self._persist(removed=ids)

    def _persist(self, ids: Sequence[int] = (), x: np.ndarray | None = None,
                 removed: Sequence[int] = ()) -> None:
        """Save a change: appended to the index's tail while the tail is small, else (and for
        a new or emptied index) the whole index is written and the tail starts afresh.
        """
        state = self._state
        assert state is not None
        changes = len(ids) + len(removed)
        limit = max(TAIL_MIN, state.count // TAIL_FRACTION)
        if (state.index is None or state.meta is None or not self.path.is_file()
                or state.count == len(ids) or state.tail.records + changes > limit):
            self._save()
            return
        state.tail = fx.append(state.meta, state.tail, self.path,
                               np.asarray(ids, dtype=np.int64), x,
                               np.asarray(removed, dtype=np.int64))
        state.stamp = _stamp(self.path)

    def _save(self, state: LoadedIndex | None = None) -> None:
        state = state or self._state
        assert state is not None
        if state.index is None or state.meta is None:
            for path in (self.path, fx.meta_path(self.path), fx.tail_path(self.path)):
                path.unlink(missing_ok=True)
        else:
            fx.save(state.index, state.meta, self.path)
        state.tail = fx.Tail()
        state.stamp = _stamp(self.path)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise index writers across threads and processes; reload if another wrote."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_suffix(".lock"), "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                self._loaded()
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _hits(self, pairs: list[tuple[int, float]]) -> list[GalleryHit]:
        with self.db.read() as s:
            rows = {r.id: r for r in s.scalars(select(GalleryItem).where(
                GalleryItem.id.in_([i for i, _ in pairs])))}
        return [GalleryHit(i, r.image_sha256, score, r.caption, r.label, r.source,
                           r.visibility, r.owner_user_id,  # type: ignore[arg-type]
                           as_utc(r.added_at))
                for i, score in pairs if (r := rows.get(i)) is not None]


def _owner_is(owner_user_id: int | None) -> Any:
    if owner_user_id is None:
        return GalleryItem.owner_user_id.is_(None)
    return GalleryItem.owner_user_id == owner_user_id


def _drop_unreferenced_images(s: Any, shas: Sequence[str]) -> None:
    """Drop the system's claims (source rows without owner) on images no gallery row holds any
    more, then the images nothing references.
    """
    in_gallery = set[str]()
    for part in chunks(list(set(shas))):
        in_gallery.update(s.scalars(select(GalleryItem.image_sha256)
                                    .where(GalleryItem.image_sha256.in_(part))))
    for part in chunks([sha for sha in set(shas) if sha not in in_gallery]):
        s.execute(delete(ImageSource).where(ImageSource.image_sha256.in_(part),
                                            ImageSource.user_id.is_(None)))
    delete_unreferenced_images(s, shas)


def _stamp(path: Path) -> int | None:
    try:
        return fx.meta_path(path).stat().st_mtime_ns
    except FileNotFoundError:
        return None
