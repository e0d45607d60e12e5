"""A real ``store`` (fresh SQLite, image files, FAISS gallery) for service and transport tests."""

from __future__ import annotations

from pathlib import Path

from bot.gallery_builder import add_images
from bot.service.conversation import ConversationService
from bot.service.store_adapter import StoreAdapter
from engine.training.data import CaptionedImage
from store import GalleryConfig, Store, StoreConfig, open_store
from tests.bot.conftest import GALLERY, RSICD, TEST_BOT
from tests.fake_engine import FakeEngine


def store_config(folder: Path, private_cap: int = 1000) -> StoreConfig:
    return StoreConfig(data_dir=str(folder), context_turns=12, context_images=4,
                       gallery=GalleryConfig(index="flat", private_cap=private_cap))


def open_filled(folder: Path, engine: FakeEngine, private_cap: int = 1000,
                database_url: str | None = None) -> Store:
    """Open the store in ``folder`` (its database at ``database_url``, default SQLite there);
    index the 12 test gallery images when it is empty.
    """
    store = open_store(store_config(folder, private_cap), database_url)
    if len(store.gallery) == 0:
        sources = [CaptionedImage(RSICD / name, label=label) for name, label in GALLERY]
        assert add_images(store, engine, sources).added == len(GALLERY)
        engine.embed_calls = engine.gallery_embed_calls = 0
    return store


def real_service(store: Store, engine: FakeEngine) -> ConversationService:
    adapter = StoreAdapter(store, engine.search_id, engine.score_scale)
    return ConversationService(engine, adapter, TEST_BOT, description="Test model")
