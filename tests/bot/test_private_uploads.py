"""Every image a chat sends joins its private gallery: the conversation service on a real store
(fresh SQLite, files, FAISS) with the fake engine. Two users and two groups (groups are
conversation owners of their own, as the Telegram transport keys them), each uploading.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from bot.errors import UserFacingError
from bot.gallery_builder import rebuild
from bot.replies import hit_caption
from bot.service.conversation import ConversationService
from bot.service.uploads import CAP_NOTICE
from bot.service.user_ref import UserRef
from store import Store
from tests.bot.conftest import GALLERY, RSICD, jpeg
from tests.bot.real_store import open_filled, real_service
from tests.bot.test_service_store import png_sha, uid
from tests.fake_engine import FakeEngine

ALICE, BOB = UserRef("test", "alice"), UserRef("test", "bob")
GROUP_A, GROUP_B = UserRef("telegram", "-1001"), UserRef("telegram", "-1002:topic7")
UPLOADS = {ALICE: "00200.jpg", BOB: "00210.jpg", GROUP_A: "00220.jpg", GROUP_B: "00230.jpg"}
PUBLIC = {hashlib.sha256((RSICD / name).read_bytes()).hexdigest() for name, _ in GALLERY}


async def reachable(svc: ConversationService, user: UserRef) -> set[str]:
    """Every image a chat's searches can reach: a search, then /more until nothing is left."""
    shas = {h.sha256 for h in (await svc.search(user, "anything at all")).hits}
    while (page := await svc.more(user)).hits:
        shas |= {h.sha256 for h in page.hits}
    return shas


async def test_each_chat_reaches_public_and_its_own_across_restart_and_forget(
        tmp_path: Path, engine: FakeEngine) -> None:
    store = open_filled(tmp_path, engine)
    svc = real_service(store, engine)
    for user, name in UPLOADS.items():
        assert (await svc.ask(user, "", [jpeg(name)])).text.startswith("I see 1 image")
    assert engine.embed_calls == 4, "each upload encoded once for the reply"
    assert engine.gallery_embed_calls == 4, "and once (its turns) for its gallery vector"
    own = {user: png_sha(jpeg(name)) for user, name in UPLOADS.items()}
    for user in UPLOADS:
        assert await reachable(svc, user) == PUBLIC | {own[user]}
    svc.close()

    store = open_filled(tmp_path, FakeEngine())
    svc = real_service(store, FakeEngine())
    try:
        for user in UPLOADS:
            await svc.reset(user)  # a new conversation may show images again
            assert await reachable(svc, user) == PUBLIC | {own[user]}
        await svc.forget(GROUP_A)
        assert not store.blobs.exists(own[GROUP_A])
        for user in (ALICE, BOB, GROUP_B):
            await svc.reset(user)
            assert await reachable(svc, user) == PUBLIC | {own[user]}
        assert await reachable(svc, GROUP_A) == PUBLIC
    finally:
        svc.close()


async def test_own_hits_say_so_and_mine_searches_only_them(
        svc: ConversationService, real_store: Store) -> None:
    await svc.ask(ALICE, "compare", [jpeg("00200.jpg"), jpeg("00210.jpg")])
    reply = await svc.search(ALICE, "mine fields")
    assert reply.text == "Here are 2 of your images."
    assert {h.sha256 for h in reply.hits} == {png_sha(jpeg("00200.jpg")),
                                              png_sha(jpeg("00210.jpg"))}
    assert all("yours, sent " in hit_caption(h) and h.path.is_file() for h in reply.hits)
    assert (await svc.more(ALICE)).text == "No more results for that search."
    public = await svc.search(ALICE, "fields")
    assert all(h.sent_at is None and "yours" not in hit_caption(h) for h in public.hits
               if h.sha256 in PUBLIC)
    with pytest.raises(UserFacingError, match="what to look for among your images"):
        await svc.search(ALICE, "mine")


async def test_a_chat_without_uploads_still_searches_the_public_gallery(
        svc: ConversationService) -> None:
    assert {h.sha256 for h in (await svc.search(BOB, "harbour")).hits} <= PUBLIC
    assert len((await svc.ask(BOB, "show me a harbour")).hits) == 4
    with pytest.raises(UserFacingError, match="not sent me any images"):
        await svc.search(BOB, "mine harbour")


