"""Private galleries over Telegram: the real python-telegram-bot against the Bot API stand-in,
on a real store. Two chats upload (an album, an image file); each one's searches bring its own
and public images, never the other's files, before and after a restart and a /forget.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from store import Store
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import BotRunner, jpeg
from tests.bot.real_store import open_filled, real_service
from tests.bot.test_service_store import png_sha
from tests.fake_engine import FakeEngine

ANN, BEN = 61, 62


def sent_files(api: BotApiStub, chat: int) -> list[bytes]:
    """Image files the bot sent to the chat, in the order sent (albums and single photos)."""
    return [data for call in api.calls if call.chat_id == chat
            and call.method in ("sendMediaGroup", "sendPhoto") for data in call.files.values()]


def captions(api: BotApiStub, chat: int) -> list[str]:
    albums = [item["caption"] for call in api.sent("sendMediaGroup", chat)
              for item in call.params["media"]]
    return albums + [str(c.params.get("caption")) for c in api.sent("sendPhoto", chat)]


def png_file(name: str) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg(name))).save(buffer, format="PNG")
    return buffer.getvalue()


async def page_through(api: BotApiStub, chat: int) -> None:
    """/search, then /more until the bot says there is nothing more."""
    def ends() -> int:
        return sum(t.startswith("No more results") for t in api.texts(chat))

    done = ends()
    albums = len(api.sent("sendMediaGroup", chat))
    await api.push_text(chat, "/search anything")
    # The search's own album first: a /more sent before it is stored continues the old one.
    await api.wait_for(lambda: len(api.sent("sendMediaGroup", chat)) > albums)
    while ends() == done:
        shown = len(api.texts(chat))
        await api.push_text(chat, "/more")
        await api.wait_for(lambda s=shown: len(api.texts(chat)) > s)  # type: ignore[misc]


async def start(api: BotApiStub, folder: Path) -> tuple[BotRunner, Store]:
    engine = FakeEngine()
    store = open_filled(folder, engine)
    runner = BotRunner(api)
    await runner.start(real_service(store, engine))
    return runner, store


async def test_two_chats_see_their_own_uploads_only(api: BotApiStub, tmp_path: Path) -> None:
    runner, store = await start(api, tmp_path)
    try:
        for name in ("00200.jpg", "00210.jpg"):
            await api.push_photo(ANN, jpeg(name), media_group_id="ann-album")
        await api.push_document(BEN, png_file("00220.jpg"), "scene.png", "image/png")
        await api.push_document(BEN, b"\x89PNG\r\n\x1a\n not really", "bad.png", "image/png")
        await api.wait_for(lambda: any(t.startswith("I see 2") for t in api.texts(ANN))
                           and any(t.startswith("I see 1") for t in api.texts(BEN))
                           and len(api.texts(BEN)) >= 2)
        await api.push_text(ANN, "/search mine fields")
        await api.wait_for(lambda: len(api.sent("sendMediaGroup", ANN)) == 1)
    finally:
        await runner.stop()
        store.close()
    ann_own = {store.blobs.path(png_sha(jpeg(n))).read_bytes() for n in ("00200.jpg", "00210.jpg")}
    assert set(sent_files(api, ANN)) == ann_own
    assert all("yours, sent " in c for c in captions(api, ANN))

    runner, store = await start(api, tmp_path)  # a restart: the same database and files
    try:
        await page_through(api, BEN)
        ben_files = set(sent_files(api, BEN))
        assert len(ben_files) == 13 and not ben_files & ann_own
        assert sum("yours, sent " in c for c in captions(api, BEN)) == 1
        assert store.gallery.stats().private == 3, "the corrupt file was not indexed"
        await forget(api, ANN)
        assert not any(store.blobs.exists(png_sha(jpeg(n))) for n in ("00200.jpg", "00210.jpg"))
        before = len(sent_files(api, BEN))
        await api.push_text(BEN, "/reset")
        await page_through(api, BEN)
        assert set(sent_files(api, BEN)[before:]) == ben_files
    finally:
        await runner.stop()
        store.close()


async def forget(api: BotApiStub, chat: int) -> None:
    await api.push_text(chat, "/forget")
    await api.wait_for(lambda: any("reply_markup" in c.params
                                   for c in api.sent("sendMessage", chat)))
    question = next(c for c in api.sent("sendMessage", chat) if "reply_markup" in c.params)
    await api.press(chat, question, "Yes")
    await api.wait_for(lambda: any("deleted everything" in t for t in api.texts(chat)))
