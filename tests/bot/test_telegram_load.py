"""Concurrency, ordering, restarts, long replies and the typing indicator over Telegram."""

from __future__ import annotations

import asyncio
import time

from bot.service.conversation import ConversationService
from bot.telegram.render import typing
from engine.types import TextPart
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import TEST_BOT, BotRunner, jpeg
from tests.bot.memory_store import MemoryState, MemoryStore
from tests.fake_engine import FakeEngine


def done(api: BotApiStub, chat: int, count: int) -> bool:
    texts = [t for t in api.texts(chat) if t.startswith("I see") and not t.endswith("…")]
    return len(texts) >= count


async def test_fifty_users_at_once_each_in_order(api: BotApiStub, store: MemoryStore) -> None:
    service = ConversationService(FakeEngine(delay_s=0.02), store, TEST_BOT)
    runner = BotRunner(api)
    await runner.start(service)
    try:
        started = time.monotonic()
        for turn in range(2):
            for user in range(100, 150):
                await api.push_text(user, f"question {turn}")
        await api.wait_for(lambda: all(done(api, u, 2) for u in range(100, 150)), timeout=30)
        assert time.monotonic() - started < 20
        for user in range(100, 150):
            uid = store.user_id("telegram", str(user), None)
            asked = [part.text for t in store.history(uid) if t.role == "user"
                     for part in t.parts[-1:] if isinstance(part, TextPart)]
            assert asked == ["question 0", "question 1"], "one chat's updates run in order"
    finally:
        await runner.stop()


async def test_restart_between_two_turns(api: BotApiStub, state: MemoryState) -> None:
    runner = BotRunner(api)
    await runner.start(ConversationService(FakeEngine(), MemoryStore(state), TEST_BOT))
    await api.push_photo(71, jpeg())
    await api.wait_for(lambda: done(api, 71, 1))
    await runner.stop()
    engine = FakeEngine()
    await runner.start(ConversationService(engine, MemoryStore(state), TEST_BOT))
    try:
        await api.push_text(71, "what about the roads?")
        await api.wait_for(lambda: done(api, 71, 2))
        assert len(engine.last_dialogue) == 3 and engine.embed_calls == 0
    finally:
        await runner.stop()


async def test_long_reply_splits_at_4096(api: BotApiStub, store: MemoryStore) -> None:
    runner = BotRunner(api)
    await runner.start(ConversationService(FakeEngine(reply_words=1500), store, TEST_BOT))
    try:
        await api.push_text(72, "tell me everything")
        await api.wait_for(lambda: api.texts(72)[-1:] != []
                           and api.texts(72)[-1].endswith("word1499"), timeout=20)
        texts = api.texts(72)
        assert len(texts) >= 3 and all(len(t) <= 4096 for t in texts)
    finally:
        await runner.stop()


async def test_typing_is_refreshed(api: BotApiStub, bot: BotRunner) -> None:
    assert bot.app is not None
    async with typing(bot.app.bot, 73, every_s=0.05):
        await api.wait_for(lambda: len(api.sent("sendChatAction", 73)) >= 3, timeout=2)
    count = len(api.sent("sendChatAction", 73))
    await asyncio.sleep(0.15)
    assert len(api.sent("sendChatAction", 73)) == count, "typing stops with the work"


async def test_no_typing_for_a_quick_reply(api: BotApiStub, bot: BotRunner) -> None:
    assert bot.app is not None
    async with typing(bot.app.bot, 74, after_s=0.3):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.35)
    assert api.sent("sendChatAction", 74) == []
