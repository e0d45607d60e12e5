"""Every failure a user can cause gets a short reply and loses nothing stored."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import tifffile
from PIL import Image

from bot.service.conversation import ConversationService
from bot.telegram.flow import ChatOrderedProcessor
from engine.types import TextPart
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import BotRunner, jpeg, with_bot
from tests.bot.memory_store import MemoryStore
from tests.fake_engine import FakeEngine

USER = 61


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def test_every_bad_input_gets_a_clear_reply(
    api: BotApiStub, bot: BotRunner, store: MemoryStore
) -> None:
    await api.push_text(USER, "what do you see?")
    await api.wait_for(lambda: len(api.texts(USER)) == 1 and "…" not in api.texts(USER)[0])
    big_tiff = io.BytesIO()
    tifffile.imwrite(big_tiff, np.zeros((4000, 2700), dtype=np.uint16))  # ~21.6 MB
    cases = [
        (api.push_photo(USER, jpeg()[:700]), "corrupt or truncated"),
        (api.push_document(USER, png(Image.new("RGB", (300, 300), "red"))[:200], "x.png",
                           "image/png"), "corrupt or truncated"),
        (api.push_document(USER, png(Image.new("L", (9000, 9000))), "bomb.png", "image/png"),
         "too large"),
        (api.push_document(USER, big_tiff.getvalue(), "big.tif", "image/tiff"), "too large"),
        (api.push_document(USER, b"%PDF-1.7 ...", "paper.pdf", "application/pdf"),
         "Unsupported file"),
        (api.push("message", api.user_message(USER, sticker={
            "file_id": "s", "file_unique_id": "s", "width": 1, "height": 1,
            "is_animated": False, "is_video": False, "type": "regular"})), "text and images"),
        (api.push_text(USER, "   "), "empty"),
        (api.push_text(USER, "x" * 5000), "too long (5,000 characters"),
    ]
    for push, expected in cases:
        count = len(api.texts(USER))
        await push

        def answered(before: int = count) -> bool:
            return len(api.texts(USER)) > before

        await api.wait_for(answered)
        assert expected in api.texts(USER)[-1], (expected, api.texts(USER)[-1])
    big = [fid for fid, data in api.files.items() if len(data) > 20 * 1024 * 1024]
    assert big and not [c for c in api.sent("getFile") if c.params["file_id"] in big]
    assert len(store.history(1)) == 2, "the stored conversation is intact"


async def test_unexpected_error_shows_an_id(
    api: BotApiStub, bot: BotRunner, engine: FakeEngine, store: MemoryStore
) -> None:
    await api.push_text(USER, "what do you see?")
    await api.wait_for(lambda: len(store.history(1)) == 2)
    engine.fail_next = RuntimeError("model crashed")
    await api.push_text(USER, "again")
    await api.wait_for(lambda: any("error id" in t for t in api.texts(USER)))
    assert len(store.history(1)) == 2


async def drained(api: BotApiStub, runner: BotRunner, chat_id: int) -> None:
    """Wait until the bot has fetched every pushed update and handled all of the chat's: a
    count checked after this cannot still grow.
    """
    app = runner.app
    assert app is not None and isinstance(app.update_processor, ChatOrderedProcessor)
    processor = app.update_processor

    def idle() -> bool:
        # The stub drops updates only once the bot asks past them (offset): all fetched.
        return not api.updates and app.update_queue.empty() and not processor.pending(chat_id)

    async def until_idle() -> None:
        # Polled: getUpdates is not a recorded call, so api.wait_for would not wake for it.
        async with asyncio.timeout(10):
            while not idle():
                await asyncio.sleep(0.02)

    await until_idle()
    await asyncio.sleep(0.2)  # a fetched update's task may not have started yet
    await until_idle()


async def test_flood_gets_one_polite_reply(
    api: BotApiStub, engine: FakeEngine, store: MemoryStore
) -> None:
    service = ConversationService(engine, store, with_bot(rate_limit_messages=3))
    runner = BotRunner(api)
    await runner.start(service, with_bot(rate_limit_messages=3, max_queued_per_chat=100))
    try:
        for index in range(12):
            await api.push_text(USER, f"message {index}")
        await api.wait_for(lambda: len(store.history(1)) == 6)
        await drained(api, runner, USER)
        polite = [t for t in api.texts(USER) if "faster than" in t]
        assert len(polite) == 1, f"12 messages, 3 allowed: one polite reply, not {polite}"
        assert len(store.history(1)) == 6, "only the 3 allowed messages were answered"
    finally:
        await runner.stop()


async def test_queue_bound_per_chat(api: BotApiStub, store: MemoryStore) -> None:
    service = ConversationService(FakeEngine(delay_s=0.5), store, with_bot())
    runner = BotRunner(api)
    await runner.start(service, with_bot(max_queued_per_chat=2))
    try:
        for index in range(6):
            await api.push_text(USER, f"message {index}")
        await api.wait_for(lambda: len(store.history(1)) >= 4, timeout=15)
        await drained(api, runner, USER)
        # One running, one waiting: the other four are dropped while the first is answered.
        asked = [turn.parts[0] for turn in store.history(1) if turn.role == "user"]
        assert [p.text for p in asked if isinstance(p, TextPart)] == ["message 0", "message 1"]
        busy = [t for t in api.texts(USER) if "still working" in t]
        assert len(busy) == 1, f"one notice per burst, not {busy}"
    finally:
        await runner.stop()


async def test_allow_list(api: BotApiStub, service: ConversationService) -> None:
    runner = BotRunner(api)
    await runner.start(service, with_bot(allowed_user_ids=(7,)))
    try:
        await api.push_text(USER, "what do you see?")
        await api.push_text(7, "what do you see?")
        await api.wait_for(lambda: api.texts(USER) == ["Sorry, this bot is private."]
                           and any(t.startswith("I see") for t in api.texts(7)))
    finally:
        await runner.stop()
