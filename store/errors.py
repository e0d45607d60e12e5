"""Errors the store raises; each message says what to do."""

from __future__ import annotations


class StoreError(RuntimeError):
    """Base class of the store's errors."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer version of the app."""


class UnknownUserError(StoreError, KeyError):
    """No user with that id."""


class MissingImageError(StoreError, KeyError):
    """A part references an image the store does not hold."""


class StaleGalleryError(StoreError):
    """The gallery's vectors were made by other bridge weights than the engine's."""


class GalleryMismatchError(StoreError):
    """The index file and the database rows disagree and cannot be reconciled."""
