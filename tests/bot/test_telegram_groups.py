"""Groups over the real python-telegram-bot and the Bot API stand-in: addressing and memory."""

from __future__ import annotations

from engine.prompt import image_turn
from engine.types import ImagePart, TextPart
from tests.bot.bot_api_stub import BOT_USER, BotApiStub
from tests.bot.conftest import BotRunner, image_shas, jpeg
from tests.bot.memory_store import MemoryState
from tests.fake_engine import FakeEngine

GROUP, OTHER_GROUP, FORUM = -1001, -1002, -1003
ALICE, BOB = 71, 72
BOT = "@" + BOT_USER["username"]


def answers(api: BotApiStub, chat: int) -> list[str]:
    """The bot's finished texts in a chat (growing replies end without the "…")."""
    return [t for t in api.texts(chat) if not t.endswith("…")]


async def test_plain_message_ignored_mention_answered(
    api: BotApiStub, bot: BotRunner, engine: FakeEngine
) -> None:
    await api.push_group_text(GROUP, ALICE, "lunch anyone?")
    asked = await api.push_group_text(GROUP, BOB, f"{BOT} is there a river?")
    await api.wait_for(lambda: any(t.startswith("I see 0 image") for t in answers(api, GROUP)))
    assert engine.generate_calls == 1
    assert engine.last_dialogue[-1].parts == (TextPart("is there a river?"),)
    reply = api.sent("sendMessage", GROUP)[0]
    assert reply.params["reply_parameters"]["message_id"] == asked["message"]["message_id"]


async def test_reply_to_the_bot_continues_the_group_conversation(
    api: BotApiStub, bot: BotRunner, engine: FakeEngine
) -> None:
    await api.push_group_photo(GROUP, ALICE, jpeg(), caption=f"{BOT} what is this?")
    await api.wait_for(lambda: any(t.startswith("I see 1 image") for t in answers(api, GROUP)))
    answer = api.bot_message(GROUP, api.sent("sendMessage", GROUP)[0].params["_message_id"])
    await api.push_group_text(GROUP, BOB, "and the roads?", reply_to_message=answer)
    await api.wait_for(lambda: engine.generate_calls == 2)
    # Bob's follow-up sees Alice's image: the memory is the group's, not the person's.
    assert any(isinstance(p, ImagePart) for p in engine.last_dialogue[0].parts)
    assert engine.last_dialogue[-1].parts == (TextPart("and the roads?"),)


async def test_commands_for_us_answered_for_others_ignored(
    api: BotApiStub, bot: BotRunner
) -> None:
    await api.push_group_text(GROUP, ALICE, "/help@some_other_bot")
    await api.push_group_text(GROUP, ALICE, f"/help{BOT}")
    await api.push_group_text(GROUP, ALICE, f"/search{BOT} airport")
    await api.wait_for(lambda: bool(api.sent("sendMediaGroup", GROUP)))
    help_texts = [t for t in api.texts(GROUP) if "In this group I answer" in t]
    assert len(help_texts) == 1 and f"/search{BOT}" in help_texts[0]


async def test_two_groups_are_kept_apart(
    api: BotApiStub, bot: BotRunner, engine: FakeEngine, state: MemoryState
) -> None:
    await api.push_group_photo(GROUP, ALICE, jpeg(), caption=BOT)
    await api.wait_for(lambda: engine.generate_calls == 1)
    await api.push_group_text(OTHER_GROUP, ALICE, f"{BOT} what did I send?")
    await api.wait_for(lambda: engine.generate_calls == 2)
    assert not any(isinstance(p, ImagePart) for t in engine.last_dialogue for p in t.parts)
    await api.push_group_text(OTHER_GROUP, ALICE, "/history")
    await api.wait_for(lambda: any(t.startswith("You: what did I send?")
                                   for t in api.texts(OTHER_GROUP)))
    assert ("telegram", f"chat:{GROUP}") in state.users
    assert ("telegram", f"chat:{OTHER_GROUP}") in state.users
    assert ("telegram", str(ALICE)) not in state.users  # she never wrote to the bot privately


async def test_forum_topics_have_their_own_memory_and_replies(
    api: BotApiStub, bot: BotRunner, engine: FakeEngine, state: MemoryState
) -> None:
    await api.push_group_photo(FORUM, ALICE, jpeg(), caption=BOT, topic=5)
    await api.wait_for(lambda: engine.generate_calls == 1)
    await api.push_group_text(FORUM, ALICE, f"{BOT} and here?", topic=7)
    await api.wait_for(lambda: engine.generate_calls == 2
                       and len(answers(api, FORUM)) == 2)
    assert not any(isinstance(p, ImagePart) for t in engine.last_dialogue for p in t.parts)
    threads = [c.params.get("message_thread_id") for c in api.sent("sendMessage", FORUM)]
    assert set(threads) == {5, 7}
    assert ("telegram", f"chat:{FORUM}:topic:5") in state.users


async def test_album_with_one_mentioning_caption_is_one_turn(
    api: BotApiStub, bot: BotRunner, engine: FakeEngine
) -> None:
    for index, name in enumerate(("00001.jpg", "00010.jpg")):
        await api.push_group_photo(GROUP, ALICE, jpeg(name), media_group_id="a1",
                                   caption=f"{BOT} compare" if index == 1 else "")
    await api.wait_for(lambda: any(t.startswith("I see 2 image") for t in answers(api, GROUP)))
    turn = engine.last_dialogue[-1]
    assert len(image_shas(turn)) == 2 and turn == image_turn("compare", *image_shas(turn))


async def test_private_chat_keeps_the_users_own_key(
    api: BotApiStub, bot: BotRunner, state: MemoryState
) -> None:
    await api.push_text(ALICE, "hello")
    await api.wait_for(lambda: bool(answers(api, ALICE)))
    assert list(state.users) == [("telegram", str(ALICE))]


async def test_edited_plain_message_is_ignored(
    api: BotApiStub, bot: BotRunner, engine: FakeEngine
) -> None:
    edited = api.group_message(GROUP, ALICE, text="typo fixed", edit_date=1)
    await api.push("edited_message", edited)
    await api.push_group_text(GROUP, ALICE, f"{BOT} what is here?")
    await api.wait_for(lambda: engine.generate_calls >= 1 and bool(answers(api, GROUP)))
    assert engine.generate_calls == 1
    assert engine.last_dialogue[-1].parts == (TextPart("what is here?"),)
