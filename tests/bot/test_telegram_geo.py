"""Georeferenced scenes over Telegram on a real store: the footprint in the reply and kept."""

from __future__ import annotations

from pathlib import Path

from bot.images import decode_image
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import BotRunner, jpeg
from tests.bot.real_store import open_filled, real_service
from tests.bot.test_geo import LIMITS, geotiff
from tests.fake_engine import FakeEngine

USER = 81


def finished(api: BotApiStub, chat: int) -> list[str]:
    return [t for t in api.texts(chat) if t.startswith("I see") and not t.endswith("…")]


async def test_geotiff_reply_has_its_place_and_the_store_keeps_it(
    api: BotApiStub, tmp_path: Path
) -> None:
    engine = FakeEngine()
    store = open_filled(tmp_path, engine)
    runner = BotRunner(api)
    await runner.start(real_service(store, engine))
    scene = geotiff(32632, (500_000.0, 5_160_000.0), 10.0, shape=(200, 300), projected=True)
    broken = geotiff(4326, (6.5, 46.6), 0.0001, keys=[1, 1, 0, 9, 1024, 0, 1, 2])
    try:
        await api.push_document(USER, scene, "scene.tif", "image/tiff")
        await api.push_document(USER, broken, "broken.tif", "image/tiff")
        await api.push_photo(USER, jpeg())
        await api.wait_for(lambda: len(finished(api, USER)) == 3)
    finally:
        await runner.stop()
    geo, bad, photo = finished(api, USER)
    assert "Location (from the file's georeferencing): centre 46.58" in geo
    assert "EPSG:32632 (WGS 84 / UTM zone 32N)" in geo and "3.00 km × 2.00 km" in geo
    assert "could not read its location (truncated GeoKey directory)" in bad
    assert "Location" not in photo and "location" not in photo
    sha = decode_image(scene, **LIMITS).sha256
    kept = store.footprints.get(sha)
    store.close()
    assert kept is not None and kept["epsg"] == 32632 and kept["width_m"] > 2990
