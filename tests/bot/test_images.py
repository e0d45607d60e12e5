"""Safe decoding of uploads: formats, limits, TIFF/GeoTIFF, 16-bit and multispectral data."""

from __future__ import annotations

import io
from typing import TypedDict

import numpy as np
import pytest
import tifffile
from PIL import Image

from bot.images import ImageRejected, choose_bands, decode_image, stretch
from tests.bot.conftest import SAMPLES, jpeg


class Limits(TypedDict):
    """The size limits ``decode_image`` takes as keywords."""

    max_bytes: int
    max_pixels: int


LIMITS: Limits = {"max_bytes": 20 * 1024 * 1024, "max_pixels": 40_000_000}


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def tiff(array: np.ndarray, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_common_formats_decode_to_rgb(fmt: str) -> None:
    image = Image.open(io.BytesIO(jpeg())).convert("RGB")
    decoded = decode_image(encode(image, fmt), **LIMITS)
    assert decoded.image.mode == "RGB" and decoded.image.size == (224, 224)
    assert decoded.source_format == fmt and len(decoded.sha256) == 64


def test_same_upload_same_sha() -> None:
    assert decode_image(jpeg(), **LIMITS).sha256 == decode_image(jpeg(), **LIMITS).sha256


def test_real_tiff_samples() -> None:
    for path in SAMPLES.glob("*.tif"):
        decoded = decode_image(path.read_bytes(), **LIMITS)
        assert decoded.image.mode == "RGB" and decoded.source_format == "TIFF"


def test_16bit_multispectral_geotiff_is_stretched_per_band() -> None:
    rng = np.random.default_rng(0)
    bands = (rng.random((6, 64, 80)) * np.arange(1, 7)[:, None, None] * 5000).astype(np.uint16)
    decoded = decode_image(tiff(bands, photometric="minisblack"), **LIMITS)
    pixels = np.asarray(decoded.image)
    assert decoded.image.size == (80, 64)
    assert pixels.min() == 0 and pixels.max() == 255  # each band spans the full range


def test_gdal_band_names_choose_rgb() -> None:
    assert choose_bands(4, False, ["blue", "green", "red", "nir"]) == [2, 1, 0]
    assert choose_bands(13, False) == [3, 2, 1]  # Sentinel-2 / Landsat layout
    assert choose_bands(1, False) == [0, 0, 0]


def test_stretch_handles_constant_and_nan_bands() -> None:
    data = np.full((4, 4, 2), 7.0, dtype=np.float32)
    data[0, 0, 1] = np.nan
    assert not stretch(data).any()


def test_16bit_png_grayscale() -> None:
    array = (np.arange(64 * 64).reshape(64, 64) * 10).astype(np.uint16)
    decoded = decode_image(encode(Image.fromarray(array), "PNG"), **LIMITS)
    assert decoded.image.mode == "RGB"


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"%PDF-1.4 not an image", "Unsupported"),
    (jpeg()[:600], "corrupt or truncated"),
    (b"II*\x00" + b"\x00" * 64, "TIFF is corrupt"),
])
def test_bad_uploads_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected, match=reason):
        decode_image(data, **LIMITS)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = encode(Image.new("L", (10_000, 10_000)), "PNG")  # ~100 KB, 100 MP
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageRejected, match="too large"):
        decode_image(bomb, **LIMITS)


def test_huge_tiff_dimensions_are_refused_before_reading() -> None:
    data = tiff(np.zeros((8000, 8000), dtype=np.uint8), compression="zlib")
    with pytest.raises(ImageRejected, match="too large"):
        decode_image(data, max_bytes=LIMITS["max_bytes"], max_pixels=10_000_000)


def test_too_many_bytes() -> None:
    with pytest.raises(ImageRejected, match="too large"):
        decode_image(b"\xff" * 2048, max_bytes=1024, max_pixels=100)
