"""FAISS indexes for the gallery: build (flat / IVF / HNSW), filtered search, atomic save.

Vectors are L2-normalised float32 and compared by inner product (cosine similarity). Ids are
the gallery rows' ids. Filters are bitmaps over ids (bit i of byte i//8, little-endian).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from store.config import GalleryConfig
from store.files import atomic_write

logger = logging.getLogger(__name__)
# IVF wants at least this many training vectors per list.
MIN_PER_LIST = 39
MAX_TRAIN_PER_LIST = 256


@dataclass(frozen=True)
class IndexMeta:
    """What the index file holds: its vectors' origin and a fingerprint of its ids."""

    bridge_id: str
    dim: int
    kind: str
    count: int
    id_sum: int
    max_id: int

    @classmethod
    def of(cls, bridge_id: str, dim: int, kind: str, ids: np.ndarray) -> IndexMeta:
        ids = np.asarray(ids, dtype=np.int64)
        return cls(bridge_id, dim, kind, int(ids.size), int(ids.sum()),
                   int(ids.max()) if ids.size else -1)


@dataclass(frozen=True)
class Tail:
    """Changes since the index file was written, appended to ``<name>.tail`` (so one upload
    costs a record, not a rewrite of the whole index): ``size`` valid bytes, ``records``.
    """

    size: int = 0
    records: int = 0


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 contiguous, shape (N, D)."""
    x = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def build_index(kind: str, dim: int, config: GalleryConfig, train: np.ndarray | None) -> Any:
    """An empty index of that kind; IVF is trained on ``train`` (a sample of the vectors)."""
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efSearch = config.hnsw_ef_search
        return faiss.IndexIDMap2(base)
    if kind == "ivf":
        if train is None or len(train) == 0:
            raise ValueError("an IVF index needs training vectors")
        nlist = max(1, min(config.ivf_lists, len(train) // MIN_PER_LIST))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = _subsample(train, nlist * MAX_TRAIN_PER_LIST)
        index.train(sample)
        index.nprobe = min(config.ivf_probe, nlist)
        logger.info("trained IVF index: %d lists on %d vectors", nlist, len(sample))
        return index
    raise ValueError(f"unknown gallery index kind {kind!r} (flat, ivf, hnsw)")


def can_remove(index: Any) -> bool:
    """HNSW cannot delete in place (the gallery rebuilds it instead)."""
    base = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    return not isinstance(base, faiss.IndexHNSW)


def search(index: Any, queries: np.ndarray, k: int, allowed: np.ndarray | None,
           config: GalleryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids), each (Q, k); ``allowed`` is a packed id bitmap or None (all)."""
    params = _params(index, config)
    selector = None  # params.sel holds a bare pointer: keep the selector alive in this frame
    if allowed is not None:
        selector = faiss.IDSelectorBitmap(allowed.size, faiss.swig_ptr(allowed))  # n: bytes
        params.sel = selector
    scores, ids = index.search(normalise(queries), k, params=params)
    del selector
    return scores, ids


def bitmap(ids: np.ndarray, size: int) -> np.ndarray:
    """A packed bitmap (uint8) with the bits of ``ids`` set, covering ids < ``size``."""
    flags = np.zeros(max(size, 1), dtype=bool)
    flags[np.asarray(ids, dtype=np.int64)] = True
    return np.packbits(flags, bitorder="little")


def set_bits(bits: np.ndarray, ids: np.ndarray, value: bool) -> None:
    """Set or clear the bits of ``ids`` (those beyond the bitmap are ignored) in place."""
    ids = np.asarray(ids, dtype=np.int64)
    ids = ids[(ids >= 0) & (ids < bits.size * 8)]
    masks = (1 << (ids & 7)).astype(np.uint8)
    if value:
        np.bitwise_or.at(bits, ids >> 3, masks)
    else:
        np.bitwise_and.at(bits, ids >> 3, ~masks)


def save(index: Any, meta: IndexMeta, path: Path) -> None:
    """Write index and sidecar atomically (temp, fsync, rename); the meta is written last.
    A crash in between leaves files that disagree with the rows: the gallery rebuilds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, faiss.serialize_index(index).tobytes())
    tail_path(path).unlink(missing_ok=True)
    _write_meta(meta, Tail(), path)


def append(meta: IndexMeta, tail: Tail, path: Path, ids: np.ndarray, x: np.ndarray | None,
           removed: np.ndarray) -> Tail:
    """Record added vectors (ids, (N, D)) and removed ids after the valid part of the tail
    file (fsynced), then the meta that counts them; returns the new tail.
    """
    records = np.zeros(len(ids) + len(removed), dtype=_record(meta.dim))
    records["id"][: len(ids)] = ids
    if x is not None and len(ids):
        records["v"][: len(ids)] = x
    records["id"][len(ids):] = -np.asarray(removed, dtype=np.int64) - 1  # removal: -(id + 1)
    with open(tail_path(path), "a+b") as handle:
        handle.truncate(tail.size)  # drop records a crashed writer left after the valid part
        handle.write(records.tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    grown = Tail(tail.size + records.nbytes, tail.records + len(records))
    _write_meta(meta, grown, path)
    return grown


def load(path: Path) -> tuple[Any, IndexMeta, Tail] | None:
    """The saved index (its tail replayed), meta and tail; None when a file is missing or the
    tail is shorter than the meta says.
    """
    if not path.is_file() or not meta_path(path).is_file():
        return None
    data = json.loads(meta_path(path).read_text())
    tail = Tail(int(data.pop("tail_size", 0)), int(data.pop("tail_records", 0)))
    meta = IndexMeta(**data)
    index = faiss.read_index(str(path))
    if tail.size and not _replay(index, tail_path(path), tail, meta.dim):
        logger.warning("gallery index tail %s is incomplete", tail_path(path))
        return None
    return index, meta, tail


def tail_path(path: Path) -> Path:
    return path.with_suffix(".tail")


def _write_meta(meta: IndexMeta, tail: Tail, path: Path) -> None:
    data = {**meta.__dict__, "tail_size": tail.size, "tail_records": tail.records}
    atomic_write(meta_path(path), json.dumps(data).encode())


def _record(dim: int) -> np.dtype:
    return np.dtype([("id", "<i8"), ("v", "<f4", (dim,))])


def _replay(index: Any, file: Path, tail: Tail, dim: int) -> bool:
    """Apply the tail's records in order (ids may be reused after a removal)."""
    try:
        data = file.read_bytes()[: tail.size]
    except FileNotFoundError:
        return False
    if len(data) < tail.size:
        return False
    records = np.frombuffer(data, dtype=_record(dim))
    start = 0
    while start < len(records):
        adding = records["id"][start] >= 0
        stop = start
        while stop < len(records) and (records["id"][stop] >= 0) == adding:
            stop += 1
        run = records[start:stop]
        if adding:
            index.add_with_ids(np.ascontiguousarray(run["v"]), np.ascontiguousarray(run["id"]))
        else:
            index.remove_ids(-run["id"] - 1)
        start = stop
    return True


def meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _params(index: Any, config: GalleryConfig) -> Any:
    base = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(base, faiss.IndexHNSW):
        params: Any = getattr(faiss, "SearchParametersHNSW")()  # noqa: B009 (no stub)
        params.efSearch = config.hnsw_ef_search
    elif isinstance(base, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = min(config.ivf_probe, base.nlist)
    else:
        params = faiss.SearchParameters()
    return params


def _subsample(x: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    if len(x) <= limit:
        return normalise(x)
    rows = np.random.default_rng(seed).choice(len(x), size=limit, replace=False)
    return normalise(x[np.sort(rows)])
