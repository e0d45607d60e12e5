"""Account commands over Telegram: /reset, /history, /export, /forget (confirmed), /about."""

from __future__ import annotations

import io
import zipfile

from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import BotRunner, jpeg

USER = 51


async def test_history_reset_about(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_photo(USER, jpeg(), caption="what is it?")
    await api.push_text(USER, "/history")
    await api.push_text(USER, "/reset")
    await api.push_text(USER, "/history")
    await api.push_text(USER, "/about")
    # The 12 public images and the photo, now the chat's own (the real store counts both).
    await api.wait_for(lambda: any("Gallery: 13 images" in t for t in api.texts(USER)))
    texts = api.texts(USER)
    assert any(t.startswith("You: what is it? [image]") for t in texts)
    assert any(t.startswith("New conversation") for t in texts)
    assert "This conversation is empty." in texts


async def test_export_sends_an_archive(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_photo(USER, jpeg())
    await api.push_text(USER, "/export")
    await api.wait_for(lambda: bool(api.sent("sendDocument", USER)))
    data = next(iter(api.sent("sendDocument", USER)[0].files.values()))
    assert "data.json" in zipfile.ZipFile(io.BytesIO(data)).namelist()


async def test_forget_needs_confirmation(api: BotApiStub, bot: BotRunner) -> None:
    await api.push_text(USER, "what do you see?")
    await api.push_text(USER, "/forget")
    await api.wait_for(lambda: any("reply_markup" in c.params for c in api.sent("sendMessage")))
    question = next(c for c in api.sent("sendMessage") if "reply_markup" in c.params)
    await api.press(USER, question, "Cancel")
    await api.wait_for(lambda: any(t == "Nothing was deleted." for t in api.texts(USER)))
    await api.press(USER, question, "Yes")
    await api.wait_for(lambda: len(api.sent("answerCallbackQuery")) == 2
                       and any("deleted everything" in t for t in api.texts(USER)))
    await api.push_text(USER, "/history")
    await api.wait_for(lambda: "This conversation is empty." in api.texts(USER))
