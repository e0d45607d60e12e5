"""GeoTIFF footprints from tags the tests write themselves (tifffile), in EPSG:4326 and UTM."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import tifffile
from pyproj import Transformer

from bot.images import decode_image
from tests.bot.test_images import LIMITS

GDAL_METADATA = 42112


def geotiff(epsg: int, tie: tuple[float, float], scale: float, shape: tuple[int, int] = (100, 200),
            projected: bool = False, keys: list[int] | None = None,
            metadata: str | None = None) -> bytes:
    """A 16-bit 4-band GeoTIFF of ``shape`` (rows, cols), top-left corner at ``tie``."""
    crs_key = 3072 if projected else 2048
    directory = keys if keys is not None else [1, 1, 0, 3, 1024, 0, 1, 1 if projected else 2,
                                               1025, 0, 1, 1, crs_key, 0, 1, epsg]
    tags: list[tuple[int, str, int, Any, bool]] = [(34735, "H", len(directory), directory, True),
            (33550, "d", 3, (scale, scale, 0.0), True),
            (33922, "d", 6, (0.0, 0.0, 0.0, tie[0], tie[1], 0.0), True)]
    if metadata:
        tags.append((GDAL_METADATA, "s", 0, metadata, True))
    bands = (np.random.default_rng(0).random((*shape, 4)) * 4000).astype(np.uint16)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, bands, photometric="minisblack", planarconfig="contig",
                     extratags=tags)
    return buffer.getvalue()


def test_geographic_footprint() -> None:
    data = geotiff(4326, (6.50, 46.60), 0.0001, metadata=(
        '<GDALMetadata><Item name="ACQUISITIONDATETIME">2024-06-01T10:31:00Z</Item>'
        "</GDALMetadata>"))
    found = decode_image(data, **LIMITS).geo
    assert found is not None and found.footprint is not None
    place = found.footprint
    assert place.epsg == 4326
    assert place.lat == pytest.approx(46.595, abs=1e-6)
    assert place.lon == pytest.approx(6.51, abs=1e-6)
    # 0.02° of longitude at 46.6° N is about 1.53 km; 0.01° of latitude about 1.11 km.
    assert place.width_m == pytest.approx(1532, rel=0.01)
    assert place.height_m == pytest.approx(1112, rel=0.01)
    assert place.acquired == "2024-06-01"
    assert "46.59500° N, 6.51000° E" in found.describe() and "acquired 2024-06-01" in \
        found.describe()


def test_utm_footprint_is_converted() -> None:
    # UTM zone 32N, 10 m pixels, 300 × 200 pixels, the top-left corner on the central meridian.
    data = geotiff(32632, (500_000.0, 5_160_000.0), 10.0, shape=(200, 300), projected=True)
    place = decode_image(data, **LIMITS).geo.footprint  # type: ignore[union-attr]
    assert place is not None and place.epsg == 32632 and "UTM zone 32N" in place.crs_name
    # The centre pixel (150, 100) is at easting 501,500 m, northing 5,159,000 m.
    back = Transformer.from_crs(4326, 32632, always_xy=True).transform(place.lon, place.lat)
    assert back == pytest.approx((501_500.0, 5_159_000.0), abs=0.01)
    assert 9.0 < place.lon < 9.05 and 46.5 < place.lat < 46.7
    assert place.width_m == pytest.approx(3000, rel=0.002)
    assert place.height_m == pytest.approx(2000, rel=0.002)
    assert place.acquired is None


@pytest.mark.parametrize(("keys", "problem"), [
    ([1, 1, 0, 5, 1024, 0, 1, 2], "truncated GeoKey directory"),
    ([1, 1, 0, 1, 1024, 0, 1, 2], "no EPSG code"),
    ([1, 1, 0, 2, 1024, 0, 1, 2, 2048, 0, 1, 32767], "no EPSG code"),
    ([1, 1, 0, 2, 1024, 0, 1, 2, 2048, 0, 1, 9], "unknown or unusable CRS"),
])
def test_broken_geokeys_still_decode_with_a_reason(keys: list[int], problem: str) -> None:
    decoded = decode_image(geotiff(4326, (6.5, 46.6), 0.0001, keys=keys), **LIMITS)
    assert decoded.image.size == (200, 100)
    assert decoded.geo is not None and decoded.geo.footprint is None
    assert problem in decoded.geo.describe()
    assert "could not read its location" in decoded.geo.describe()


def test_coordinates_off_the_earth_are_refused() -> None:
    decoded = decode_image(geotiff(4326, (6.5, 146.6), 0.0001), **LIMITS)
    assert decoded.geo is not None and decoded.geo.footprint is None


def test_plain_tiff_and_photo_have_no_location() -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((32, 32, 3), dtype=np.uint8), photometric="rgb")
    assert decode_image(buffer.getvalue(), **LIMITS).geo is None
