"""The store's one facade: ``open_store`` opens the database, image files and gallery and
hands out ``Store``, whose parts are each named for what they hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from store.blobs import BlobStore
from store.config import StoreConfig
from store.db import Database, sqlite_url
from store.embedding_cache import EmbeddingCache
from store.errors import StoreError
from store.feedback import FeedbackBook
from store.footprints import Footprints
from store.gallery import Gallery
from store.image_refs import images_with_rows
from store.repository import Repository
from store.schema import check_schema, upgrade
from store.shown_images import ShownImages
from store.usage import UsageLedger
from store.user_data import UserData

logger = logging.getLogger(__name__)


@dataclass
class Store:
    """Everything that persists, one part per concern. Thread-safe; one per process."""

    config: StoreConfig
    db: Database
    # Users, their images and conversations (turns, context windows).
    repo: Repository
    # Image files, content-addressed by sha256.
    blobs: BlobStore
    # The searchable gallery: rows plus the FAISS index file.
    gallery: Gallery
    # Encoder embeddings by (sha256, encoder id).
    embeddings: EmbeddingCache
    # Gallery images already shown per conversation.
    shown: ShownImages
    # Ratings of replies.
    feedback: FeedbackBook
    # A user's data out (export) and gone (forget).
    user_data: UserData
    # Per-person daily usage and model-call timings; footprints of georeferenced images.
    usage: UsageLedger
    footprints: Footprints

    @property
    def data_dir(self) -> Path:
        """The folder of the SQLite file, image files and gallery index."""
        return Path(self.config.data_dir)

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()


def database_url(config: StoreConfig, url: str | None = None) -> str:
    """The URL given (the bot's entry points read it from CAPRET_DATABASE_URL), else SQLite in
    the data folder.
    """
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
            blobs.sweep(lambda shas: images_with_rows(db, shas))
        gallery = Gallery(db, blobs, data / "gallery", config.gallery)
    except BaseException:
        db.dispose()
        raise
    return Store(config, db, Repository(db, blobs, config), blobs, gallery, EmbeddingCache(db),
                 ShownImages(db), FeedbackBook(db), UserData(db, blobs, gallery),
                 UsageLedger(db), Footprints(db))
