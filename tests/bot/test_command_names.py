"""What the bot says about itself is true where it says it: every command a transport's replies
name is one that transport answers (a terminal reply naming a Telegram-only command, or the
reverse, would send the person to "unknown command").
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from PIL import Image

from bot.service.conversation import ConversationService
from bot.telegram.main import COMMANDS as TELEGRAM
from bot.terminal import COMMANDS as TERMINAL
from bot.terminal import TerminalChat
from tests.bot.test_telegram_tiles import mosaic
from tests.paths import PROJECT

BOT = PROJECT / "bot"
# A command as a reply names it: "/tiles", "/search@{bot}"; not a path or a URL's part.
COMMAND = re.compile(r"(?<![\w/.:~-])/([a-z]+)\b(?![/.\w])")
# Transport-free reply texts: the service and the modules it and both transports use.
SHARED = [p for p in BOT.glob("*.py") if p.name != "terminal.py"] + list(
    (BOT / "service").glob("*.py"))
# Telegram's wiring: URLs and settings, no replies ("/bot<token>" is an API path).
TELEGRAM_WIRING = {"main.py", "request.py", "webhook.py"}


def _texts(path: Path) -> list[str]:
    """Every string literal of a module but its docstrings (f-strings' literal parts too)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def _named(paths: list[Path]) -> dict[str, set[str]]:
    """Command -> the modules whose texts name it."""
    out: dict[str, set[str]] = {}
    for path in paths:
        for text in _texts(path):
            for name in COMMAND.findall(text):
                out.setdefault(f"/{name}", set()).add(str(path.relative_to(PROJECT)))
    return out


def test_terminal_replies_name_only_terminal_commands() -> None:
    named = _named([*SHARED, BOT / "terminal.py"])
    assert {"/tiles", "/search", "/image", "/quit"} <= set(named)  # the scan sees them
    unknown = {c: sorted(m) for c, m in named.items() if c not in TERMINAL}
    assert not unknown, f"the terminal does not answer these: {unknown}"


def test_telegram_replies_name_only_telegram_commands() -> None:
    telegram = [p for p in (BOT / "telegram").glob("*.py") if p.name not in TELEGRAM_WIRING]
    named = _named([*SHARED, *telegram])
    assert {"/tiles", "/search", "/stats", "/forget"} <= set(named)
    unknown = {c: sorted(m) for c, m in named.items() if c.removeprefix("/") not in TELEGRAM}
    assert not unknown, f"Telegram does not answer these: {unknown}"


@pytest.mark.parametrize("command", sorted(TERMINAL - {"/quit", "/exit"}))
async def test_the_terminal_answers_each_of_its_commands(
    service: ConversationService, tmp_path: Path, command: str
) -> None:
    out: list[str] = []
    assert await TerminalChat(service, tmp_path, out.append).handle(command)
    assert out and not any("unknown command" in line for line in out), out


async def test_a_large_scene_s_tiles_in_the_terminal(service: ConversationService,
                                                   tmp_path: Path) -> None:
    scene, _ = mosaic()
    path = tmp_path / "scene.png"
    path.write_bytes(scene)
    out: list[str] = []
    chat = TerminalChat(service, tmp_path, out.append)
    await chat.handle(f"/image {path}")
    assert out[-1].endswith("(/tiles shows every tile with its caption.)")
    await chat.handle("/tiles")
    sheet = Path(out[-1].split("tile sheet: ")[1])
    assert Image.open(sheet).format == "PNG"
