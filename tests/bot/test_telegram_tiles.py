"""Large scenes over Telegram: described whole and by tiles, /tiles, /similar by each tile."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image

from bot.images import decode_image
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import GALLERY, RSICD, BotRunner, jpeg
from tests.fake_engine import FakeEngine

USER = 101
TILE = 340  # a 3 × 3 mosaic of 340 px tiles: 1,020 px, over 4 × the 224 px model input


def mosaic() -> tuple[bytes, list[str]]:
    """Nine gallery images side by side, as one PNG scene; their labels."""
    chosen = GALLERY[1:10]
    scene = Image.new("RGB", (3 * TILE, 3 * TILE))
    for index, (name, _) in enumerate(chosen):
        tile = Image.open(RSICD / name).convert("RGB").resize((TILE, TILE))
        scene.paste(tile, ((index % 3) * TILE, (index // 3) * TILE))
    buffer = io.BytesIO()
    scene.save(buffer, format="PNG")
    return buffer.getvalue(), [label for _, label in chosen]


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` × ``height`` pixels (and has none)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def finished(api: BotApiStub) -> list[str]:
    return [t for t in api.texts(USER) if not t.endswith("…")]


async def test_large_scene_whole_and_by_tiles(
    api: BotApiStub, bot: BotRunner, engine: FakeEngine
) -> None:
    data, labels = mosaic()
    await api.push_document(USER, data, "scene.png", "image/png")
    await api.wait_for(lambda: any("stand out" in t for t in finished(api)), timeout=20)
    reply = next(t for t in finished(api) if "stand out" in t)
    assert reply.startswith("I see 1 image")
    bullets = [line for line in reply.splitlines() if line.startswith("• ")]
    assert len(bullets) == 3
    names = {"top left", "top centre", "top right", "middle left", "centre", "middle right",
             "bottom left", "bottom centre", "bottom right"}
    assert all(line[2:].split(":")[0] in names for line in bullets)
    assert engine.generate_calls == 1 + 9
    assert engine.embed_calls == 1 + 9

    await api.push_text(USER, "/tiles")
    await api.wait_for(lambda: bool(api.sent("sendPhoto", USER)))
    sheet = Image.open(io.BytesIO(next(iter(api.sent("sendPhoto", USER)[0].files.values()))))
    assert sheet.width == 3 * 256

    await api.push_text(USER, "/similar")
    await api.wait_for(lambda: bool(api.sent("sendMediaGroup", USER)))
    found = [item["caption"].split(" — ")[0]
             for item in api.sent("sendMediaGroup", USER)[0].params["media"]]
    # Each tile is a gallery image: searching with every tile finds those, not the others.
    assert len(found) == 4 and set(found) <= set(labels)


async def test_small_photo_has_no_tiles(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_photo(USER, jpeg())
    await api.push_text(USER, "/tiles")
    await api.wait_for(lambda: any(t.startswith("No large scene here yet") for t in
                                   finished(api)))
    assert not any("stand out" in t for t in finished(api))
    assert "1,000 pixels" not in finished(api)[-1] and "896 pixels" in finished(api)[-1]


def test_huge_scene_is_refused_before_decoding() -> None:
    start = time.perf_counter()
    with pytest.raises(Exception, match=r"too large.*limit 40,000,000"):
        decode_image(png_header(20_000, 20_000), max_bytes=20 * 2**20, max_pixels=40_000_000)
    assert time.perf_counter() - start < 1.0  # the header is read, the pixels are not
