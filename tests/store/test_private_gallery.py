"""Chats' private galleries on the real store (SQLite, and PostgreSQL when configured): each
image once per chat, only the owner sees it, a per-chat cap, forget, restart, the database's
own guard against duplicates.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError

from store import GalleryEntry, NewImage, Store, StoreConfig, open_store
from store import faiss_index as fx
from store.tables import GalleryItem, utcnow
from tests.store.conftest import png

DIM = 16
BRIDGE = "bridge-1"


def _images(store: Store, owner: int | None, seeds: range) -> tuple[list[str], np.ndarray]:
    shas = [store.repo.add_image(NewImage.from_bytes(png(s)), owner).sha256 for s in seeds]
    vectors = np.random.default_rng(seeds.start).normal(size=(len(shas), DIM))
    return shas, vectors.astype(np.float32)


def _public(store: Store, seeds: range) -> list[str]:
    shas, vectors = _images(store, None, seeds)
    store.gallery.add([GalleryEntry(sha, label="public") for sha in shas], vectors, BRIDGE)
    return shas


def _upload(store: Store, owner: int, seeds: range) -> tuple[list[str], np.ndarray]:
    shas, vectors = _images(store, owner, seeds)
    store.gallery.add_private(owner, [GalleryEntry(sha, source="upload") for sha in shas],
                              vectors, BRIDGE)
    return shas, vectors


def _everything(store: Store, owner: int | None, only_own: bool = False) -> set[str]:
    query = np.ones(DIM, dtype=np.float32)
    return {h.sha256 for h in store.gallery.search(query, 1000, BRIDGE, user_id=owner,
                                                   only_own=only_own)}


def _owners(store: Store) -> dict[str, int]:
    chats = ("alice", "bob", "group-a", "group-b")
    return {name: store.repo.get_or_create_user("telegram", name).id for name in chats}


def test_each_chat_sees_public_and_its_own_only(store: Store) -> None:
    public = set(_public(store, range(100, 105)))
    owners = _owners(store)
    own = {name: set(_upload(store, uid, range(200 + 10 * n, 203 + 10 * n))[0])
           for n, (name, uid) in enumerate(owners.items())}
    for name, uid in owners.items():
        assert _everything(store, uid) == public | own[name]
        assert _everything(store, uid, only_own=True) == own[name]
    assert _everything(store, None) == public
    stats = store.gallery.stats()
    assert (stats.public, stats.private, stats.owners) == (5, 12, 4)


def test_same_image_twice_is_indexed_once(store: Store) -> None:
    alice, bob = store.repo.get_or_create_user("t", "a").id, store.repo.get_or_create_user(
        "t", "b").id
    shas, vectors = _upload(store, alice, range(1, 3))
    again = store.gallery.add_private(
        alice, [GalleryEntry(shas[0]), GalleryEntry(shas[0])], vectors[[0, 0]], BRIDGE)
    assert (again.added, again.already, again.evicted) == ([], 2, 0)
    assert store.gallery.private_count(alice) == 2
    store.repo.add_image(NewImage.from_bytes(png(1)), bob)
    assert len(store.gallery.add_private(bob, [GalleryEntry(shas[0])], vectors[:1],
                                         BRIDGE).added) == 1, "another chat has its own row"


def test_an_image_both_public_and_own_is_one_hit_marked_own(store: Store) -> None:
    alice = store.repo.get_or_create_user("t", "a").id
    shas, vectors = _images(store, None, range(7, 8))
    store.gallery.add([GalleryEntry(shas[0], label="public")], vectors, BRIDGE)
    store.gallery.add_private(alice, [GalleryEntry(shas[0])], vectors, BRIDGE)
    mine = store.gallery.search(vectors[0], 5, BRIDGE, user_id=alice)
    assert [(h.sha256, h.owner_user_id, h.visibility) for h in mine] == [
        (shas[0], alice, "private")]
    assert mine[0].added_at is not None and mine[0].added_at.tzinfo is not None
    theirs = store.gallery.search(vectors[0], 5, BRIDGE, user_id=None)
    assert [(h.sha256, h.visibility) for h in theirs] == [(shas[0], "public")]


def test_past_the_cap_the_oldest_leave_the_gallery_not_the_store(
        store_config: StoreConfig, database_url: str) -> None:
    config = replace(store_config, gallery=replace(store_config.gallery, private_cap=3))
    store = open_store(config, database_url)
    try:
        alice = store.repo.get_or_create_user("t", "a").id
        first, _ = _upload(store, alice, range(1, 3))
        later = store.gallery.add_private(alice, [GalleryEntry(s) for s in _images(
            store, alice, range(3, 6))[0]], np.eye(3, DIM, dtype=np.float32), BRIDGE)
        assert (len(later.added), later.evicted) == (3, 2)
        assert store.gallery.private_count(alice) == 3
        assert not set(first) & _everything(store, alice)
        assert all(store.repo.image_info(sha) and store.blobs.exists(sha) for sha in first), \
            "evicted images stay with their conversation"
    finally:
        store.close()


def test_forget_removes_one_chats_rows_vectors_and_files_only(store: Store) -> None:
    public = set(_public(store, range(100, 103)))
    owners = _owners(store)
    own = {name: set(_upload(store, uid, range(300 + 10 * n, 302 + 10 * n))[0])
           for n, (name, uid) in enumerate(owners.items())}
    report = store.user_data.forget(owners["group-a"])
    assert report.gallery_items == 2
    assert not any(store.blobs.exists(sha) for sha in own["group-a"])
    assert store.gallery.private_count(owners["group-a"]) == 0
    for name in ("alice", "bob", "group-b"):
        assert _everything(store, owners[name]) == public | own[name]
    assert len(store.gallery) == 3 + 6


def test_visibility_survives_a_restart(store_config: StoreConfig, database_url: str) -> None:
    store = open_store(store_config, database_url)
    public = set(_public(store, range(100, 103)))
    owners = _owners(store)
    own = {name: set(_upload(store, uid, range(400 + 10 * n, 402 + 10 * n))[0])
           for n, (name, uid) in enumerate(owners.items())}
    store.close()
    reopened = open_store(store_config, database_url)
    try:
        for name, uid in owners.items():
            assert _everything(reopened, uid) == public | own[name]
        assert reopened.gallery.stats().owners == 4
    finally:
        reopened.close()


def test_the_database_refuses_a_second_private_row_of_one_image(store: Store) -> None:
    alice = store.repo.get_or_create_user("t", "a").id
    shas, vectors = _upload(store, alice, range(1, 2))
    with pytest.raises(IntegrityError), store.db.write() as s:
        s.add(GalleryItem(gallery=store.gallery.name, image_sha256=shas[0], source="",
                          owner_user_id=alice, visibility="private", bridge_id=BRIDGE,
                          vector=vectors[0].tobytes(), added_at=utcnow()))


def test_uploads_append_to_the_index_tail_replayed_on_open(
        store_config: StoreConfig, database_url: str) -> None:
    store = open_store(store_config, database_url)
    public = set(_public(store, range(100, 105)))
    index_file, written = store.gallery.path, store.gallery.path.stat().st_mtime_ns
    owners = _owners(store)
    own = {name: set(_upload(store, uid, range(500 + 10 * n, 502 + 10 * n))[0])
           for n, (name, uid) in enumerate(owners.items())}
    store.user_data.forget(owners["bob"])
    assert index_file.stat().st_mtime_ns == written, "an upload appends; it does not rewrite"
    assert fx.tail_path(index_file).stat().st_size > 0
    store.close()
    reopened = open_store(store_config, database_url)
    try:
        for name in ("alice", "group-a", "group-b"):
            assert _everything(reopened, owners[name]) == public | own[name]
        assert len(reopened.gallery) == 5 + 6
        tail = fx.tail_path(index_file)
        tail.write_bytes(tail.read_bytes()[:-10])  # torn by a crash: rebuilt from the rows
        reopened.gallery.reload()
        assert _everything(reopened, owners["alice"]) == public | own["alice"]
        assert len(reopened.gallery) == 5 + 6
    finally:
        reopened.close()