async def test_duplicates_are_indexed_once_and_corrupt_uploads_not_at_all(
        svc: ConversationService, real_store: Store) -> None:
    await svc.ask(ALICE, "", [jpeg()])
    await svc.ask(ALICE, "again", [jpeg(), jpeg()])
    assert real_store.gallery.private_count(uid(real_store, ALICE)) == 1
    with pytest.raises(UserFacingError):
        await svc.ask(BOB, "", [b"\x89PNG\r\n\x1a\n broken"])
    assert real_store.gallery.private_count(uid(real_store, BOB)) == 0
    assert real_store.gallery.stats().private == 1


async def test_more_like_this_skips_the_example_itself(svc: ConversationService) -> None:
    await svc.ask(ALICE, "", [jpeg("00020.jpg")])  # also in the public gallery, as a JPEG
    hits = (await svc.similar(ALICE)).hits
    assert hits[0].label == "bridge" and hits[0].score > 0.99
    assert png_sha(jpeg("00020.jpg")) not in {h.sha256 for h in hits}


async def test_the_cap_evicts_the_oldest_and_says_so_once(tmp_path: Path,
                                                          engine: FakeEngine) -> None:
    store = open_filled(tmp_path, engine, private_cap=2)
    svc = real_service(store, engine)
    try:
        names = ["00200.jpg", "00210.jpg", "00220.jpg", "00230.jpg"]
        texts = [(await svc.ask(ALICE, "", [jpeg(name)])).text for name in names]
        assert [t.endswith(CAP_NOTICE) for t in texts] == [False, False, True, False]
        mine = {h.sha256 for h in (await svc.search(ALICE, "mine x")).hits}
        assert mine == {png_sha(jpeg(n)) for n in names[2:]}
        assert store.blobs.exists(png_sha(jpeg(names[0]))), "still in the conversation"
    finally:
        svc.close()


async def test_export_lists_the_chats_gallery_rows(svc: ConversationService) -> None:
    await svc.ask(ALICE, "", [jpeg("00200.jpg")])
    data = json.loads(zipfile.ZipFile(io.BytesIO(await svc.export(ALICE))).read("data.json"))
    rows = data["gallery_items"]
    assert [(r["sha256"], r["visibility"]) for r in rows] == [
        (png_sha(jpeg("00200.jpg")), "private")]
    assert rows[0]["added_at"]


async def test_a_bridge_change_re_embeds_uploads_from_their_files(
        svc: ConversationService, real_store: Store) -> None:
    await svc.ask(ALICE, "", [jpeg("00200.jpg")])
    newer = FakeEngine(bridge_id="fake-bridge-2")  # the same encoder, new bridge weights
    assert rebuild(real_store, newer) == 13
    assert newer.gallery_embed_calls == 0, "gallery embeddings come from the cache"
    after = real_service(real_store, newer)
    hits = (await after.search(ALICE, "mine x")).hits
    expected = newer.gallery_rows(newer.embed_for_gallery([_pil("00200.jpg")]))[0]
    assert [h.sha256 for h in hits] == [png_sha(jpeg("00200.jpg"))]
    own = real_store.gallery.search(expected, 1, newer.search_id, user_id=uid(real_store, ALICE),
                                    only_own=True)
    assert own[0].score == pytest.approx(1.0, abs=1e-5)


async def test_a_stale_gallery_still_lets_the_reply_through(real_store: Store) -> None:
    # Not rebuilt: the gallery holds vectors of the old bridge.
    svc = real_service(real_store, FakeEngine(bridge_id="fake-bridge-2"))
    reply = await svc.ask(ALICE, "", [jpeg("00200.jpg")])
    assert reply.text.startswith("I see 1 image")
    assert real_store.gallery.private_count(uid(real_store, ALICE)) == 0
    assert len(real_store.repo.history(uid(real_store, ALICE))) == 2, "the exchange is kept"


def _pil(name: str) -> Image.Image:
    return Image.open(io.BytesIO(jpeg(name))).convert("RGB")
