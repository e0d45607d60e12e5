"""The app-side gallery builder (bot.gallery_builder) with a fake engine, and the commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import AppConfig
from bot.gallery_builder import add_images, collect, ensure_seed_gallery, search_text
from store import StaleGalleryError, StoreConfig, open_store
from store.schema import head_revision
from tests.fake_engine import FakeEngine
from tests.store.conftest import png

SEED = Path(__file__).resolve().parents[2] / "gallery" / "default"


def _app(data: Path) -> AppConfig:
    config = AppConfig()
    store = replace(config.store, data_dir=str(data),
                    gallery=replace(config.store.gallery, seed_folder=str(SEED)))
    return replace(config, store=store)


def test_shipped_gallery_is_small_and_cited() -> None:
    files = [p for p in SEED.iterdir() if p.suffix == ".jpg"]
    assert 30 <= len(files) <= 60
    assert sum(p.stat().st_size for p in SEED.iterdir()) <= 5 * 1024 * 1024
    captions = json.loads((SEED / "captions.json").read_text())["images"]
    assert {c["file"] for c in captions} == {p.name for p in files}
    assert "Lu" in (SEED / "README.md").read_text()


def test_seed_gallery_indexed_once_then_rebuilt_for_new_bridge(tmp_path: Path) -> None:
    config = _app(tmp_path / "data")
    store = open_store(config.store)
    engine = FakeEngine(bridge_id="bridge-a")
    assert ensure_seed_gallery(store, engine, config) == 40
    assert ensure_seed_gallery(store, engine, config) == 0
    assert store.gallery.stats().labels.get("airport", 0) >= 1
    hits = search_text(store, engine, "an airport", 5)
    assert len(hits) == 5 and all(h.caption for h in hits)

    newer = FakeEngine(bridge_id="bridge-b")
    with pytest.raises(StaleGalleryError):
        search_text(store, newer, "an airport", 5)
    assert engine.gallery_embed_calls == 40
    assert ensure_seed_gallery(store, newer, config) == 40
    assert newer.gallery_embed_calls == 0  # cached gallery embeddings reused
    assert store.gallery.bridge_id == "bridge-b" and len(search_text(store, newer, "x", 3)) == 3
    store.close()


def test_a_bridge_with_wider_search_vectors_rebuilds_the_seed_gallery(tmp_path: Path) -> None:
    class WiderEngine(FakeEngine):
        search_dim = FakeEngine.search_dim + 4  # as hubness coordinates widened the real one

    config = _app(tmp_path / "data")
    store = open_store(config.store)
    assert ensure_seed_gallery(store, FakeEngine(bridge_id="bridge-a"), config) == 40
    wider = WiderEngine(bridge_id="bridge-b")
    assert ensure_seed_gallery(store, wider, config) == 40
    assert store.gallery.stats().dim == wider.search_dim
    assert len(search_text(store, wider, "an airport", 5)) == 5
    store.close()
    reopened = open_store(config.store)
    assert len(search_text(reopened, wider, "an airport", 5)) == 5
    reopened.close()


def test_add_is_resumable_and_reads_annotation_files(tmp_path: Path) -> None:
    folder = tmp_path / "imgs" / "images"
    folder.mkdir(parents=True)
    for i in range(5):
        (folder / f"{i}.png").write_bytes(png(i))
    (folder / "broken.png").write_bytes(b"not an image")
    annotations = tmp_path / "imgs" / "dataset.json"
    annotations.write_text(json.dumps({"images": [
        {"filename": f"{i}.png", "label": "beach", "sentences": [{"raw": f"beach {i} ."}]}
        for i in range(3)]}))
    store = open_store(StoreConfig(data_dir=str(tmp_path / "data")))
    engine = FakeEngine()
    first = add_images(store, engine, collect([annotations]))
    assert (first.added, first.skipped) == (3, 0)
    again = add_images(store, engine, collect([folder]))
    assert (again.added, again.skipped, again.failed) == (2, 3, 1)
    assert store.gallery.stats().labels == {"beach": 3, "?": 2}
    store.close()


def test_db_and_gallery_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAPRET_DATABASE_URL", raising=False)
    config = tmp_path / "c.yaml"
    config.write_text(f"store:\n  data_dir: {tmp_path / 'data'}\n")
    assert main(["--config", str(config), "db", "status"]) == 1
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert main(["--config", str(config), "db", "status"]) == 0
    assert main(["--config", str(config), "gallery", "stats"]) == 0
    out = capsys.readouterr().out
    assert "behind" in out and f"schema at {head_revision()}" in out and "0 images" in out


