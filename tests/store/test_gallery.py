"""Gallery: visibility filter, exclusion, stale-bridge refusal, add/remove, load checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.hubness import gallery_rows, search_queries
from store import (
    GalleryConfig,
    GalleryEntry,
    NewImage,
    StaleGalleryError,
    Store,
    StoreConfig,
    open_store,
)
from tests.store.conftest import png

DIM = 16


def _add(store: Store, n: int, seed: int, **entry: object) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    shas = [store.repo.add_image(NewImage.from_bytes(png(seed * 10_000 + i)), None).sha256
            for i in range(n)]
    entries = [GalleryEntry(sha, caption=f"c{i}", label="lbl", **entry)  # type: ignore[arg-type]
               for i, sha in enumerate(shas)]
    store.gallery.add(entries, vectors, "bridge-1")
    return shas, vectors


def test_search_finds_the_nearest_vector_first(store: Store) -> None:
    shas, vectors = _add(store, 20, seed=1)
    hits = store.gallery.search(vectors[7], 3, "bridge-1")
    assert hits[0].sha256 == shas[7] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_vectors_rank_by_score_less_each_images_hubness(store: Store) -> None:
    rng = np.random.default_rng(9)
    keys = rng.normal(size=(12, DIM)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    hubness = rng.uniform(-0.3, 0.3, size=12).astype(np.float32)
    query = keys[3] + 0.5 * rng.normal(size=DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    rows = gallery_rows(torch.from_numpy(keys), torch.from_numpy(hubness)).numpy()
    shas = [store.repo.add_image(NewImage.from_bytes(png(90_000 + i)), None).sha256
            for i in range(12)]
    store.gallery.add([GalleryEntry(sha) for sha in shas], rows, "bridge-1")
    asked = search_queries(torch.from_numpy(query)[None], torch.tensor([0.2]))[0].numpy()
    hits = store.gallery.search(asked, 12, "bridge-1")
    expected = np.argsort(-(keys @ query - hubness), kind="stable")
    assert [h.sha256 for h in hits] == [shas[i] for i in expected]


def test_private_uploads_are_seen_only_by_their_owner(store: Store) -> None:
    alice = store.repo.get_or_create_user("telegram", 1).id
    bob = store.repo.get_or_create_user("telegram", 2).id
    public, _ = _add(store, 5, seed=2)
    mine, vectors = _add(store, 5, seed=3, owner_user_id=alice, visibility="private")
    for query in vectors:
        for user, allowed in ((alice, set(public) | set(mine)), (bob, set(public)),
                              (None, set(public))):
            hits = store.gallery.search(query, 10, "bridge-1", user_id=user)
            assert {h.sha256 for h in hits} == allowed


def test_excluded_images_are_skipped(store: Store) -> None:
    shas, vectors = _add(store, 10, seed=4)
    hits = store.gallery.search(vectors[0], 3, "bridge-1", exclude=[shas[0], shas[1]])
    assert len(hits) == 3 and not {shas[0], shas[1]} & {h.sha256 for h in hits}


def test_stale_bridge_is_refused_with_the_rebuild_command(store: Store) -> None:
    _, vectors = _add(store, 3, seed=5)
    with pytest.raises(StaleGalleryError, match="capret gallery rebuild"):
        store.gallery.search(vectors[0], 1, "bridge-2")
    with pytest.raises(StaleGalleryError):
        store.gallery.add([GalleryEntry(store.repo.add_image(
            NewImage.from_bytes(png(999))).sha256)], vectors[:1], "bridge-2")


def test_remove_drops_vectors_rows_and_unused_files(store: Store) -> None:
    shas, vectors = _add(store, 4, seed=6)
    first = store.gallery.search(vectors[0], 1, "bridge-1")[0]
    assert store.gallery.remove([first.item_id]) == 1
    assert len(store.gallery) == 3
    assert store.gallery.search(vectors[0], 4, "bridge-1")[0].sha256 != shas[0]
    assert not store.blobs.exists(shas[0]) and store.blobs.exists(shas[1])
    assert store.gallery.contains(shas) == set(shas[1:])


def test_reopen_loads_index_and_rebuilds_after_a_lost_save(
    store: Store, store_config: StoreConfig, database_url: str
) -> None:
    shas, vectors = _add(store, 6, seed=7)
    store.gallery.path.unlink()  # as if killed between the commit and the index save
    store.close()
    again = open_store(store_config, database_url)
    assert len(again.gallery) == 6
    assert again.gallery.search(vectors[2], 1, "bridge-1")[0].sha256 == shas[2]
    assert again.gallery.stats().bridge_id == "bridge-1"
    again.close()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_filter_and_remove(tmp_path: Path, kind: str) -> None:
    config = StoreConfig(data_dir=str(tmp_path / "data"),
                         gallery=GalleryConfig(index=kind, ivf_lists=4, ivf_probe=4))  # type: ignore[arg-type]
    store = open_store(config)
    owner = store.repo.get_or_create_user("telegram", 1).id
    public, vectors = _add(store, 120, seed=8)
    private, pvecs = _add(store, 3, seed=9, owner_user_id=owner, visibility="private")
    assert store.gallery.search(vectors[5], 1, "bridge-1")[0].sha256 == public[5]
    assert not {h.sha256 for h in store.gallery.search(pvecs[0], 20, "bridge-1")} & set(private)
    assert store.gallery.search(pvecs[0], 1, "bridge-1", user_id=owner)[0].sha256 == private[0]
    store.gallery.remove([store.gallery.search(vectors[5], 1, "bridge-1")[0].item_id])
    assert store.gallery.search(vectors[5], 1, "bridge-1")[0].sha256 != public[5]
    store.close()
    reopened = open_store(replace(config))
    assert len(reopened.gallery) == 122
    reopened.close()
