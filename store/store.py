"""The store facade: one object that opens the database, image files and gallery."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from store.blobs import BlobStore
from store.config import StoreConfig
from store.db import Database, sqlite_url
from store.errors import StoreError
from store.feedback import FeedbackBook
from store.footprints import Footprints
from store.gallery import Gallery
from store.repository import Repository
from store.schema import check_schema, upgrade
from store.sql import existing_images
from store.usage import UsageLedger

logger = logging.getLogger(__name__)


@dataclass
class Store:
    """Everything that persists. ``repo``: conversations; ``blobs``: image files;
    ``gallery``: the searchable image gallery. Thread-safe; one per process."""

    config: StoreConfig
    db: Database
    repo: Repository
    blobs: BlobStore
    gallery: Gallery
    # Per-person daily usage and model-call timings; footprints of georeferenced images.
    usage: UsageLedger
    footprints: Footprints
    feedback: FeedbackBook

    @property
    def data_dir(self) -> Path:
        return Path(self.config.data_dir)

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()


def database_url(config: StoreConfig, url: str | None = None) -> str:
    """The URL given (e.g. from CAPRET_DATABASE_URL), else SQLite in the data folder."""
    return url or sqlite_url(Path(config.data_dir) / config.database_file)


def open_store(config: StoreConfig, database_url_: str | None = None,
               upgrade_schema: bool | None = None, sweep: bool = True) -> Store:
    """Open (creating as needed) the data folder, database, image files and gallery.

    Args:
        config: the store's config; ``data_dir`` is created if missing.
        database_url_: any SQLAlchemy URL; None = SQLite at ``data_dir/database_file``.
        upgrade_schema: apply pending migrations (default: ``config.auto_upgrade``);
            when False, an out-of-date schema raises StoreError.
        sweep: delete image files no row references (left by a killed process).

    Raises:
        SchemaTooNewError: the database was migrated by a newer version of the app.
    """
    data = Path(config.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    db = Database(database_url(config, database_url_), config.busy_timeout_s,
                  config.sqlite_synchronous)
    try:
        if check_schema(db) == "behind":
            if not (config.auto_upgrade if upgrade_schema is None else upgrade_schema):
                raise StoreError("the database schema is out of date: run `capret db upgrade`")
            upgrade(db)
        blobs = BlobStore(data / "images")
        if sweep:
            blobs.sweep(lambda shas: _rows(db, shas))
        gallery = Gallery(db, blobs, data / "gallery", config.gallery)
        repo = Repository(db, blobs, config)
        repo.on_gallery_removed = gallery.discard
    except BaseException:
        db.dispose()
        raise
    return Store(config, db, repo, blobs, gallery, UsageLedger(db), Footprints(db),
                 FeedbackBook(db))


def _rows(db: Database, shas: list[str]) -> set[str]:
    with db.read() as s:
        return existing_images(s, shas)
