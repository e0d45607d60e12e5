"""Where a GeoTIFF scene is: its footprint from the GeoTIFF tags, never from the pixels.

Reads the GeoKey directory (model type, EPSG code of the projected or geographic CRS, raster
type), the tie point with the pixel scale or the full model transformation, and an acquisition
date from GDAL metadata when present. Projected CRSs (UTM and others) go to latitude/longitude
with pyproj; sizes are geodesic distances on WGS 84. A plain photo has no footprint: the bot
never guesses a location.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import tifffile
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError, ProjError

# TIFF tags of the GeoTIFF standard (OGC 19-008r4).
PIXEL_SCALE, TIE_POINT, TRANSFORMATION, GEO_KEYS = 33550, 33922, 34264, 34735
GDAL_METADATA = 42112
# GeoKeys: model type (1 projected, 2 geographic), raster type (2: pixel is point), CRS codes.
MODEL_TYPE, RASTER_TYPE, GEOGRAPHIC_CRS, PROJECTED_CRS = 1024, 1025, 2048, 3072
USER_DEFINED = 32767
ACQUISITION_KEYS = ("ACQUISITIONDATETIME", "ACQUISITION_DATE", "DATE_ACQUIRED", "SENSING_TIME",
                    "DATATAKE_SENSING_START", "ACQUISITION_START_TIME")
_GEOD = Geod(ellps="WGS84")


class GeoError(ValueError):
    """The georeferencing is present but cannot be read (the message says why)."""


@dataclass(frozen=True)
class Footprint:
    """A scene's place on Earth."""

    epsg: int
    crs_name: str
    lat: float
    lon: float
    # Ground size across (left to right edge) and down (top to bottom edge), in metres.
    width_m: float
    height_m: float
    # ISO date of acquisition, only when the file says so.
    acquired: str | None = None

    def describe(self) -> str:
        """One line for the reply."""
        lat = f"{abs(self.lat):.5f}° {'N' if self.lat >= 0 else 'S'}"
        lon = f"{abs(self.lon):.5f}° {'E' if self.lon >= 0 else 'W'}"
        line = (f"Location (from the file's georeferencing): centre {lat}, {lon}; about "
                f"{_length(self.width_m)} × {_length(self.height_m)}; "
                f"CRS EPSG:{self.epsg} ({self.crs_name})")
        return line + (f"; acquired {self.acquired}" if self.acquired else "") + "."

    def as_dict(self) -> dict[str, Any]:
        return {"epsg": self.epsg, "crs": self.crs_name, "lat": self.lat, "lon": self.lon,
                "width_m": self.width_m, "height_m": self.height_m, "acquired": self.acquired}


@dataclass(frozen=True)
class GeoReading:
    """What the file says about location: a footprint, or why it could not be read."""

    footprint: Footprint | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.footprint is not None:
            return self.footprint.describe()
        return f"The file has georeferencing, but I could not read its location ({self.problem})."


def read_geo(page: tifffile.TiffPage, width: int, height: int) -> GeoReading | None:
    """The footprint of a ``width`` × ``height`` image; None when it has no georeferencing."""
    tags = page.tags
    if GEO_KEYS not in tags and TIE_POINT not in tags and TRANSFORMATION not in tags:
        return None
    try:
        return GeoReading(footprint(page, width, height))
    except GeoError as exc:
        return GeoReading(problem=str(exc))
    except (ValueError, TypeError, IndexError, OverflowError):  # odd value types in the tags
        return GeoReading(problem="malformed georeferencing tags")


def footprint(page: tifffile.TiffPage, width: int, height: int) -> Footprint:
    """Raise GeoError when the tags are incomplete, inconsistent or name an unknown CRS."""
    keys = geo_keys(_tag(page, GEO_KEYS, "no GeoKey directory"))
    epsg = _epsg(keys)
    to_model = _affine(page, point=keys.get(RASTER_TYPE) == 2)
    try:
        crs = CRS.from_epsg(epsg)
        to_lonlat = Transformer.from_crs(crs, 4326, always_xy=True)
        corners = {name: to_lonlat.transform(*to_model(col * width, row * height))
                   for name, (col, row) in _EDGES.items()}
    except (CRSError, ProjError) as exc:
        raise GeoError(f"unknown or unusable CRS EPSG:{epsg}") from exc
    lon, lat = corners["centre"]
    if not all(math.isfinite(v) for c in corners.values() for v in c) or abs(lat) > 90:
        raise GeoError("the coordinates are outside the Earth")
    across = _distance(corners["left"], corners["right"])
    down = _distance(corners["top"], corners["bottom"])
    return Footprint(epsg, crs.name, lat, _wrap(lon), across, down, _acquired(page))


