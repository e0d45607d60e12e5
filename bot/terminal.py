"""The terminal transport: the same service and commands as Telegram, in a shell.

``/image PATH [question]`` attaches an image; search results are saved as a contact sheet PNG
and printed as paths with scores.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from bot.config import AppConfig
from bot.contact_sheet import contact_sheet
from bot.errors import UserFacingError
from bot.help_text import HELP
from bot.replies import Reply
from bot.service.conversation import ConversationService, UserRef

PROMPT = "you> "
TERMINAL_HELP = HELP + "\n\nIn the terminal: /image PATH [question] attaches an image; " \
    "/similar [PATH]; /quit leaves."


class TerminalChat:
    """Reads lines, calls the service, prints replies; one user (the person at the terminal)."""

    def __init__(
        self, service: ConversationService, out_dir: Path, write: Callable[[str], None] = print,
        user: UserRef | None = None,
    ) -> None:
        self.service = service
        self.out_dir = out_dir
        self.write = write
        self.user = user or UserRef("terminal", "local", "terminal user")
        self._confirm_forget = False
        self._sheets = 0

    async def handle(self, line: str) -> bool:
        """Handle one input line; False when the user asked to quit."""
        line = line.strip()
        try:
            return await self._dispatch(line)
        except UserFacingError as exc:
            self.write(f"capret> {exc}")
        except OSError as exc:
            self.write(f"capret> cannot read that file: {exc}")
        return True

    async def _dispatch(self, line: str) -> bool:
        command, _, rest = line.partition(" ") if line.startswith("/") else ("", "", line)
        confirm, self._confirm_forget = self._confirm_forget, False
        if command in ("/quit", "/exit"):
            return False
        simple = {"/reset": self.service.reset, "/history": self.service.history}
        if command in simple:
            self.write(await simple[command](self.user))
        elif command in ("/help", "/start"):
            self.write(TERMINAL_HELP)
        elif command == "/about":
            self.write(await self.service.about())
        elif command == "/forget":
            self._confirm_forget = True
            self.write("capret> Delete everything about you? Type 'yes' to confirm.")
        elif confirm and line.lower() == "yes":
            self.write(await self.service.forget(self.user))
        elif command == "/export":
            archive = await self.service.export(self.user)
            self.write(f"capret> saved {self._save('export', archive)}")
        else:
            await self._converse(command, rest)
        return True

    async def _converse(self, command: str, rest: str) -> None:
        if command == "/image":
            paths, question = _split_image_args(rest)
            uploads = [Path(p).expanduser().read_bytes() for p in paths]
            await self._show(await self.service.ask(self.user, question, uploads))
        elif command == "/search":
            await self._show(await self.service.search(self.user, rest))
        elif command == "/more":
            await self._show(await self.service.more(self.user))
        elif command == "/similar":
            upload = Path(rest).expanduser().read_bytes() if rest else None
            await self._show(await self.service.similar(self.user, upload))
        elif command:
            self.write(f"capret> unknown command {command}: try /help")
        else:
            await self._show(await self.service.ask(self.user, rest))

    async def _show(self, reply: Reply) -> None:
        self.write(f"capret> {reply.text}")
        if not reply.hits:
            return
        self._sheets += 1
        sheet = self.out_dir / f"results-{time.strftime('%Y%m%d-%H%M%S')}-{self._sheets}.png"
        contact_sheet(reply.hits, sheet)
        for hit in reply.hits:
            self.write(f"  {hit.score:.3f}  {hit.label}  {hit.path}")
        self.write(f"  contact sheet: {sheet}")

    def _save(self, stem: str, data: bytes) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        path.write_bytes(data)
        return path


def _split_image_args(rest: str) -> tuple[list[str], str]:
    """``/image a.tif b.png what changed?``: leading existing paths, then the question."""
    words = shlex.split(rest)
    paths = []
    while words and Path(words[0]).expanduser().is_file():
        paths.append(words.pop(0))
    if not paths:
        raise UserFacingError("Usage: /image PATH [question] (the file was not found)")
    return paths, " ".join(words)


async def chat(service: ConversationService, out_dir: Path) -> int:
    """Read lines from stdin until /quit or end of input."""
    terminal = TerminalChat(service, out_dir)
    terminal.write("RS-CapRet terminal chat: /help for what I can do, /quit to leave.")
    while True:
        try:
            line = await asyncio.to_thread(input, PROMPT)
        except EOFError:
            return 0
        if not await terminal.handle(line):
            return 0


def run_terminal(config: AppConfig) -> int:
    """The terminal chat over the configured engine and store."""
    from bot.app import build_service

    service = build_service(config)
    try:
        return asyncio.run(chat(service, Path(config.store.data_dir) / "terminal"))
    finally:
        service.close()
