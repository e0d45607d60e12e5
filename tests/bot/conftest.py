"""Bot test fixtures: a fake engine, an in-memory store with a small real gallery, the Bot API
stand-in, and a harness running the real python-telegram-bot Application against it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from telegram.ext import Application

from bot.bot_config import BotConfig
from bot.service.conversation import ConversationService
from bot.telegram.main import build_application
from bot.usage import UsageGuard
from engine.types import ImagePart, Turn
from store import Store
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.memory_store import MemoryState, MemoryStore
from tests.fake_engine import FakeEngine
from tests.paths import RSICD_IMAGES, SHARED_DATA

RSICD = RSICD_IMAGES
SAMPLES = SHARED_DATA / "samples"
GALLERY = [("00001.jpg", "playfields"), ("00002.jpg", "playfields"), ("00010.jpg", "airport"),
           ("00020.jpg", "bridge"), ("00030.jpg", "storagetanks"), ("00040.jpg", "viaduct"),
           ("00050.jpg", "stadium"), ("00060.jpg", "square"), ("00070.jpg", "harbor"),
           ("00080.jpg", "beach"), ("00090.jpg", "forest"), ("00100.jpg", "river")]
TEST_BOT = BotConfig(
    send_rate_per_s=10_000, album_wait_s=0.3, stream_edit_interval_s=0.05,
    rate_limit_messages=100, rate_limit_window_s=10.0, max_queued_per_chat=20,
    max_concurrent_model_calls=4, typing_delay_s=0.0,
)


def image_shas(turn: Turn) -> list[str]:
    """The images of a turn, in order."""
    return [p.sha256 for p in turn.parts if isinstance(p, ImagePart)]


def jpeg(name: str = "00001.jpg") -> bytes:
    return (RSICD / name).read_bytes()


def fill_gallery(store: MemoryStore, engine: FakeEngine) -> None:
    for name, label in GALLERY:
        image = Image.open(RSICD / name).convert("RGB")
        vector = engine.gallery_rows(engine.embed_for_gallery([image]))[0]
        store.add_gallery(label, RSICD / name, vector)
    engine.gallery_embed_calls = 0


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def state() -> MemoryState:
    return MemoryState()


@pytest.fixture
def store(state: MemoryState, engine: FakeEngine) -> MemoryStore:
    store = MemoryStore(state)
    fill_gallery(store, engine)
    return store


@pytest.fixture
def service(engine: FakeEngine, store: MemoryStore) -> ConversationService:
    return ConversationService(engine, store, TEST_BOT, description="Test model")


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    stub = BotApiStub()
    await stub.start()
    yield stub
    await stub.stop()


class BotRunner:
    """Starts and stops the real Application polling the stand-in."""

    def __init__(self, api: BotApiStub) -> None:
        self.api = api
        self.app: Application | None = None

    async def start(self, service: ConversationService, config: BotConfig = TEST_BOT,
                    usage: UsageGuard | None = None) -> None:
        self.app = build_application(service, config, self.api.token, self.api.root, usage)
        await self.app.initialize()
        await self.app.start()
        assert self.app.updater is not None
        await self.app.updater.start_polling(poll_interval=0.0, timeout=1)

    async def stop(self) -> None:
        if self.app is None:
            return
        app, self.app = self.app, None
        assert app.updater is not None
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


@pytest.fixture
async def bot(api: BotApiStub, service: ConversationService) -> AsyncIterator[BotRunner]:
    runner = BotRunner(api)
    await runner.start(service)
    yield runner
    await runner.stop()


@pytest.fixture
def real_store(tmp_path: Path, engine: FakeEngine) -> Iterator[Store]:
    """A fresh real store (SQLite, FAISS, blobs) with the seed gallery indexed."""
    from tests.bot.real_store import open_filled  # real_store.py imports this module

    store = open_filled(tmp_path, engine)
    yield store
    store.close()


@pytest.fixture
def svc(real_store: Store, engine: FakeEngine) -> ConversationService:
    """The conversation service on ``real_store``."""
    from tests.bot.real_store import real_service

    return real_service(real_store, engine)


def with_bot(**changes: Any) -> BotConfig:
    return dataclasses.replace(TEST_BOT, **changes)
