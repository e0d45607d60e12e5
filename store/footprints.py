"""Footprints of georeferenced images, kept beside the image rows (one per image)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.db import Database
from store.sql import insert_ignore
from store.tables import ImageFootprint, utcnow

FIELDS = ("epsg", "crs", "lat", "lon", "width_m", "height_m", "acquired")


class Footprints:
    """Where stored images lie, by image sha256; removed with their image."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, sha256: str, footprint: Mapping[str, Any]) -> None:
        """Keep the footprint of a stored image (the first one kept wins: same bytes, same
        tags).
        """
        row = {name: footprint.get(name) for name in FIELDS}
        with self.db.write() as s:
            insert_ignore(s, ImageFootprint.__table__,
                          [{"image_sha256": sha256, "created_at": utcnow(), **row}])

    def get(self, sha256: str) -> dict[str, Any] | None:
        """The footprint kept for an image, or None."""
        with self.db.read() as s:
            row = s.get(ImageFootprint, sha256)
            return None if row is None else {name: getattr(row, name) for name in FIELDS}
