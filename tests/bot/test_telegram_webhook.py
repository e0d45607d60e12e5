"""Webhook mode (issue 29): it does not start without a secret token, and the real
python-telegram-bot webhook server, set up as `capret run` sets it up, handles only the updates
that carry that token.
"""

from __future__ import annotations

import socket

import aiohttp
import pytest

from bot.config import AppConfig
from bot.environment import BOT_TOKEN_ENV, WEBHOOK_SECRET_ENV
from bot.service.conversation import ConversationService
from bot.telegram.main import build_application, run_telegram
from bot.telegram.webhook import webhook_options
from tests.bot.bot_api_stub import BotApiStub
from tests.bot.conftest import with_bot

USER = 45
SECRET = "s3cret-token_" + "x" * 20
HEADER = "X-Telegram-Bot-Api-Secret-Token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_mode_does_not_start_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(BOT_TOKEN_ENV, "123:TEST")
    monkeypatch.delenv(WEBHOOK_SECRET_ENV, raising=False)
    config = AppConfig(bot=with_bot(webhook_url="https://bot.example.org"))
    assert run_telegram(config) == 2
    assert f"webhook mode needs {WEBHOOK_SECRET_ENV}" in caplog.text
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, "guessable")
    assert run_telegram(config) == 2
    assert "too short" in caplog.text


async def test_the_webhook_handles_only_updates_with_the_secret_token(
    api: BotApiStub, service: ConversationService
) -> None:
    config = with_bot(webhook_url="https://bot.example.org/", webhook_port=free_port())
    app = build_application(service, config, api.token, api.root)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_webhook(**webhook_options(config, SECRET))
    url = f"http://127.0.0.1:{config.webhook_port}/{config.webhook_path}"
    try:
        async with aiohttp.ClientSession() as http:
            for update_id, headers in ((1, {}), (2, {HEADER: SECRET[:-1] + "y"})):
                update = {"update_id": update_id,
                          "message": api.user_message(USER, text=f"forged {update_id}")}
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 403
            update = {"update_id": 3, "message": api.user_message(USER, text="hello")}
            async with http.post(url, json=update, headers={HEADER: SECRET}) as response:
                assert response.status == 200
        await api.wait_for(lambda: any(not t.endswith("…") for t in api.texts(USER)))
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    registered = api.sent("setWebhook")[0].params
    assert registered["secret_token"] == SECRET
    assert registered["url"] == "https://bot.example.org/telegram"
    assert len(api.sent("sendMessage", USER)) == 1, "only the update with the token answered"
