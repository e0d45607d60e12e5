"""Which questions search and which are answered, and about which images (the service with
the fake engine and the in-memory store; the answers themselves are engine/answers.py's).
"""

from __future__ import annotations

from bot.service.conversation import ConversationService
from bot.service.search import CANNOT_LEAVE_OUT
from bot.service.user_ref import UserRef
from engine.types import ImagePart, TextPart, Turn
from tests.bot.conftest import jpeg
from tests.fake_engine import FakeEngine

ALICE = UserRef("test", "alice")


async def test_more_detail_after_a_photo_is_answered_never_searched(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "", [jpeg()])
    reply = await service.ask(ALICE, "Describe it in more detail.")
    assert not reply.hits and not engine.retrieved
    intent, seen = engine.answered[-1]
    assert intent.kind == "detail" and len(seen) == 1 and seen[0].image is not None


async def test_more_of_a_kind_like_this_searches_by_the_photo_and_the_words(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "", [jpeg()])
    calls = engine.generate_calls
    reply = await service.ask(ALICE, "show me more harbours like this")
    assert reply.hits and engine.generate_calls == calls
    assert engine.retrieved[-1] == [Turn("user", (TextPart("Show me harbours"),))]


async def test_like_this_but_different_searches_by_the_photo_and_the_difference(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "", [jpeg()])
    reply = await service.ask(ALICE, "find places like this one, but with more water")
    assert reply.hits and not reply.text.startswith(CANNOT_LEAVE_OUT)
    assert engine.retrieved[-1] == [Turn("user", (TextPart("Show me water"),))]


async def test_like_this_but_without_says_what_a_search_cannot_do(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "", [jpeg()])
    asked = len(engine.retrieved)
    reply = await service.ask(ALICE, "like this one but without the houses")
    assert reply.hits and reply.text.startswith(CANNOT_LEAVE_OUT)
    assert len(engine.retrieved) == asked  # the photo alone: "houses" is never searched for


async def test_questions_about_results_are_about_the_images_just_shown(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "", [jpeg()])
    own = [p.sha256 for t in engine.last_dialogue for p in t.parts if isinstance(p, ImagePart)]
    shown = (await service.ask(ALICE, "find a port with boats")).hits
    assert len(shown) >= 2
    await service.ask(ALICE, "describe the second one")
    intent, seen = engine.answered[-1]
    assert intent.results and intent.target == 1
    assert [s.key for s in seen] == [hit.sha256 for hit in shown]
    await service.ask(ALICE, "which of these is a port?")
    intent, seen = engine.answered[-1]
    assert intent.kind == "which" and [s.key for s in seen] == [h.sha256 for h in shown]
    await service.ask(ALICE, "is there a river?")
    intent, seen = engine.answered[-1]
    assert not intent.results and [s.key for s in seen] == own


async def test_a_comparison_sees_the_conversations_images_in_order(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "", [jpeg("00001.jpg")])
    await service.ask(ALICE, "", [jpeg("00002.jpg")])
    shown = [p.sha256 for t in engine.last_dialogue for p in t.parts if isinstance(p, ImagePart)]
    reply = await service.ask(ALICE, "what changed between the two?")
    intent, seen = engine.answered[-1]
    assert intent.kind == "compare" and not reply.hits
    assert [s.key for s in seen] == shown and len(set(shown)) == 2


async def test_a_question_with_no_image_yet_is_answered_not_searched(
    service: ConversationService, engine: FakeEngine
) -> None:
    reply = await service.ask(ALICE, "is there a river?")
    assert not reply.hits and not engine.retrieved


async def test_a_photo_asked_what_it_is_gets_the_description(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "What is this?", [jpeg()])
    last = engine.last_dialogue[-1]
    assert [p.text for p in last.parts if isinstance(p, TextPart)] == ["Describe this image."]
    assert not engine.answered, "described as a photo is, not answered as a question"


async def test_asking_for_more_after_a_search_continues_it(
    service: ConversationService, engine: FakeEngine
) -> None:
    first = (await service.ask(ALICE, "find a port with boats")).hits
    searched = len(engine.retrieved)
    second = await service.ask(ALICE, "any more?")
    assert second.hits and len(engine.retrieved) == searched, "the saved search, not a new one"
    assert not {h.gallery_id for h in first} & {h.gallery_id for h in second.hits}
    await service.ask(ALICE, "describe the first one")
    intent, seen = engine.answered[-1]
    assert intent.results and seen[0].key == second.hits[0].sha256


async def test_a_bare_phrase_in_a_new_chat_searches(
    service: ConversationService, engine: FakeEngine
) -> None:
    reply = await service.ask(ALICE, "churches beside a river")
    assert reply.hits
    assert engine.retrieved[-1] == [Turn("user", (TextPart("Show me churches beside a river"),))]
