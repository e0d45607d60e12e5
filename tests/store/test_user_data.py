"""The store's parts beside conversations: embedding cache, shown images, feedback, export
and forget.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from store import GalleryEntry, NewImage, Store, UnknownUserError
from store.tables import Base
from tests.store.conftest import png


def _all_rows(store: Store) -> dict[str, int]:
    with store.db.read() as s:
        return {t.name: int(s.scalar(select(func.count()).select_from(t)) or 0)
                for t in Base.metadata.sorted_tables}


def test_embedding_cache_is_keyed_by_sha_and_encoder(store: Store) -> None:
    user = store.repo.get_or_create_user("telegram", 1)
    image = NewImage.from_bytes(png(1))
    store.repo.append_turn(user.id, "user", [image])
    vector = np.arange(5, dtype=np.float32)
    store.embeddings.put("enc-a", {image.sha256: vector})
    store.embeddings.put("enc-a", {image.sha256: vector + 1})  # first writer wins
    got = store.embeddings.get([image.sha256, "f" * 64], "enc-a")
    assert list(got) == [image.sha256]
    np.testing.assert_array_equal(got[image.sha256], vector)
    assert store.embeddings.get([image.sha256], "enc-b") == {}


def test_shown_images_are_per_conversation(store: Store) -> None:
    user = store.repo.get_or_create_user("telegram", 2)
    image = NewImage.from_bytes(png(2))
    conv = store.repo.append_turn(user.id, "assistant", [image]).conversation_id
    store.shown.mark(conv, [image.sha256, image.sha256])
    assert store.shown.of(conv) == {image.sha256}
    assert store.shown.of(store.repo.reset(user.id)) == set()


def test_feedback_only_on_own_messages(store: Store) -> None:
    a = store.repo.get_or_create_user("telegram", 3)
    b = store.repo.get_or_create_user("telegram", 4)
    reply = store.repo.append_turn(a.id, "assistant", ["an answer"])
    store.feedback.rate(a.id, reply.message_id, 1, "good")
    assert store.feedback.rating(a.id, reply.message_id) == 1
    with pytest.raises(KeyError):
        store.feedback.rate(b.id, reply.message_id, -1)


def test_export_holds_json_and_image_files(store: Store, tmp_path: Path) -> None:
    user = store.repo.get_or_create_user("telegram", 5)
    image = NewImage.from_bytes(png(3), source="telegram")
    store.repo.append_turn(user.id, "user", ["mine", image])
    store.repo.append_turn(user.id, "assistant", ["reply"])
    store.repo.reset(user.id)
    store.repo.append_turn(user.id, "user", ["second conversation"])
    archive = store.user_data.export(user.id, tmp_path / "out" / "export.zip")
    with zipfile.ZipFile(archive) as z:
        data = json.loads(z.read("data.json"))
        assert z.read(f"images/{image.sha256}.png") == image.data
    assert data["user"]["platform_id"] == "5"
    turns = [[p["text"] or p["sha256"] for p in t["parts"]]
             for c in data["conversations"] for t in c["turns"]]
    assert turns == [["mine", image.sha256], ["reply"], ["second conversation"]]
    assert [i["sha256"] for i in data["images"]] == [image.sha256]


def test_forget_leaves_no_trace_but_keeps_shared_images(store: Store) -> None:
    gone = store.repo.get_or_create_user("telegram", 6)
    other = store.repo.get_or_create_user("telegram", 7)
    private = NewImage.from_bytes(png(4))
    shared = NewImage.from_bytes(png(5))
    before = _all_rows(store)
    asked = store.repo.append_turn(gone.id, "user", ["secret", private, shared])
    reply = store.repo.append_turn(gone.id, "assistant", ["an answer"])
    store.feedback.rate(gone.id, reply.message_id, 1)
    store.embeddings.put("enc", {private.sha256: np.ones(3, np.float32)})
    store.shown.mark(asked.conversation_id, [shared.sha256])
    store.gallery.add([GalleryEntry(private.sha256, owner_user_id=gone.id,
                                    visibility="private")], np.ones((1, 4)), "b")
    kept = store.repo.append_turn(other.id, "user", [shared])
    report = store.user_data.forget(gone.id)

    assert report.files == 1 and report.gallery_items == 1
    assert set(store.blobs.all_shas()) == {shared.sha256}
    after = _all_rows(store)
    expected = dict(before, users=1, conversations=1, messages=1, message_parts=1, images=1,
                    image_sources=1)
    assert after == expected
    assert store.repo.history(other.id) == [kept]
    assert len(store.gallery) == 0
    with pytest.raises(UnknownUserError):
        store.repo.get_user(gone.id)
    assert store.repo.get_or_create_user("telegram", 6).id != gone.id
