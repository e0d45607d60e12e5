"""The image-encoder embedding cache: one vector per (image sha256, encoder id).

The gallery builder encodes through ``get_or_compute``; the conversation service reaches the
same rows through its store port (``cached_embeddings`` / ``cache_embeddings``). Rows go with
their image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import select

from store.db import Database
from store.sql import chunks, insert_ignore
from store.tables import Embedding, utcnow


class EmbeddingCache:
    """Cached encoder embeddings (float32) in the ``embeddings`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, shas: Iterable[str], encoder_id: str) -> dict[str, np.ndarray]:
        """Cached embeddings of those images made by that encoder; misses absent."""
        wanted = sorted(set(shas))
        found: dict[str, np.ndarray] = {}
        with self.db.read() as s:
            for part in chunks(wanted):
                rows = s.scalars(select(Embedding).where(
                    Embedding.encoder_id == encoder_id, Embedding.image_sha256.in_(part)))
                for row in rows:
                    found[row.image_sha256] = np.frombuffer(row.vector, dtype="<f4").copy()
        return found

    def put(self, encoder_id: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Cache embeddings of stored images (first writer wins on a race)."""
        rows = [{"image_sha256": sha, "encoder_id": encoder_id, "dim": int(v.size),
                 "vector": np.ascontiguousarray(v, dtype="<f4").tobytes(), "created_at": utcnow()}
                for sha, v in vectors.items()]
        with self.db.write() as s:
            insert_ignore(s, Embedding.__table__, rows)


    def get_or_compute(self, shas: Sequence[str], encoder_id: str,
                       compute: Callable[[list[str]], np.ndarray]) -> dict[str, np.ndarray]:
        """Embeddings of ``shas``: cached ones, and the misses computed once each and cached.

        Args:
            shas: image hashes (duplicates allowed).
            encoder_id: the encoder the vectors belong to.
            compute: encodes the missing images, in the order given, into (N, D_img).

        Returns:
            sha256 -> float32 embedding, for every distinct hash in ``shas``.
        """
        wanted = list(dict.fromkeys(shas))
        found = self.get(wanted, encoder_id) if wanted else {}
        missing = [sha for sha in wanted if sha not in found]
        if missing:
            computed = {sha: np.asarray(v, dtype=np.float32)
                        for sha, v in zip(missing, compute(missing), strict=True)}
            self.put(encoder_id, computed)
            found.update(computed)
        return found