def geo_keys(directory: Any) -> dict[int, int]:
    """Short-valued GeoKeys from the GeoKeyDirectoryTag (header, then 4 shorts per key)."""
    values = [int(v) for v in directory]
    if len(values) < 4 or values[0] != 1:
        raise GeoError("malformed GeoKey directory")
    count = values[3]
    if len(values) < 4 + 4 * count:
        raise GeoError("truncated GeoKey directory")
    keys: dict[int, int] = {}
    for index in range(count):
        key, location, _, value = values[4 + 4 * index: 8 + 4 * index]
        if location == 0:  # the value is in the directory itself (others: doubles, text)
            keys[key] = value
    return keys


_EDGES = {"centre": (0.5, 0.5), "left": (0.0, 0.5), "right": (1.0, 0.5),
          "top": (0.5, 0.0), "bottom": (0.5, 1.0)}


def _epsg(keys: dict[int, int]) -> int:
    code = keys.get(PROJECTED_CRS) if keys.get(MODEL_TYPE) == 1 else keys.get(GEOGRAPHIC_CRS)
    if code is None:
        code = keys.get(PROJECTED_CRS, keys.get(GEOGRAPHIC_CRS))
    if code is None or code == USER_DEFINED or code <= 0:
        raise GeoError("no EPSG code for the coordinate reference system")
    return code


def _affine(page: tifffile.TiffPage, point: bool) -> Any:
    """Pixel (col, row) at the top-left corner convention → model (x, y)."""
    shift = 0.5 if point else 0.0  # PixelIsPoint: the tie point is a pixel's centre
    if TRANSFORMATION in page.tags:
        m = [float(v) for v in _tag(page, TRANSFORMATION, "")]
        if len(m) != 16:
            raise GeoError("malformed model transformation")
        return lambda c, r: (m[0] * (c - shift) + m[1] * (r - shift) + m[3],
                             m[4] * (c - shift) + m[5] * (r - shift) + m[7])
    tie = [float(v) for v in _tag(page, TIE_POINT, "no tie point")]
    scale = [float(v) for v in _tag(page, PIXEL_SCALE, "no pixel scale")]
    if len(tie) < 6 or len(scale) < 2 or scale[0] <= 0 or scale[1] <= 0:
        raise GeoError("malformed tie point or pixel scale")
    i, j, x, y = tie[0], tie[1], tie[3], tie[4]
    return lambda c, r: (x + (c - shift - i) * scale[0], y - (r - shift - j) * scale[1])


def _tag(page: tifffile.TiffPage, code: int, missing: str) -> Any:
    tag = page.tags.get(code)
    if tag is None:
        raise GeoError(missing)
    return tag.value


def _distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(_GEOD.inv(a[0], a[1], b[0], b[1])[2])


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


def _acquired(page: tifffile.TiffPage) -> str | None:
    """An acquisition date from GDAL metadata; the TIFF DateTime tag is when the file was
    made, which for a processed product is not when the scene was seen, so it is not used.
    """
    tag = page.tags.get(GDAL_METADATA)
    if tag is None or not isinstance(tag.value, str):
        return None
    for key in ACQUISITION_KEYS:
        found = re.search(rf'<Item name="{key}"[^>]*>([^<]+)</Item>', tag.value, re.IGNORECASE)
        date = found and re.match(r"(\d{4})[-:](\d{2})[-:](\d{2})", found[1].strip())
        if date:
            return f"{date[1]}-{date[2]}-{date[3]}"
    return None


def _length(metres: float) -> str:
    return f"{metres / 1000:.2f} km" if metres >= 1000 else f"{metres:.0f} m"
