"""Content-addressed files: atomic, de-duplicated, swept when unreferenced."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from store import NewImage, StoreConfig, open_store
from store.blobs import BlobStore
from tests.store.conftest import png


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = blobs.put(b"abc")
    assert sha == hashlib.sha256(b"abc").hexdigest()
    assert blobs.put(b"abc") == sha
    assert blobs.read(sha) == b"abc"
    assert list(blobs.all_shas()) == [sha]
    assert list(blobs.tmp.iterdir()) == []


def test_path_refuses_non_hashes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        BlobStore(tmp_path).path("../../etc/passwd")


def test_open_sweeps_orphans_and_temp_files_but_keeps_referenced(
    tmp_path: Path, database_url: str
) -> None:
    config = StoreConfig(data_dir=str(tmp_path / "data"))
    store = open_store(config, database_url)
    user = store.repo.get_or_create_user("telegram", 1)
    kept = NewImage.from_bytes(png(1))
    store.repo.append_turn(user.id, "user", [kept])
    orphan = store.blobs.put(b"written, then the process died before its commit")
    (store.blobs.tmp / "deadbeef.partial").write_bytes(b"half")
    store.close()

    store = open_store(config, database_url)
    assert set(store.blobs.all_shas()) == {kept.sha256}
    assert not store.blobs.exists(orphan)
    assert list(store.blobs.tmp.iterdir()) == []
    store.close()
