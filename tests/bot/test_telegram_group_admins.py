"""Who may delete or export a group's memory: the real python-telegram-bot against the Bot API
stand-in (which answers getChatMember), on a real store whose rows are counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from bot.service.conversation import ConversationService
from bot.telegram.confirm import EXPIRED, NOT_YOURS
from store import Store
from tests.bot.bot_api_stub import BOT_USER, BotApiStub, Call
from tests.bot.conftest import BotRunner, jpeg, with_bot

GROUP, OTHER_GROUP, FORUM = -1001, -1002, -1003
OWNER, ADMIN, MEMBER = 81, 82, 83
BOT = "@" + BOT_USER["username"]
ROWS = {
    "messages": "SELECT count(*) FROM messages m JOIN conversations c "
                "ON m.conversation_id = c.id WHERE c.user_id = :uid",
    "uploads": "SELECT count(*) FROM image_sources WHERE user_id = :uid",
    "gallery": "SELECT count(*) FROM gallery_items WHERE owner_user_id = :uid",
}


def rows(store: Store, key: str) -> dict[str, int]:
    """What the store keeps for one conversation owner (a group, a topic, a person)."""
    with store.db.read() as s:
        uid = s.scalar(text("SELECT id FROM users WHERE platform_id = :key"), {"key": key})
        if uid is None:
            return dict.fromkeys(ROWS, 0)
        return {name: int(s.scalar(text(sql), {"uid": uid}) or 0) for name, sql in ROWS.items()}


@pytest.fixture
async def group_bot(api: BotApiStub, svc: ConversationService) -> AsyncIterator[BotRunner]:
    """The bot on a real store, in groups where OWNER created them and ADMIN administers."""
    for chat in (GROUP, OTHER_GROUP, FORUM):
        api.statuses[(chat, OWNER)] = "creator"
        api.statuses[(chat, ADMIN)] = "administrator"
    runner = BotRunner(api)
    await runner.start(svc)
    yield runner
    await runner.stop()


async def seed(api: BotApiStub, chat: int, topic: int | None = None) -> None:
    """A photo with a question, answered: the chat (or topic) now has memory and an upload."""
    before = len(api.sent("editMessageReplyMarkup", chat))
    await api.push_group_photo(chat, MEMBER, jpeg(), caption=f"{BOT} what is this?", topic=topic)
    # The rating buttons come once the exchange is stored and the photo indexed.
    await api.wait_for(lambda: len(api.sent("editMessageReplyMarkup", chat)) > before)


async def ask_forget(api: BotApiStub, chat: int, user: int, topic: int | None = None) -> Call:
    """``user`` sends /forget; the bot's question with its buttons."""
    await api.push_group_text(chat, user, f"/forget{BOT}", topic=topic)
    await api.wait_for(lambda: any("reply_markup" in c.params
                                   for c in api.sent("sendMessage", chat)))
    return next(c for c in api.sent("sendMessage", chat) if "reply_markup" in c.params)


async def last_text(api: BotApiStub, chat: int, count: int) -> str:
    """Wait for the chat's ``count``-th text; return it."""
    await api.wait_for(lambda: len(api.texts(chat)) >= count)
    return api.texts(chat)[count - 1]


async def test_a_member_may_not_forget_or_export_and_nothing_goes(
    api: BotApiStub, group_bot: BotRunner, real_store: Store
) -> None:
    await seed(api, GROUP)
    kept = rows(real_store, f"chat:{GROUP}")
    assert kept == {"messages": 2, "uploads": 1, "gallery": 1}
    shown = len(api.texts(GROUP))
    await api.push_group_text(GROUP, MEMBER, f"/forget{BOT}")
    refusal = await last_text(api, GROUP, shown + 1)
    await api.push_group_text(GROUP, MEMBER, f"/export{BOT}")
    assert refusal == "Only this group's administrators can delete its memory."
    assert await last_text(api, GROUP, shown + 2) == (
        "Only this group's administrators can export its memory.")
    assert not any("reply_markup" in c.params for c in api.sent("sendMessage", GROUP))
    assert not api.sent("sendDocument", GROUP)
    assert rows(real_store, f"chat:{GROUP}") == kept


