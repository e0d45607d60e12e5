"""The terminal transport drives the same service; results become a contact sheet."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bot.service.conversation import ConversationService
from bot.terminal import TerminalChat
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
