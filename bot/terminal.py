"""The terminal transport: the same service and commands as Telegram, in a shell.

``/image PATH [question]`` attaches an image; search results are saved as a contact sheet PNG
and printed as paths with scores.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import AppConfig
from bot.contact_sheet import contact_sheet
from bot.errors import UserFacingError
from bot.help_text import HELP
from bot.replies import Reply
from bot.service.user_ref import UserRef

if TYPE_CHECKING:  # the service imports torch: the prompt must not wait for it
    from bot.service.conversation import ConversationService

PROMPT = "you> "
TERMINAL_HELP = HELP + "\n\nIn the terminal: /image PATH [question] attaches an image; " \
    "/similar [PATH]; /tiles and /export save files and print their paths; /quit leaves."
# Every command the terminal answers: its replies name no other (tests/bot/test_command_names.py).
COMMANDS = frozenset({"/quit", "/exit", "/reset", "/history", "/help", "/start", "/about",
                      "/forget", "/export", "/tiles", "/image", "/search", "/more", "/similar"})


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
        elif command in ("/export", "/tiles"):
            await self._save_file(command)
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

    async def _save_file(self, command: str) -> None:
        """/export (the person's data, a zip) or /tiles (the newest large scene's grid, a PNG)."""
        if command == "/export":
            path = self._save("export", await self.service.export(self.user), "zip")
            self.write(f"capret> saved {path}")
        else:
            path = self._save("tiles", await self.service.tiles(self.user), "png")
            self.write(f"capret> tile sheet: {path}")

    def _save(self, stem: str, data: bytes, suffix: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.{suffix}"
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


GREETING = "RS-CapRet terminal chat: /help for what I can do, /quit to leave."
LOADING = "capret> (loading the model: this first reply takes a few seconds more)"


async def chat_while_loading(load: Callable[[], ConversationService], out_dir: Path,
                             write: Callable[[str], None] = print) -> int:
    """Read lines from stdin until /quit or end of input; the prompt comes at once and ``load``
    (the service: engine and store) runs in a thread meanwhile.

    Loading the engine and the store takes seconds, about the time it takes to type the first
    message: the first message waits for what is left of it. A failed load ends the chat at
    once with its error, even while the prompt is waiting for a line.
    """
    write(GREETING)
    prompted = asyncio.Event()
    first = asyncio.ensure_future(_read_line(prompted))
    # Loading imports torch, whose native libraries load holding the GIL: start it only once
    # the prompt is on the screen.
    await prompted.wait()
    loading = asyncio.ensure_future(asyncio.to_thread(load))
    await asyncio.wait({loading, first}, return_when=asyncio.FIRST_COMPLETED)
    error = loading.exception() if loading.done() else None
    if error is not None:
        first.cancel()
        raise error
    line = await first
    if not loading.done():
        write(LOADING)
    service = await loading
    try:
        terminal = TerminalChat(service, out_dir, write)
        if line is None or not await terminal.handle(line):
            return 0
        return await _until_quit(terminal)
    finally:
        service.close()


async def _until_quit(terminal: TerminalChat) -> int:
    while (line := await _read_line()) is not None:
        if not await terminal.handle(line):
            break
    return 0


async def _read_line(prompted: asyncio.Event | None = None) -> str | None:
    """One line from stdin after the prompt (None at its end), read in a daemon thread: a chat
    that ends while the prompt waits must not wait for Enter before the process can exit.
    ``prompted`` is set once the prompt is written.
    """
    loop = asyncio.get_running_loop()
    result: asyncio.Future[str | None] = loop.create_future()

    def deliver(line: str | None) -> None:
        if not result.done():  # not cancelled meanwhile
            result.set_result(line)

    def read() -> None:
        sys.stdout.write(PROMPT)
        sys.stdout.flush()
        if prompted is not None:
            loop.call_soon_threadsafe(prompted.set)
        try:
            line: str | None = input()
        except EOFError:
            line = None
        with contextlib.suppress(RuntimeError):  # the chat (and its loop) ended meanwhile
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, name="capret-stdin", daemon=True).start()
    return await result


def run_terminal(config: AppConfig) -> int:
    """The terminal chat over the configured engine and store, loaded behind the prompt."""

    def load() -> ConversationService:
        from bot.app import build_service  # imports torch: in the loading thread, not before

        return build_service(config)

    return asyncio.run(chat_while_loading(load, Path(config.store.data_dir) / "terminal"))
