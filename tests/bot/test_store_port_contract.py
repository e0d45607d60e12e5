"""The service's store port, one contract for every implementation.

Each test runs against the in-memory fake (``tests/bot/memory_store.py``) and the real adapter
(``bot/service/store_adapter.py``) over a fresh store on SQLite, and on PostgreSQL too when
CAPRET_TEST_POSTGRES_URL is set (as the store tests do). A fake that passes these may stand in
for the real thing in the service and transport tests.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.service.store_adapter import StoreAdapter
from bot.service.store_port import SavedSearch, StorePort, UploadsIndexed
from engine.types import ImagePart, TextPart, Turn
from store import GalleryConfig, GalleryEntry, NewImage, StoreConfig, open_store
from tests.bot.memory_store import MemoryState, MemoryStore
from tests.store.conftest import fresh_postgres, png, postgres_admin_url

BRIDGE = "contract-bridge"
LABELS = ("airport", "beach", "forest", "river")
CAP = 2  # private images per chat before the oldest leave the gallery
DIM = len(LABELS)


def _unit(i: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[i]


def _gallery_images() -> list[bytes]:
    return [png(100 + i) for i in range(len(LABELS))]


def _memory(folder: Path) -> StorePort:
    store = MemoryStore(MemoryState(), context_turns=12, context_images=4, private_cap=CAP)
    folder.mkdir(parents=True)
    for i, (label, data) in enumerate(zip(LABELS, _gallery_images(), strict=True)):
        path = folder / f"{label}.png"
        path.write_bytes(data)
        store.add_gallery(label, path, _unit(i))
    return store


def _real(folder: Path, url: str | None) -> StorePort:
    config = StoreConfig(data_dir=str(folder), context_turns=12, context_images=4,
                         gallery=GalleryConfig(index="flat", private_cap=CAP))
    store = open_store(config, url)
    for i, (label, data) in enumerate(zip(LABELS, _gallery_images(), strict=True)):
        image = NewImage.from_bytes(data, source=f"gallery:{label}.png")
        store.repo.add_image(image)
        store.gallery.add([GalleryEntry(image.sha256, label=label, source=f"{label}.png")],
                          _unit(i)[None], BRIDGE)
    return StoreAdapter(store, BRIDGE)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorePort]:
    """The port on a fresh store holding four public gallery images (one per axis)."""
    if request.param == "memory":
        store = _memory(tmp_path / "gallery")
        yield store
        store.close()
        return
    if request.param == "sqlite":
        store = _real(tmp_path / "data", None)
        yield store
        store.close()
        return
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("PostgreSQL run skipped: CAPRET_TEST_POSTGRES_URL is not set")
    for url in fresh_postgres(admin):
        store = _real(tmp_path / "data", url)
        yield store
        store.close()


def _upload(port: StorePort, uid: int, seed: int) -> str:
    data = png(seed)
    sha = NewImage.from_bytes(data).sha256
    port.put_image(uid, sha, data)
    return sha


def _exchange(port: StorePort, uid: int, text: str, *shas: str) -> tuple[Turn, Turn, int]:
    asked = Turn("user", (TextPart(text), *(ImagePart(s) for s in shas)))
    reply = Turn("assistant", (TextPart(f"about {text}"),))
    turn_id = port.append_exchange(uid, asked, reply)
    assert isinstance(turn_id, int)
    return asked, reply, turn_id


def test_user_ids_are_stable_and_never_reused(port: StorePort) -> None:
    alice = port.user_id("telegram", "1", "Alice")
    assert port.user_id("telegram", "1", None) == alice
    bob = port.user_id("telegram", "2", "Bob")
    assert port.user_id("terminal", "1", None) not in (alice, bob)
    port.forget(alice)
    assert port.user_id("telegram", "1", "Alice") not in (alice, bob)


def test_turns_history_and_reset(port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    assert port.history(uid) == [] and port.context(uid) == []
    sha = _upload(port, uid, 1)
    asked, reply, _ = _exchange(port, uid, "what is this?", sha)
    assert port.history(uid) == [asked, reply] == port.context(uid)
    port.reset(uid)
    assert port.history(uid) == [] and port.context(uid) == []
    again = _exchange(port, uid, "hello")
    assert port.history(uid) == list(again[:2])


def test_user_context_is_the_user_and_their_window_in_one_call(port: StorePort) -> None:
    uid, context = port.user_context("telegram", "3", "Carol")  # first contact creates
    assert uid == port.user_id("telegram", "3", None) and context == []
    for i in range(8):
        _exchange(port, uid, f"q{i}", _upload(port, uid, 40 + i))
    assert port.user_context("telegram", "3", None) == (uid, port.context(uid))
    port.reset(uid)
    assert port.user_context("telegram", "3", None) == (uid, [])
    assert port.user_context("telegram", "4", None)[0] not in (uid,)


def test_context_window_keeps_whole_turns_within_turn_and_image_budgets(
        port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    for i in range(8):  # one image per question: the 4-image budget cuts first
        _exchange(port, uid, f"q{i}", _upload(port, uid, 10 + i))
    history = port.history(uid)
    assert len(history) == 16 and port.context(uid) == history[-8:]
    port.reset(uid)
    for i in range(10):  # text only: the 12-turn budget cuts
        _exchange(port, uid, f"t{i}")
    history = port.history(uid)
    context = port.context(uid)
    assert context == history[-12:] and context[0].role == "user"


def test_replies_are_rated_only_by_their_user(port: StorePort) -> None:
    alice = port.user_id("telegram", "1", None)
    bob = port.user_id("telegram", "2", None)
    _, _, reply_id = _exchange(port, alice, "a question")
    port.rate(alice, reply_id, 1)
    port.rate(alice, reply_id, -1)  # a new tap replaces the old rating
    with pytest.raises(KeyError):
        port.rate(bob, reply_id, 1)
    with pytest.raises(KeyError):
        port.rate(alice, reply_id - 1, 1)  # the question, not a reply
    feedback = _export(port, alice)[0]["feedback"]
    assert [(f["message_id"], f["rating"]) for f in feedback] == [(reply_id, -1)]


def test_images_are_kept_by_content_hash(port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    data = png(2)
    sha = NewImage.from_bytes(data).sha256
    with pytest.raises(ValueError):
        port.put_image(uid, "0" * 64, data)
    assert port.get_image(sha) is None
    port.put_image(uid, sha, data)
    port.put_image(uid, sha, data)  # twice is once
    port.put_footprint(sha, {"epsg": 4326, "crs": "EPSG:4326", "lat": 1.0, "lon": 2.0,
                             "width_m": 30.0, "height_m": 30.0, "acquired": None})
    assert port.get_image(sha) == data


def test_embedding_cache_by_image_and_encoder(port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    sha = _upload(port, uid, 3)
    vector = np.arange(5, dtype=np.float32)
    assert port.cached_embeddings([sha], "enc-a") == {}
    port.cache_embeddings({sha: vector}, "enc-a")
    port.cache_embeddings({sha: vector + 1}, "enc-a")  # the first writer wins
    got = port.cached_embeddings([sha, "f" * 64], "enc-a")
    assert list(got) == [sha] and got[sha].dtype == np.float32
    np.testing.assert_array_equal(got[sha], vector)
    assert port.cached_embeddings([sha], "enc-b") == {}


def test_shown_images_and_saved_search_belong_to_the_conversation(port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    _exchange(port, uid, "start")
    hits = port.search(uid, _unit(0), 2, set())
    assert port.shown(uid) == set() and port.last_search(uid) is None
    port.mark_shown(uid, [h.sha256 for h in hits])
    port.mark_shown(uid, [])
    assert port.shown(uid) == {h.sha256 for h in hits}
    port.remember_search(uid, SavedSearch(_unit(0) * 0.5, only_own=True))
    saved = port.last_search(uid)
    assert saved is not None and saved.only_own
    np.testing.assert_allclose(saved.query, _unit(0) * 0.5)
    port.reset(uid)
    assert port.shown(uid) == set() and port.last_search(uid) is None


def test_a_new_search_has_shown_nothing_yet(port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    _exchange(port, uid, "start")
    port.remember_search(uid, SavedSearch(_unit(0)))
    port.mark_shown(uid, [h.sha256 for h in port.search(uid, _unit(0), 2, set())])
    assert len(port.shown(uid)) == 2
    port.remember_search(uid, SavedSearch(_unit(0)))  # the same words asked again
    assert port.shown(uid) == set()


def test_search_ranks_public_images_and_skips_excluded(port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    assert port.gallery_size() == len(LABELS)
    hits = port.search(uid, _unit(1) * 3 + _unit(2), 3, set())
    assert [h.label for h in hits[:2]] == ["beach", "forest"] and len(hits) == 3
    assert hits[0].score > hits[1].score > hits[2].score and hits[0].sent_at is None
    assert hits[0].read_bytes() == _gallery_images()[1]
    fewer = port.search(uid, _unit(1), 2, {hits[0].sha256})
    assert "beach" not in [h.label for h in fewer] and len(fewer) == 2
    assert port.search(uid, _unit(1), 3, set(), only_own=True) == []
    assert port.private_count(uid) == 0


def test_private_uploads_are_searchable_by_their_chat_only(port: StorePort) -> None:
    alice = port.user_id("telegram", "1", None)
    bob = port.user_id("telegram", "2", None)
    sha = _upload(port, alice, 4)
    query = (_unit(0) + _unit(3)) / np.sqrt(2)
    assert port.index_uploads(alice, [sha], query[None]) == UploadsIndexed(1)
    assert port.index_uploads(alice, [sha], query[None]) == UploadsIndexed(0)
    assert port.private_count(alice) == 1 and port.private_count(bob) == 0
    assert port.gallery_size() == len(LABELS) + 1
    own = port.search(alice, query, 1, set())
    assert own[0].sha256 == sha and own[0].sent_at is not None and own[0].label == ""
    assert own[0].read_bytes() == png(4)
    assert [h.sha256 for h in port.search(alice, query, 5, set(), only_own=True)] == [sha]
    assert sha not in {h.sha256 for h in port.search(bob, query, 5, set())}


def test_past_the_cap_the_oldest_leave_and_the_chat_is_told_once(port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    shas = [_upload(port, uid, 20 + i) for i in range(CAP + 2)]
    vectors = np.stack([_unit(i % DIM) for i in range(CAP + 2)])
    assert port.index_uploads(uid, shas[:CAP], vectors[:CAP]) == UploadsIndexed(CAP)
    assert port.index_uploads(uid, shas[CAP:CAP + 1], vectors[CAP:CAP + 1]) == \
        UploadsIndexed(1, 1, True)
    assert port.index_uploads(uid, shas[CAP + 1:], vectors[CAP + 1:]) == UploadsIndexed(1, 1)
    assert port.private_count(uid) == CAP
    mine = {h.sha256 for h in port.search(uid, _unit(0), 10, set(), only_own=True)}
    assert mine == set(shas[2:])
    assert port.get_image(shas[0]) is not None  # it left the gallery, not the store


def _export(port: StorePort, uid: int) -> tuple[dict[str, Any], set[str]]:
    archive = zipfile.ZipFile(io.BytesIO(port.export(uid)))
    return json.loads(archive.read("data.json")), set(archive.namelist())


def test_export_holds_every_conversation_and_the_images(port: StorePort) -> None:
    uid = port.user_id("telegram", "1", None)
    sha = _upload(port, uid, 5)
    _exchange(port, uid, "mine", sha)
    port.reset(uid)
    _exchange(port, uid, "second conversation")
    data, names = _export(port, uid)
    turns = [[p["text"] or p["sha256"] for p in t["parts"]]
             for c in data["conversations"] for t in c["turns"]]
    assert turns == [["mine", sha], ["about mine"], ["second conversation"],
                     ["about second conversation"]]
    assert [i["sha256"] for i in data["images"]] == [sha]
    assert f"images/{sha}.png" in names


def test_forget_removes_the_user_and_the_images_only_they_sent(port: StorePort) -> None:
    gone = port.user_id("telegram", "1", None)
    other = port.user_id("telegram", "2", None)
    private, shared = _upload(port, gone, 6), _upload(port, gone, 7)
    assert _upload(port, other, 7) == shared
    _exchange(port, gone, "secret", private, shared)
    port.cache_embeddings({private: np.ones(3, np.float32)}, "enc")
    port.index_uploads(gone, [private], _unit(0)[None])
    kept = _exchange(port, other, "mine too", shared)
    port.forget(gone)
    assert port.get_image(private) is None and port.get_image(shared) == png(7)
    assert port.cached_embeddings([private], "enc") == {}
    assert port.private_count(gone) == 0 and port.gallery_size() == len(LABELS)
    assert port.history(other) == list(kept[:2])
