"""Images over Telegram: photos, captions, files of every accepted format, albums, memory."""

from __future__ import annotations

import io

import numpy as np
import tifffile
from PIL import Image

from engine.prompt import image_turn
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import SAMPLES, BotRunner, image_shas, jpeg
from tests.fake_engine import FakeEngine


def final_reply(api: BotApiStub, chat: int, start: str) -> bool:
    return any(t.startswith(start) and not t.endswith("…") for t in api.texts(chat))


async def test_caption_is_the_question(api: BotApiStub, bot: BotRunner, engine: FakeEngine) -> None:
    await api.push_photo(21, jpeg(), caption="how many planes?")
    await api.wait_for(lambda: final_reply(api, 21, "I see 1 image"))
    turn = engine.last_dialogue[-1]
    assert turn == image_turn("how many planes?", *image_shas(turn))


async def test_image_files_of_each_format(api: BotApiStub, bot: BotRunner) -> None:
    image = Image.open(io.BytesIO(jpeg())).convert("RGB")
    files = []
    for fmt, mime in [("PNG", "image/png"), ("WEBP", "image/webp")]:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        files.append((buffer.getvalue(), f"x.{fmt.lower()}", mime))
    geotiff = io.BytesIO()
    bands = (np.random.default_rng(1).random((5, 40, 40)) * 3000).astype(np.uint16)
    tifffile.imwrite(geotiff, bands, photometric="minisblack")
    files.append((geotiff.getvalue(), "scene.tif", "image/tiff"))
    files.append(((SAMPLES / "sydney_1.tif").read_bytes(), "sydney.tif", "image/tiff"))
    for index, (data, name, mime) in enumerate(files):
        await api.push_document(30 + index, data, name, mime)
    for index in range(len(files)):

        def replied(i: int = index) -> bool:
            return final_reply(api, 30 + i, "I see 1 image")

        await api.wait_for(replied)


async def test_album_is_one_turn(api: BotApiStub, bot: BotRunner, engine: FakeEngine) -> None:
    for name in ("00001.jpg", "00010.jpg", "00020.jpg"):
        await api.push_photo(22, jpeg(name), media_group_id="album1",
                             caption="compare them" if name == "00001.jpg" else None)
    await api.wait_for(lambda: final_reply(api, 22, "I see 3 image"))
    first = engine.last_dialogue[0]
    assert len(image_shas(first)) == 3 and first == image_turn("compare them", *image_shas(first))
    assert engine.generate_calls == 1


async def test_follow_up_remembers_the_image(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_photo(23, jpeg())
    await api.push_text(23, "is there a river?")
    await api.wait_for(lambda: len([t for t in api.texts(23) if t.startswith("I see 1")]) == 2
                       and not api.texts(23)[-1].endswith("…"))
