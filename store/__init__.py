"""Everything that persists: conversations, image files, the gallery.

Open it once per process with ``open_store(config, database_url)`` (``store/facade.py``); the
``Store`` it returns has one part per concern: ``repo`` (users, turns and their context,
``repository.py``), ``blobs`` (image files, ``blobs.py``), ``gallery`` (search, ``gallery.py``
over ``loaded_index.py`` and ``faiss_index.py``), ``embeddings`` (``embedding_cache.py``),
``shown`` (``shown_images.py``), ``feedback`` (``feedback.py``), ``user_data`` (export and
forget, ``user_data.py``), ``usage`` and ``footprints``. Tables: ``tables.py``; migrations:
``migrations/``; which images rows still use: ``image_refs.py``.
"""

from store.config import GalleryConfig, StoreConfig
from store.errors import (
    GalleryMismatchError,
    MissingImageError,
    SchemaTooNewError,
    StaleGalleryError,
    StoreError,
    UnknownUserError,
)
from store.facade import Store, database_url, open_store
from store.types import (
    Context,
    ConversationInfo,
    ForgetReport,
    GalleryEntry,
    GalleryHit,
    GalleryStats,
    ImageInfo,
    NewImage,
    PartInput,
    PrivateAdd,
    StoredPart,
    StoredTurn,
    UserInfo,
)

__all__ = [
    "Context", "ConversationInfo", "ForgetReport", "GalleryConfig", "GalleryEntry",
    "GalleryHit", "GalleryMismatchError", "GalleryStats", "ImageInfo", "MissingImageError",
    "NewImage", "PartInput", "PrivateAdd", "SchemaTooNewError", "StaleGalleryError", "Store",
    "StoreConfig", "StoreError", "StoredPart", "StoredTurn", "UnknownUserError", "UserInfo",
    "database_url", "open_store",
]
