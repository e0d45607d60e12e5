"""Searching over Telegram: text requests, /search, /more, "more like this", /similar."""

from __future__ import annotations

from tests.bot.bot_api_stub import BotApiStub, Call
from tests.bot.conftest import BotRunner, jpeg

USER = 41


def albums(api: BotApiStub) -> list[Call]:
    return api.sent("sendMediaGroup", USER)


def shown_captions(api: BotApiStub) -> list[str]:
    return [item["caption"] for call in albums(api) for item in call.params["media"]]


async def test_text_request_returns_an_album_with_scores(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_text(USER, "show me airports near the sea")
    await api.wait_for(lambda: len(albums(api)) == 1)
    media = albums(api)[0].params["media"]
    assert len(media) == 4 and len(albums(api)[0].files) == 4
    assert all(" — score " in item["caption"] for item in media)


async def test_search_then_more_gives_new_images(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_text(USER, "/search harbour with boats")
    await api.wait_for(lambda: len(albums(api)) == 1)
    await api.push_text(USER, "/more")
    await api.wait_for(lambda: len(albums(api)) == 2)
    captions = shown_captions(api)
    assert len(captions) == 8
    files = [data for call in albums(api) for data in call.files.values()]
    assert len(set(files)) == 8, "no image is shown twice"


async def test_more_like_this_as_reply_to_a_result(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_text(USER, "/search bridge")
    await api.wait_for(lambda: len(albums(api)) == 1)
    sent = albums(api)[0]
    target = api.user_message(USER, photo=api.photo_sizes(next(iter(sent.files.values()))))
    await api.push_text(USER, "more like this", reply_to_message=target)
    await api.wait_for(lambda: len(albums(api)) == 2)
    # A new search over the whole gallery: earlier results may come again (issue 29), but
    # not the result itself, which Telegram sends back as another file, nor after /more.
    await api.push_text(USER, "/more")
    await api.wait_for(lambda: len(albums(api)) == 3)
    example = next(iter(sent.files.values()))
    later = [list(call.files.values()) for call in albums(api)[1:]]
    assert [len(files) for files in later] == [4, 4]
    assert all(example not in files for files in later)


async def test_similar_command_on_own_photo(api: BotApiStub, bot: BotRunner) -> None:
    photo = api.user_message(USER, photo=api.photo_sizes(jpeg("00020.jpg")))
    await api.push_text(USER, "/similar", reply_to_message=photo)
    await api.wait_for(lambda: len(albums(api)) == 1)
    assert shown_captions(api)[0].startswith("bridge — score 1.00")


async def test_search_usage_and_more_without_search(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_text(USER, "/search")
    await api.push_text(USER, "/more")
    await api.wait_for(lambda: len(api.texts(USER)) == 2)
    assert "e.g. /search" in api.texts(USER)[0] and "no search" in api.texts(USER)[1]
