"""Typed configuration of the store (database, image files, gallery index)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class GalleryConfig:
    """The FAISS gallery index."""

    # flat: exact inner product; ivf / hnsw: approximate, for large galleries.
    index: Literal["flat", "ivf", "hnsw"] = "flat"
    # IVF: number of lists (clusters) and how many are probed per search.
    ivf_lists: int = 1024
    ivf_probe: int = 32
    # HNSW: neighbours per node and search breadth.
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    # Name of the gallery (its index file is <data_dir>/gallery/<name>.faiss).
    name: str = "default"
    # A folder of images (with captions.json) indexed on first start; None = none.
    seed_folder: str | None = None
    # Private images one chat may keep searchable; past it, its oldest leave the gallery
    # (they stay in their conversation). Bounds what one chat adds to every search's filter.
    private_cap: int = 1000


@dataclass(frozen=True)
class StoreConfig:
    """Where and how things persist. The database URL may be overridden by CAPRET_DATABASE_URL."""

    # Folder for the SQLite file, image blobs and the gallery index.
    data_dir: str = "data"
    # Context window given to the model: at most this many past turns and images.
    context_turns: int = 12
    context_images: int = 4
    # SQLite file name inside data_dir (used when no database URL is given).
    database_file: str = "capret.sqlite3"
    # How long a writer waits for a locked database before failing, in seconds.
    busy_timeout_s: float = 30.0
    # SQLite durability (store/db.py): NORMAL (WAL, no fsync per commit) keeps every
    # acknowledged turn across a process kill but may lose the last ones on a power cut;
    # FULL fsyncs each commit (power-cut safe, a disk flush per turn).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # Apply pending schema migrations on start (else refuse to run on an old schema).
    auto_upgrade: bool = True
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
