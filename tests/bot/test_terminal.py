"""The terminal transport drives the same service; results become a contact sheet."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from PIL import Image

from bot.errors import UserFacingError
from bot.service.conversation import ConversationService
from bot.terminal import GREETING, LOADING, TerminalChat, chat_while_loading
from tests.bot.conftest import RSICD


async def test_terminal_session(service: ConversationService, tmp_path: Path) -> None:
    out: list[str] = []
    chat = TerminalChat(service, tmp_path, out.append)
    assert await chat.handle(f"/image {RSICD / '00010.jpg'} what is this?")
    assert out[-1].startswith("capret> I see 1 image")
    await chat.handle("is it busy?")
    await chat.handle("/search airport")
    sheet = Path(out[-1].split("contact sheet: ")[1])
    assert Image.open(sheet).size[0] == 4 * 224
    assert sum(" — " not in line and line.startswith("  0.") or line.startswith("  -")
               for line in out) == 4
    await chat.handle("/more")
    await chat.handle("/similar")
    await chat.handle("/image /no/such/file.png")
    assert "Usage: /image" in out[-1]
    await chat.handle("/export")
    assert Path(out[-1].split("saved ")[1]).is_file()
    await chat.handle("/forget")
    await chat.handle("yes")
    assert "deleted" in out[-1]
    assert not await chat.handle("/quit")


async def test_prompt_comes_before_the_model_has_loaded(
        service: ConversationService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The greeting and prompt do not wait for the load; the first line waits for it, is
    answered, and the service is closed when the chat ends.
    """
    release, asked = threading.Event(), threading.Event()
    lines = iter(["what can you do with satellite images?", "/quit"])

    def read(prompt: str = "") -> str:
        asked.set()
        return next(lines)

    def load() -> ConversationService:
        assert asked.wait(10), "the prompt waited for the load"
        release.wait(10)
        return service

    closed: list[bool] = []
    monkeypatch.setattr(service, "close", lambda: closed.append(True))
    monkeypatch.setattr("builtins.input", read)
    out: list[str] = []
    chatting = asyncio.ensure_future(chat_while_loading(load, tmp_path, out.append))
    while not asked.is_set():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert out == [GREETING, LOADING]  # the first line was read and waits for the load
    release.set()
    assert await asyncio.wait_for(chatting, 10) == 0
    assert out[2].startswith("capret> ") and len(out) == 3  # the answer, then /quit
    assert closed == [True]


async def test_a_failed_load_ends_the_chat_while_the_prompt_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    never = threading.Event()
    monkeypatch.setattr("builtins.input", lambda prompt="": never.wait() and "")

    def load() -> ConversationService:
        raise UserFacingError("no trained bridge")

    with pytest.raises(UserFacingError, match="no trained bridge"):
        await asyncio.wait_for(chat_while_loading(load, tmp_path, lambda text: None), 10)
