"""The conversation service alone, with the fake engine and the in-memory store."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from bot.errors import UserFacingError
from bot.service.conversation import ConversationService
from bot.service.user_ref import UserRef
from engine.prompt import image_turn
from engine.tokens import caption_prompt
from engine.types import GenerationOptions, GenerationResult, ImagePart, TextPart, Turn
from tests.bot.conftest import TEST_BOT, jpeg
from tests.bot.memory_store import MemoryState, MemoryStore
from tests.fake_engine import FakeEngine

ALICE = UserRef("test", "alice")


async def test_photo_then_follow_up_keeps_images_in_context(
    service: ConversationService, engine: FakeEngine
) -> None:
    first = await service.ask(ALICE, "", [jpeg()])
    assert first.text.startswith("I see 1 image")
    await service.ask(ALICE, "is there a river?")
    dialogue = engine.last_dialogue
    assert [t.role for t in dialogue] == ["user", "assistant", "user"]
    shas = [p.sha256 for p in dialogue[0].parts if isinstance(p, ImagePart)]
    assert len(shas) == 1 and dialogue[0] == image_turn(caption_prompt(1), *shas)
    assert engine.embed_calls == 1, "an image is embedded once, then cached"


async def test_streaming_reports_growing_text(service: ConversationService) -> None:
    seen: list[str] = []

    async def progress(text: str) -> None:
        seen.append(text)

    reply = await service.ask(ALICE, "", [jpeg()], progress)
    assert len(seen) > 3 and all(a in b for a, b in zip(seen, seen[1:], strict=False))
    assert reply.text.startswith("I see 1 image")


async def test_ret_search_then_more_without_repeats(service: ConversationService) -> None:
    first = await service.ask(ALICE, "show me airports near the sea")
    assert len(first.hits) == TEST_BOT.search_results
    second = await service.more(ALICE)
    ids = [h.gallery_id for h in first.hits + second.hits]
    assert len(ids) == len(set(ids)) == 2 * TEST_BOT.search_results
    third = await service.more(ALICE)
    assert len(third.hits) == 12 - 8
    assert (await service.more(ALICE)).text == "No more results for that search."


async def test_a_photo_is_described_even_when_its_caption_asks_to_find(
    service: ConversationService, engine: FakeEngine
) -> None:
    reply = await service.ask(ALICE, "show me what is in this photo", [jpeg()])
    assert reply.text.startswith("I see 1 image") and not reply.hits
    text_only = await service.ask(ALICE, "now show me airports")
    assert len(text_only.hits) == TEST_BOT.search_results


async def test_a_search_after_a_photo_is_made_from_the_request_alone(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "", [jpeg()])
    calls = engine.generate_calls
    assert (await service.search(ALICE, "harbour")).hits
    assert (await service.ask(ALICE, "now show me airports")).hits
    assert engine.generate_calls == calls, "a request for images searches, it is not answered"
    assert engine.retrieved == [[Turn("user", (TextPart("harbour"),))],
                                [Turn("user", (TextPart("Show me airports"),))]]


async def test_forced_search_and_similar(service: ConversationService, engine: FakeEngine) -> None:
    reply = await service.search(ALICE, "harbour")
    assert reply.hits and reply.hits[0].score >= reply.hits[-1].score
    similar = await service.similar(UserRef("test", "carol"), jpeg("00020.jpg"))
    assert similar.hits[0].label == "bridge" and similar.hits[0].score > 0.99
    with pytest.raises(UserFacingError, match="Send an image first"):
        await service.similar(UserRef("test", "bob"))


async def test_similar_uses_last_conversation_image(service: ConversationService) -> None:
    await service.ask(ALICE, "", [jpeg("00010.jpg")])
    reply = await service.similar(ALICE)
    assert reply.hits[0].label == "airport"


async def test_bad_inputs_are_user_facing_and_store_nothing(
    service: ConversationService, store: MemoryStore
) -> None:
    await service.ask(ALICE, "what do you see?")
    for text, uploads in [("", []), ("x" * 5000, []), ("", [b"garbage"]), ("", [jpeg()[:500]])]:
        with pytest.raises(UserFacingError):
            await service.ask(ALICE, text, uploads)
    with pytest.raises(UserFacingError, match="no search"):
        await service.more(UserRef("test", "new"))
    assert len(store.history(store.user_id("test", "alice", None))) == 2


async def test_engine_failure_loses_nothing_stored(
    service: ConversationService, engine: FakeEngine, store: MemoryStore
) -> None:
    await service.ask(ALICE, "what do you see?")
    engine.fail_next = RuntimeError("boom")
    with pytest.raises(RuntimeError):
        await service.ask(ALICE, "again", (), None)
    engine.fail_next = RuntimeError("boom")

    async def progress(text: str) -> None:
        pass

    with pytest.raises(RuntimeError):
        await service.ask(ALICE, "again", (), progress)
    assert len(store.history(1)) == 2


async def test_reset_history_export_forget(service: ConversationService) -> None:
    await service.ask(ALICE, "what is this?", [jpeg()])
    history = await service.history(ALICE)
    assert history.startswith("You: what is this? [image]")
    archive = zipfile.ZipFile(io.BytesIO(await service.export(ALICE)))
    assert "data.json" in archive.namelist()
    assert any(name.startswith("images/") for name in archive.namelist())
    assert "New conversation" in await service.reset(ALICE)
    assert await service.history(ALICE) == "This conversation is empty."
    assert "deleted" in await service.forget(ALICE)
    about = await service.about()
    assert "Gallery: 12 images" in about and "fake-encoder" in about


async def test_turns_name_their_session_and_reset_or_forget_drop_it(
    service: ConversationService, engine: FakeEngine
) -> None:
    await service.ask(ALICE, "what is this?", [jpeg()])
    assert engine.last_options is not None and engine.last_options.session is not None
    session = engine.last_options.session
    await service.reset(ALICE)
    await service.ask(ALICE, "and now?")
    assert engine.last_options.session == session  # the same user keeps one key
    await service.forget(ALICE)
    assert engine.forgotten == [session, session]


async def test_state_survives_a_new_service(engine: FakeEngine, state: MemoryState) -> None:
    first = ConversationService(engine, MemoryStore(state), TEST_BOT)
    await first.ask(ALICE, "", [jpeg()])
    second = ConversationService(FakeEngine(), MemoryStore(state), TEST_BOT)
    await second.ask(ALICE, "and now?")
    assert isinstance(second.engine, FakeEngine) and second.engine.embed_calls == 0
    assert len(second.engine.last_dialogue) == 3


async def test_model_calls_are_bounded(store: MemoryStore) -> None:
    engine = FakeEngine(delay_s=0.05)
    service = ConversationService(engine, store, TEST_BOT)
    running = 0
    peak = 0
    original = engine.generate

    def counting(dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray],
                 options: GenerationOptions | None = None) -> GenerationResult:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return original(dialogue, image_embeddings, options)
        finally:
            running -= 1

    engine.generate = counting  # type: ignore[method-assign]
    await asyncio.gather(*(service.ask(UserRef("t", str(i)), "what do you see?")
                           for i in range(12)))
    assert peak <= TEST_BOT.max_concurrent_model_calls
