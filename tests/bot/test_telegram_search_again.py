"""Asking again finds again: a new search ranks the whole visible gallery, only /more goes on
(issue 29). The real python-telegram-bot against the Bot API stand-in, on a real store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.errors import UserFacingError
from bot.service.conversation import ConversationService
from bot.service.store_adapter import StoreAdapter
from bot.service.user_ref import UserRef
from store import Store
from tests.bot.bot_api_stub import BotApiStub, Call
from tests.bot.conftest import BotRunner, jpeg, with_bot
from tests.bot.test_service_store import png_sha
from tests.fake_engine import FakeEngine, text_vector

USER = 43


@pytest.fixture
async def real_bot(api: BotApiStub, svc: ConversationService) -> AsyncIterator[BotRunner]:
    runner = BotRunner(api)
    await runner.start(svc)
    yield runner
    await runner.stop()


def albums(api: BotApiStub) -> list[Call]:
    return api.sent("sendMediaGroup", USER)


def album_files(call: Call) -> list[bytes]:
    return list(call.files.values())


async def search(api: BotApiStub, words: str) -> Call:
    """Send ``/search <words>``; the album that answers it."""
    count = len(albums(api))
    await api.push_text(USER, f"/search {words}")
    await api.wait_for(lambda: len(albums(api)) > count)
    return albums(api)[-1]


def words_finding(store: Store, engine: FakeEngine, sha: str) -> str:
    """Words whose query ranks image ``sha`` first among everything the user may see (with
    the fake engine a text's query is a fixed random direction: we pick one that fits).
    """
    uid = store.repo.get_or_create_user("telegram", str(USER)).id
    for n in range(500):
        words = f"fields seen from above {n}"
        query = text_vector(words, engine.search_dim)
        if store.gallery.search(query, 1, engine.search_id, user_id=uid)[0].sha256 == sha:
            return words
    raise AssertionError("no words find the upload")


async def test_search_mine_finds_the_upload_a_search_just_showed(
    api: BotApiStub, real_bot: BotRunner, real_store: Store, engine: FakeEngine
) -> None:
    await api.push_photo(USER, jpeg("00200.jpg"))
    await api.wait_for(lambda: bool(api.sent("editMessageReplyMarkup", USER)))  # stored
    words = words_finding(real_store, engine, png_sha(jpeg("00200.jpg")))
    found = await search(api, words)
    assert "yours, sent " in found.params["media"][0]["caption"]
    await api.push_text(USER, f"/search mine {words}")
    await api.wait_for(lambda: bool(api.sent("sendPhoto", USER)))
    mine = api.sent("sendPhoto", USER)[0]
    assert "yours, sent " in mine.params["caption"]
    assert next(iter(mine.files.values())) == album_files(found)[0]
    assert "Here is 1 of your images." in api.texts(USER)
    assert not any("found no matching" in t for t in api.texts(USER))


async def test_the_same_search_twice_shows_the_same_best_images_and_more_goes_on(
    api: BotApiStub, real_bot: BotRunner
) -> None:
    first = await search(api, "harbour with boats")
    again = await search(api, "harbour with boats")
    assert album_files(again) == album_files(first) and len(album_files(first)) == 4
    await api.push_text(USER, "/more")
    await api.wait_for(lambda: len(albums(api)) == 3)
    more = album_files(albums(api)[-1])
    assert len(more) == 4 and not set(more) & set(album_files(first))


async def test_more_past_the_depth_says_so_not_that_nothing_is_left(
    real_store: Store, engine: FakeEngine
) -> None:
    adapter = StoreAdapter(real_store, engine.search_id, engine.score_scale)
    svc = ConversationService(engine, adapter, with_bot(max_search_depth=8))
    user = UserRef("test", "deep")
    shown = [h.sha256 for h in (await svc.search(user, "harbour")).hits]
    shown += [h.sha256 for h in (await svc.more(user)).hits]
    assert len(set(shown)) == 8  # 12 public images: 4 more exist
    with pytest.raises(UserFacingError, match="shown its 8 best images"):
        await svc.more(user)
    again = await svc.search(user, "harbour")
    assert [h.sha256 for h in again.hits] == shown[:4], "asked again: the best again"
