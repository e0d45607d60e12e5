"""Small talk and questions an image cannot answer: a true fixed reply, no model, no search."""

from __future__ import annotations

import pytest

from bot.honesty import CAPABILITIES, honest_reply
from bot.service.conversation import ConversationService
from bot.service.user_ref import UserRef
from tests.bot.conftest import jpeg
from tests.fake_engine import FakeEngine

ALICE = UserRef("test", "alice")
CANNOT_TELL = ["is it going to rain tomorrow?", "What's the weather like there?",
               "where is this?", "which city is this?", "what is this river called?",
               "who owns the stadium?", "when was this taken?"]


@pytest.mark.parametrize("text", CANNOT_TELL)
def test_questions_the_pixels_cannot_answer_get_a_cannot_tell(text: str) -> None:
    reply = honest_reply(text)
    assert reply is not None and reply.startswith("I can't tell")


@pytest.mark.parametrize("text", ["hi", "Hello!", "thanks", "what can you do?"])
def test_small_talk_gets_what_the_bot_can_do(text: str) -> None:
    assert honest_reply(text) == CAPABILITIES


@pytest.mark.parametrize("text", ["is there a river?", "how many tennis courts are there?",
                                  "show me airports near the sea", "what kind of place is this?",
                                  "are there any planes parked near the terminal?"])
def test_questions_about_the_image_go_to_the_model(text: str) -> None:
    assert honest_reply(text) is None


async def test_service_answers_without_model_or_search_and_keeps_the_exchange(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "", [jpeg()])
    calls = engine.generate_calls
    reply = await service.ask(ALICE, "is it going to rain tomorrow?")
    assert reply.text.startswith("I can't tell") and not reply.hits
    assert engine.generate_calls == calls, "the model is not asked"
    history = (await service.history(ALICE)).splitlines()
    assert history[-2:] == ["You: is it going to rain tomorrow?", f"CapRet: {reply.text}"]


async def test_a_photo_with_such_a_caption_is_still_described(
    service: ConversationService, engine: FakeEngine
) -> None:
    reply = await service.ask(ALICE, "where is this?", [jpeg()])
    assert reply.text.startswith("I see 1 image"), "an image turn always reaches the model"
