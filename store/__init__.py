"""Everything that persists: conversations, image files, the gallery.

Open it once per process with ``open_store(config, database_url)``; use ``store.repo`` for
users, turns and their context, ``store.blobs`` for image bytes, ``store.gallery`` for search.
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
from store.store import Store, database_url, open_store
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
