"""One Telegram conversation over the Bot API stand-in on a real store, across a restart."""

from __future__ import annotations

from pathlib import Path

from engine.prompt import image_turn
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import BotRunner, image_shas, jpeg
from tests.bot.real_store import open_filled, real_service
from tests.fake_engine import FakeEngine

USER = 77


def replies(api: BotApiStub) -> list[str]:
    return [t for t in api.texts(USER) if not t.endswith("…")]


async def test_photo_search_restart_more(api: BotApiStub, tmp_path: Path) -> None:
    engine = FakeEngine()
    store = open_filled(tmp_path, engine)
    runner = BotRunner(api)
    await runner.start(real_service(store, engine))
    try:
        await api.push_photo(USER, jpeg(), caption="what is here?")
        await api.wait_for(lambda: any(t.startswith("I see 1") for t in replies(api)))
        await api.push_text(USER, "/search harbour with boats")
        await api.wait_for(lambda: len(api.sent("sendMediaGroup", USER)) == 1)
    finally:
        await runner.stop()
        store.close()
    engine = FakeEngine()
    store = open_filled(tmp_path, engine)
    await runner.start(real_service(store, engine))
    try:
        await api.push_text(USER, "/more")
        await api.wait_for(lambda: len(api.sent("sendMediaGroup", USER)) == 2)
        await api.push_text(USER, "and the river?")
        await api.wait_for(lambda: len(engine.last_dialogue) == 5)
    finally:
        await runner.stop()
        store.close()
    files = [f for call in api.sent("sendMediaGroup", USER) for f in call.files.values()]
    assert len(files) == 8 and len(set(files)) == 8, "no repeats across the restart"
    first = engine.last_dialogue[0]
    assert first == image_turn("what is here?", *image_shas(first))
    assert engine.embed_calls == 0, "the upload's embedding came from the store's cache"
