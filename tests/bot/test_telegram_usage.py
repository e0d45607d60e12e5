"""Daily limits and /stats over Telegram on a real store: counted, refused politely, kept."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from bot.service.conversation import ConversationService
from bot.service.store_adapter import StoreAdapter
from bot.usage import UsageGuard, admin_ids
from store import Store
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import TEST_BOT, BotRunner
from tests.bot.real_store import open_filled
from tests.fake_engine import FakeEngine

USER, ADMIN = 91, 92
NIGHT = datetime(2026, 11, 29, 21, 30, tzinfo=UTC)
LIMITED = dataclasses.replace(TEST_BOT, daily_model_calls=2, daily_upload_mb=0.05)


async def start(api: BotApiStub, store: Store, engine: FakeEngine) -> BotRunner:
    adapter = StoreAdapter(store, engine.search_id)
    service = ConversationService(engine, adapter, LIMITED, observe=store.usage.record_call)
    usage = UsageGuard(store.usage, LIMITED, frozenset({ADMIN}), clock=lambda: NIGHT)
    runner = BotRunner(api)
    await runner.start(service, LIMITED, usage)
    return runner


def done(api: BotApiStub, chat: int) -> list[str]:
    return [t for t in api.texts(chat) if not t.endswith("…")]


def noise_png() -> bytes:
    pixels = np.random.default_rng(3).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()  # ~120 KB: past a 0.05 MB daily upload limit


async def test_limits_refuse_politely_and_survive_a_restart(
    api: BotApiStub, tmp_path: Path
) -> None:
    engine = FakeEngine()
    store = open_filled(tmp_path, engine)
    runner = await start(api, store, engine)
    try:
        for question in ("one?", "two?", "three?"):
            await api.push_text(USER, question)
        for question in ("one?", "two?", "three?"):
            await api.push_text(ADMIN, question)
        await api.push_document(ADMIN + 1, noise_png(), "big.png", "image/png")
        await api.wait_for(lambda: len(done(api, USER)) == 3 and len(done(api, ADMIN)) == 3
                           and bool(done(api, ADMIN + 1)))
    finally:
        await runner.stop()
    refusal = done(api, USER)[-1]
    assert refusal.startswith("You have used today's 2 requests to the model.")
    assert "resets at 00:00 UTC (in 2 h 30 min)" in refusal
    assert all(t.startswith("I see") for t in done(api, ADMIN)), "admins are not limited"
    assert "upload limit of 0.05 MB" in done(api, ADMIN + 1)[0]
    assert engine.generate_calls == 5
    store.close()
    store = open_filled(tmp_path, engine)  # a restart: the counts are in the database
    runner = await start(api, store, engine)
    try:
        await api.push_text(USER, "four?")
        await api.wait_for(lambda: len(done(api, USER)) == 4)
    finally:
        await runner.stop()
        store.close()
    assert done(api, USER)[-1].startswith("You have used today's 2 requests")
    assert engine.generate_calls == 5


async def test_stats_for_admins_only(api: BotApiStub, tmp_path: Path) -> None:
    engine = FakeEngine()
    store = open_filled(tmp_path, engine)
    runner = await start(api, store, engine)
    try:
        await api.push_text(USER, "what is here?")
        await api.wait_for(lambda: bool(done(api, USER)))
        await api.push_text(USER, "/stats")
        await api.push_text(ADMIN, "/stats")
        await api.push_text(ADMIN, "/help")
        await api.wait_for(lambda: len(done(api, USER)) == 2 and len(done(api, ADMIN)) == 2)
    finally:
        await runner.stop()
        store.close()
    assert done(api, USER)[-1] == "/stats is for the bot's admins."
    stats, help_text = done(api, ADMIN)
    assert "People who used the model: 1 (1 today)" in stats
    assert "Turns stored: 2" in stats and "Gallery: 12 images" in stats
    assert "Model calls: p50 0." in stats and "(newest 1)" in stats
    assert "/stats" in help_text


def test_ledger_check_and_charge(tmp_path: Path) -> None:
    store = open_filled(tmp_path, FakeEngine())
    day = date(2026, 11, 29)
    ledger = store.usage
    assert ledger.charge("telegram:1", day, model_calls=1, max_calls=2) is not None
    assert ledger.charge("telegram:1", day, model_calls=1, max_calls=2) is not None
    assert ledger.charge("telegram:1", day, model_calls=1, max_calls=2) is None
    assert ledger.charge("telegram:1", date(2026, 11, 30), model_calls=1, max_calls=2)
    assert ledger.used("telegram:1", day).model_calls == 2
    store.close()


def test_admin_ids_from_the_environment() -> None:
    assert admin_ids("12, 34 56") == frozenset({12, 34, 56})
    assert admin_ids("") == frozenset()
