"""Telling a picture's copies (re-encoded, resized) from other pictures, by pixels."""

from __future__ import annotations

import io

from PIL import Image

from bot.service.copies import fingerprint, same_picture
from tests.bot.conftest import GALLERY, jpeg


def reencoded(data: bytes, quality: int, scale: float) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_a_copy_is_the_same_picture_and_others_are_not() -> None:
    marks = [fingerprint(jpeg(name)) for name, _ in GALLERY]
    for (name, _), mark in zip(GALLERY, marks, strict=True):
        for quality, scale in ((60, 0.75), (90, 1.5)):
            assert same_picture(fingerprint(reencoded(jpeg(name), quality, scale)), mark)
        assert sum(same_picture(mark, other) for other in marks) == 1, name


def test_unreadable_or_flat_files_are_nobodys_copy() -> None:
    flat = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 60)).save(flat, "PNG")
    assert fingerprint(b"not an image") is None and fingerprint(flat.getvalue()) is None
    assert not same_picture(None, None)
