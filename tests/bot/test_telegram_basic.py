"""The real python-telegram-bot Application against the Bot API stand-in: the basics."""

from __future__ import annotations

import asyncio

from bot.telegram.render import GrowingReply
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import BotRunner, jpeg

USER = 11


async def test_start_and_help(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_text(USER, "/start")
    await api.push_text(USER, "/help")
    await api.wait_for(lambda: len(api.sent("sendMessage", USER)) >= 2)
    texts = api.texts(USER)
    assert texts[0].startswith("Hello!")
    assert "/search" in texts[1] and "more like this" in texts[1]
    assert api.sent("getMe")


async def test_photo_is_described_with_typing_and_growing_reply(
    api: BotApiStub, bot: BotRunner
) -> None:
    await api.push_photo(USER, jpeg())
    await api.wait_for(lambda: any(t.startswith("I see 1 image") and "…" not in t
                                   for t in api.texts(USER)))
    assert api.sent("sendChatAction", USER)[0].params["action"] == "typing"
    assert api.sent("getFile")


async def test_growing_reply_edits_one_message(api: BotApiStub, bot: BotRunner) -> None:
    assert bot.app is not None
    growing = GrowingReply(bot.app.bot, USER, interval_s=0.02)
    for words in range(1, 6):
        await asyncio.sleep(0.03)
        await growing.update(" ".join(["word"] * words))
    await growing.finish("the end")
    assert len(api.sent("sendMessage", USER)) == 1
    assert len(api.sent("editMessageText", USER)) >= 4
    assert api.texts(USER) == ["the end"]
