"""The conversation service on a real, fresh SQLite store (files and FAISS gallery) with the
fake engine: what it writes, what it reads back, and what survives a restart.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.errors import UserFacingError
from bot.gallery_builder import add_images
from bot.service.conversation import ConversationService
from bot.service.user_ref import UserRef
from engine.prompt import image_turn
from engine.tokens import caption_prompt
from engine.training.data import CaptionedImage
from engine.types import TextPart
from store import GalleryEntry, NewImage, Store
from store.tables import Conversation, Embedding, Message, ShownImage, User
from store.tables import Image as ImageRow
from tests.bot.conftest import RSICD, jpeg
from tests.bot.real_store import open_filled, real_service
from tests.fake_engine import FakeEngine

ALICE = UserRef("test", "alice")
BOB = UserRef("test", "bob")


def uid(store: Store, user: UserRef) -> int:
    return store.repo.get_or_create_user(user.transport, user.external_id).id


def png_sha(data: bytes) -> str:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, format="PNG")
    return hashlib.sha256(buffer.getvalue()).hexdigest()


async def test_photo_is_described_stored_and_used_in_follow_up(
    svc: ConversationService, real_store: Store, engine: FakeEngine
) -> None:
    first = await svc.ask(ALICE, "", [jpeg()])
    assert first.text.startswith("I see 1 image")
    turns = real_store.repo.history(uid(real_store, ALICE))
    sha = turns[0].image_shas[0]
    assert sha == png_sha(jpeg()) and real_store.blobs.exists(sha)
    assert [t.role for t in turns] == ["user", "assistant"]
    assert turns[1].parts[0].text == first.text
    await svc.ask(ALICE, "is there a river?")
    assert [t.role for t in engine.last_dialogue] == ["user", "assistant", "user"]
    assert engine.last_dialogue[0] == image_turn(caption_prompt(1), sha)
    assert engine.embed_calls == 1, "embedded once, then read from the store's cache"
    assert set(real_store.embeddings.get([sha], engine.encoder_id)) == {sha}


async def test_search_and_more_never_repeat(svc: ConversationService) -> None:
    pages = [await svc.ask(ALICE, "show me airports near the sea")]
    pages += [await svc.more(ALICE), await svc.more(ALICE)]
    shas = [h.sha256 for page in pages for h in page.hits]
    assert len(shas) == len(set(shas)) == 12
    assert all(h.path.is_file() and h.label for page in pages for h in page.hits)
    assert (await svc.more(ALICE)).text == "No more results for that search."
    await svc.reset(ALICE)
    with pytest.raises(UserFacingError, match="no search"):
        await svc.more(ALICE)
    again = await svc.search(ALICE, "airports")
    assert len(again.hits) == 4, "a new conversation may show images again"


async def test_more_like_this(svc: ConversationService) -> None:
    reply = await svc.similar(ALICE, jpeg("00020.jpg"))
    assert reply.hits[0].label == "bridge" and reply.hits[0].score > 0.99
    await svc.ask(BOB, "", [jpeg("00010.jpg")])
    assert (await svc.similar(BOB)).hits[0].label == "airport"


async def test_private_uploads_only_for_their_owner(
    svc: ConversationService, real_store: Store, engine: FakeEngine
) -> None:
    bob = uid(real_store, BOB)
    private = CaptionedImage(RSICD / "00200.jpg", label="bob's own")
    add_images(real_store, engine, [private], owner_user_id=bob, visibility="private")
    assert (await svc.similar(BOB, jpeg("00200.jpg"))).hits[0].label == "bob's own"
    labels = [h.label for h in (await svc.similar(ALICE, jpeg("00200.jpg"))).hits]
    assert "bob's own" not in labels
    assert "Gallery: 13 images" in await svc.about()


async def test_reset_keeps_the_old_conversation_out_of_context(
    svc: ConversationService, real_store: Store, engine: FakeEngine
) -> None:
    await svc.ask(ALICE, "", [jpeg()])
    await svc.reset(ALICE)
    assert await svc.history(ALICE) == "This conversation is empty."
    await svc.ask(ALICE, "what do you see?")
    assert len(engine.last_dialogue) == 1
    assert len(real_store.repo.list_conversations(uid(real_store, ALICE))) == 2


async def test_export_holds_turns_and_images(svc: ConversationService) -> None:
    await svc.ask(ALICE, "what is this?", [jpeg()])
    archive = zipfile.ZipFile(io.BytesIO(await svc.export(ALICE)))
    data = json.loads(archive.read("data.json"))
    texts = [p["text"] for c in data["conversations"] for t in c["turns"] for p in t["parts"]]
    assert "what is this?" in texts and any(t and t.startswith("I see 1") for t in texts)
    assert f"images/{png_sha(jpeg())}.png" in archive.namelist()


async def test_forget_leaves_nothing(svc: ConversationService, real_store: Store) -> None:
    await svc.ask(ALICE, "what is this?", [jpeg()])
    await svc.search(ALICE, "harbour")
    sha = png_sha(jpeg())
    assert "deleted" in await svc.forget(ALICE)
    with real_store.db.read() as s:
        for model in (User, Conversation, Message, ShownImage):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model
        assert s.get(ImageRow, sha) is None
        assert s.scalar(select(func.count()).where(Embedding.image_sha256 == sha)) == 0
    assert not real_store.blobs.exists(sha)
    assert len(real_store.gallery) == 12, "the public gallery stays"


async def test_restart_keeps_conversation_and_search(tmp_path: Path, engine: FakeEngine) -> None:
    first_store = open_filled(tmp_path, engine)
    first = real_service(first_store, engine)
    await first.ask(ALICE, "", [jpeg()])
    shown = [h.sha256 for h in (await first.search(ALICE, "harbour")).hits]
    first.close()
    second_store = open_filled(tmp_path, FakeEngine())
    second_engine = FakeEngine()
    second = real_service(second_store, second_engine)
    try:
        await second.ask(ALICE, "and now?")
        dialogue = second_engine.last_dialogue
        assert len(dialogue) == 5 and dialogue[-1].parts == (TextPart("and now?"),)
        assert second_engine.embed_calls == 0
        more = await second.more(ALICE)
        assert more.hits and not set(shown) & {h.sha256 for h in more.hits}
    finally:
        second.close()


def test_stored_query_round_trips(real_store: Store, engine: FakeEngine) -> None:
    from bot.service.store_adapter import StoreAdapter
    from bot.service.store_port import SavedSearch

    adapter = StoreAdapter(real_store, engine.search_id)
    user = adapter.user_id("test", "dana", None)
    query = np.linspace(-1, 1, engine.search_dim).astype(np.float32)
    assert adapter.last_search(user) is None
    adapter.remember_search(user, SavedSearch(query, only_own=True))
    saved = adapter.last_search(user)
    assert saved is not None and np.array_equal(saved.query, query) and saved.only_own
    adapter.reset(user)
    assert adapter.last_search(user) is None


def test_hits_show_the_engines_score(real_store: Store, engine: FakeEngine) -> None:
    from bot.service.store_adapter import StoreAdapter

    vectors = np.eye(engine.search_dim, dtype=np.float32)[:3]
    shas = [real_store.repo.add_image(NewImage.from_bytes(jpeg(f"0000{i + 1}.jpg")), None).sha256
            for i in range(3)]
    real_store.gallery.add([GalleryEntry(sha) for sha in shas], vectors, engine.search_id)
    query = np.array([0.6, 0.8] + [0.0] * (engine.search_dim - 2), dtype=np.float32)
    plain = StoreAdapter(real_store, engine.search_id).search(1, query, 2, set())
    scaled = StoreAdapter(real_store, engine.search_id, 3.0).search(1, query, 2, set())
    assert [h.score for h in plain] == pytest.approx([0.8, 0.6])
    assert [h.score for h in scaled] == pytest.approx([2.4, 1.8])


def test_a_query_saved_under_other_bridge_weights_is_not_continued(
        real_store: Store, engine: FakeEngine) -> None:
    from bot.service.store_adapter import StoreAdapter
    from bot.service.store_port import SavedSearch

    before = StoreAdapter(real_store, "old-bridge")
    user = before.user_id("test", "erin", None)
    before.remember_search(user, SavedSearch(np.ones(4, dtype=np.float32)))
    assert before.last_search(user) is not None
    assert StoreAdapter(real_store, engine.search_id).last_search(user) is None
