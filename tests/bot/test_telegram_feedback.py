"""👍/👎 under descriptions on a real store: kept, acknowledged, changeable, exported, forgotten."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import BotRunner, jpeg
from tests.bot.real_store import open_filled, real_service, store_config
from tests.fake_engine import FakeEngine

USER = 111


def keyboard(api: BotApiStub) -> dict[str, Any]:
    return api.sent("editMessageReplyMarkup", USER)[-1].params["reply_markup"]


async def tap(api: BotApiStub, data: str, count: int) -> None:
    message_id = api.sent("editMessageReplyMarkup", USER)[0].params["message_id"]
    await api.push_callback(USER, data, api.bot_message(USER, int(message_id)))
    await api.wait_for(lambda: len(api.sent("answerCallbackQuery", USER)) >= count
                       or len(api.sent("answerCallbackQuery")) >= count)


async def test_rating_a_description(
    api: BotApiStub, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = FakeEngine()
    store = open_filled(tmp_path, engine)
    runner = BotRunner(api)
    await runner.start(real_service(store, engine))
    try:
        await api.push_photo(USER, jpeg(), caption="what is it?")
        await api.wait_for(lambda: bool(api.sent("editMessageReplyMarkup", USER)))
        buttons = keyboard(api)["inline_keyboard"][0]
        assert [b["text"] for b in buttons] == ["👍", "👎"]
        await tap(api, buttons[0]["callback_data"], 1)
        await tap(api, buttons[1]["callback_data"], 2)  # changed mind
        await api.push_text(USER, "/export")
        await api.wait_for(lambda: bool(api.sent("sendDocument", USER)))
    finally:
        await runner.stop()
    answers = [c.params.get("text") for c in api.sent("answerCallbackQuery")]
    assert answers == ["Thanks, noted: 👍", "Thanks, noted: 👎"]
    assert [b["text"] for b in keyboard(api)["inline_keyboard"][0]] == ["👍", "👎 ✓"]
    archive = zipfile.ZipFile(io.BytesIO(next(iter(api.sent("sendDocument")[0].files.values()))))
    exported = json.loads(archive.read("data.json"))
    assert [f["rating"] for f in exported["feedback"]] == [-1]

    turn_id = int(buttons[0]["callback_data"].split(":")[1])
    uid = store.repo.get_or_create_user("telegram", str(USER)).id
    store.feedback.rate(uid, turn_id, 1)
    store.close()
    config = tmp_path / "c.yaml"
    config.write_text(f"store:\n  data_dir: {store_config(tmp_path).data_dir}\n")
    monkeypatch.setenv("CAPRET_LOG_FILE", str(tmp_path / "log.txt"))
    monkeypatch.delenv("CAPRET_DATABASE_URL", raising=False)
    out = tmp_path / "fb" / "dataset_feedback.json"
    assert main(["--config", str(config), "feedback", "export", "--out", str(out)]) == 0
    images = json.loads(out.read_text())["images"]
    assert len(images) == 1 and images[0]["split"] == "train"
    assert images[0]["sentences"][0]["raw"].startswith("I see 1 image")
    assert (out.parent / "dataset_feedback_images" / images[0]["filename"]).is_file()
