"""Safe decoding of user uploads to RGB: size and pixel limits, JPEG/PNG/WebP, (Geo)TIFF.

16-bit and multispectral data get a per-band 2-98 percentile stretch; bands are chosen from
GDAL band names when present, else by the usual layouts (RGB[+alpha/NIR], Landsat/Sentinel-2).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import warnings
from dataclasses import dataclass

import numpy as np
import tifffile
from PIL import Image, ImageOps

from bot.errors import UserFacingError
from bot.geo import GeoReading, read_geo
from bot.tiles import Tile, cut_tiles, is_large

logger = logging.getLogger(__name__)

PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Sentinel-2 / Landsat 8-9 order: coastal, blue, green, red, ...: red, green, blue = 3, 2, 1.
MULTISPECTRAL_RGB = (3, 2, 1)
_BAND_NAMES = {"red": 0, "r": 0, "b4": 0, "green": 1, "g": 1, "b3": 1, "blue": 2, "b2": 2}
_STRETCH_SAMPLES = 1_000_000


class ImageRejected(UserFacingError):
    """The upload cannot be used; the message is fit to show the user."""


@dataclass(frozen=True)
class DecodedImage:
    """An upload turned into a bounded RGB image, named by the sha256 of its PNG encoding."""

    image: Image.Image
    png: bytes
    sha256: str
    source_format: str
    # What a GeoTIFF says about where the scene is (None: nothing, e.g. any plain photo).
    geo: GeoReading | None = None
    # A grid cut from the full-resolution image when it is a large scene (else empty).
    tiles: tuple[Tile, ...] = ()


@dataclass(frozen=True)
class TileRule:
    """When and how a large scene is also cut into tiles."""

    # The model's input side in pixels, and how many times larger a scene must be.
    model_side: int = 224
    factor: float = 4.0
    grid: int = 3


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, max_side: int = 1024,
    tiling: TileRule | None = None,
) -> DecodedImage:
    """Decode an upload to RGB within limits; raise ImageRejected with a user-facing reason."""
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(f"The file is too large (limit {max_bytes // (1024 * 1024)} MB).")
    geo = None
    if data[:4] in TIFF_MAGIC:
        (rgb, geo), fmt = _decode_tiff(data, max_pixels), "TIFF"
    else:
        rgb, fmt = _decode_pillow(data, max_pixels)
    tiles: tuple[Tile, ...] = ()
    if tiling is not None and is_large(rgb.width, rgb.height, tiling.model_side, tiling.factor):
        tiles = cut_tiles(rgb, tiling.grid, tiling.model_side * 2)
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    png = buffer.getvalue()
    return DecodedImage(rgb, png, hashlib.sha256(png).hexdigest(), fmt, geo, tiles)


def _decode_pillow(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS)
            _check_pixels(opened.width, opened.height, max_pixels)
            opened.load()
            fmt = str(opened.format)
            image = ImageOps.exif_transpose(opened)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            f"The image is too large to decode safely (limit {max_pixels:,} pixels).") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageRejected(
            "Unsupported file: send a JPEG, PNG, WebP or (Geo)TIFF image."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("The image is corrupt or truncated.") from exc
    return _pillow_to_rgb(image), fmt


def _pillow_to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _array_to_rgb(np.asarray(image)[..., None], photometric_rgb=False)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageRejected(
            f"The image is too large: {width}×{height} pixels (limit {max_pixels:,})."
        )


def _decode_tiff(data: bytes, max_pixels: int) -> tuple[Image.Image, GeoReading | None]:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series[0]
            height, width, bands, axes = _tiff_geometry(series.shape, series.axes)
            _check_pixels(width, height, max_pixels)
            if bands > 64:
                raise ImageRejected("The TIFF has too many bands.")
            page = tif.pages.first
            photometric_rgb = page.photometric == tifffile.PHOTOMETRIC.RGB
            names = _gdal_band_names(page)
            geo = read_geo(page, width, height)
            array = series.asarray()
    except ImageRejected:
        raise
    except Exception as exc:  # tifffile raises many types on malformed files
        logger.info("TIFF rejected: %s: %s", type(exc).__name__, exc)
        raise ImageRejected("The TIFF is corrupt, truncated or uses an unsupported codec.") from exc
    return _array_to_rgb(_to_hwc(array, axes), photometric_rgb, names), geo


def _tiff_geometry(shape: tuple[int, ...], axes: str) -> tuple[int, int, int, str]:
    """Height, width, band count and the axes string, from a tifffile series."""
    if "Y" not in axes or "X" not in axes:
        raise ImageRejected("The TIFF has no image plane.")
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    bands = 1
    for size, axis in zip(shape, axes, strict=True):
        if axis not in "YX":
            bands *= size
    return height, width, bands, axes


def _to_hwc(array: np.ndarray, axes: str) -> np.ndarray:
    """Move Y, X first and fold every other axis into bands: (H, W, C)."""
    order = [axes.index("Y"), axes.index("X")] + [i for i, a in enumerate(axes) if a not in "YX"]
    array = np.transpose(array, order)
    return array.reshape(array.shape[0], array.shape[1], -1)


def _gdal_band_names(page: tifffile.TiffPage) -> list[str]:
    tag = page.tags.get(42112)  # GDAL_METADATA (tifffile's name is not "GDALMetadata")
    if tag is None or not isinstance(tag.value, str):
        return []
    found = re.findall(
        r'<Item name="DESCRIPTION" sample="(\d+)"[^>]*>([^<]*)</Item>', tag.value, re.IGNORECASE
    )
    names: dict[int, str] = {int(sample): name.strip().lower() for sample, name in found}
    return [names.get(i, "") for i in range(max(names) + 1)] if names else []


def choose_bands(bands: int, photometric_rgb: bool, names: list[str] | None = None) -> list[int]:
    """Indices of the bands shown as red, green, blue."""
    named = {_BAND_NAMES[n]: i for i, n in enumerate(names or []) if n in _BAND_NAMES}
    if len(named) == 3 and max(named.values()) < bands:
        return [named[0], named[1], named[2]]
    if bands < 3:
        return [0, 0, 0]
    if bands <= 4 or photometric_rgb:
        return [0, 1, 2]
    return list(MULTISPECTRAL_RGB)


def _array_to_rgb(
    array: np.ndarray, photometric_rgb: bool, names: list[str] | None = None
) -> Image.Image:
    rgb = array[..., choose_bands(array.shape[-1], photometric_rgb, names)]
    plain_rgb = array.dtype == np.uint8 and array.shape[-1] in (3, 4) and photometric_rgb
    if plain_rgb or (array.dtype == np.uint8 and array.shape[-1] < 3):
        return Image.fromarray(np.ascontiguousarray(rgb))
    return Image.fromarray(stretch(rgb))


def stretch(array: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Per-band percentile stretch of (H, W, C) to uint8; constant or empty bands become 0."""
    out = np.zeros(array.shape, dtype=np.uint8)
    step = max(1, int(np.ceil(array.shape[0] * array.shape[1] / _STRETCH_SAMPLES)))
    for band in range(array.shape[-1]):
        values = np.asarray(array[..., band], dtype=np.float32)
        sample = values.reshape(-1)[::step]
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            continue
        lo, hi = np.percentile(sample, [low, high])
        if hi <= lo:
            continue
        scaled = (np.nan_to_num(values, nan=lo) - lo) * (255.0 / (hi - lo))
        out[..., band] = np.clip(scaled, 0, 255).astype(np.uint8)
    return out