async def test_only_the_askers_tap_counts_and_deletes_only_that_group(
    api: BotApiStub, group_bot: BotRunner, real_store: Store
) -> None:
    for chat in (GROUP, OTHER_GROUP):
        await seed(api, chat)
    await api.push_text(MEMBER, "hello")  # the member's own private chat
    await api.wait_for(lambda: bool(api.texts(MEMBER)))
    others = {key: rows(real_store, key) for key in (f"chat:{OTHER_GROUP}", str(MEMBER))}
    question = await ask_forget(api, GROUP, ADMIN)
    for tapper in (MEMBER, OWNER):  # another member, even the group's creator
        await api.press(tapper, question, "Yes")
    await api.wait_for(lambda: len(api.sent("answerCallbackQuery")) == 2)
    answers = [c.params for c in api.sent("answerCallbackQuery")]
    assert all(a["text"] == NOT_YOURS and a["show_alert"] for a in answers)
    assert rows(real_store, f"chat:{GROUP}")["messages"] == 2

    await api.press(ADMIN, question, "Yes")
    await api.wait_for(lambda: any("deleted everything" in t for t in api.texts(GROUP)))
    assert rows(real_store, f"chat:{GROUP}") == {"messages": 0, "uploads": 0, "gallery": 0}
    assert {key: rows(real_store, key) for key in others} == others
    assert others[f"chat:{OTHER_GROUP}"]["uploads"] == 1


async def test_the_creator_exports_and_a_forum_topic_is_an_admins_too(
    api: BotApiStub, group_bot: BotRunner, real_store: Store
) -> None:
    await seed(api, GROUP)
    await api.push_group_text(GROUP, OWNER, f"/export{BOT}")
    await api.wait_for(lambda: bool(api.sent("sendDocument", GROUP)))
    await seed(api, FORUM, topic=5)
    await seed(api, FORUM, topic=7)
    question = await ask_forget(api, FORUM, OWNER, topic=5)
    assert question.params["message_thread_id"] == 5
    await api.press(OWNER, question, "Yes")
    await api.wait_for(lambda: any("deleted everything" in t for t in api.texts(FORUM)))
    assert rows(real_store, f"chat:{FORUM}:topic:5")["messages"] == 0
    assert rows(real_store, f"chat:{FORUM}:topic:7")["messages"] == 2
    assert rows(real_store, f"chat:{GROUP}") == {"messages": 2, "uploads": 1, "gallery": 1}


async def test_a_failed_membership_check_deletes_nothing(
    api: BotApiStub, svc: ConversationService, real_store: Store
) -> None:
    api.statuses[(GROUP, ADMIN)] = "administrator"
    runner = BotRunner(api)
    await runner.start(svc, with_bot(group_admin_cache_s=0.0))  # every check asks Telegram
    try:
        await seed(api, GROUP)
        question = await ask_forget(api, GROUP, ADMIN)
        api.members_unknown.add(GROUP)
        shown = len(api.texts(GROUP))
        await api.press(ADMIN, question, "Yes")
        tapped = await last_text(api, GROUP, shown + 1)
        await api.push_group_text(GROUP, ADMIN, f"/forget{BOT}")
        asked = await last_text(api, GROUP, shown + 2)
    finally:
        await runner.stop()
    for reply in (tapped, asked):
        assert reply.startswith("I could not check whether you are an administrator")
        assert "Chat not found" in reply and "did nothing" in reply
    assert len([c for c in api.sent("sendMessage", GROUP) if "reply_markup" in c.params]) == 1
    assert rows(real_store, f"chat:{GROUP}")["messages"] == 2


async def test_the_confirmation_expires(
    api: BotApiStub, svc: ConversationService, real_store: Store
) -> None:
    api.statuses[(GROUP, ADMIN)] = "administrator"
    runner = BotRunner(api)
    await runner.start(svc, with_bot(forget_confirm_s=0.0))  # stale once the clock moves
    try:
        await seed(api, GROUP)
        question = await ask_forget(api, GROUP, ADMIN)
        await api.press(ADMIN, question, "Yes")
        await api.wait_for(lambda: EXPIRED in api.texts(GROUP))
    finally:
        await runner.stop()
    assert rows(real_store, f"chat:{GROUP}")["messages"] == 2


async def test_an_anonymous_administrators_request_is_confirmed_by_an_administrator(
    api: BotApiStub, group_bot: BotRunner, real_store: Store
) -> None:
    await seed(api, GROUP)
    # Sent "as the group" (only administrators can), from Telegram's GroupAnonymousBot.
    await api.push_group_text(GROUP, 1087968824, f"/forget{BOT}", sender_chat=api.chats[GROUP])
    await api.wait_for(lambda: any("reply_markup" in c.params
                                   for c in api.sent("sendMessage", GROUP)))
    question = next(c for c in api.sent("sendMessage", GROUP) if "reply_markup" in c.params)
    shown = len(api.texts(GROUP))
    await api.press(MEMBER, question, "Yes")
    assert await last_text(api, GROUP, shown + 1) == (
        "Only this group's administrators can delete its memory.")
    assert rows(real_store, f"chat:{GROUP}")["messages"] == 2
    await api.press(ADMIN, question, "Yes")
    await api.wait_for(lambda: any("deleted everything" in t for t in api.texts(GROUP)))
    assert rows(real_store, f"chat:{GROUP}")["messages"] == 0
