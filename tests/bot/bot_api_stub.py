"""A local stand-in of the Telegram Bot API: an aiohttp server on 127.0.0.1 that records calls.

It implements what the bot uses (getMe, getUpdates, sendMessage, editMessageText, sendChatAction,
getFile + file download, sendPhoto, sendMediaGroup, sendDocument, answerCallbackQuery,
getChatMember, ...) with
``<root>/bot<token>/<method>`` and ``<root>/file/bot<token>/<path>``. Tests push updates and
assert on the recorded calls.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

BOT_USER: dict[str, Any] = {"id": 999, "is_bot": True, "first_name": "CapRet",
                            "username": "capret_test_bot"}
TELEGRAM_FILE_LIMIT = 20 * 1024 * 1024
MAX_POLL_S = 1.0


@dataclass
class Call:
    """One request the bot made: method, form fields (JSON decoded where possible), files."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None


def _entities(text: str) -> list[dict[str, Any]]:
    """bot_command at the start and every @mention, as Telegram marks them (ASCII offsets)."""
    found = []
    if text.startswith("/"):
        found.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
    for match in re.finditer(r"(?<![/\w])@\w+", text):
        found.append({"type": "mention", "offset": match.start(), "length": len(match[0])})
    return found


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_body(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A Bot API request's parameters and uploaded files (multipart or form-encoded)."""
    params: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    if request.content_type.startswith("multipart/"):
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                raise TypeError(f"nested multipart is not a Bot API request: {part!r}")
            raw = await part.read()
            if part.filename:
                files[str(part.name)] = bytes(raw)
            else:
                params[str(part.name)] = _decode(raw.decode())
    elif request.can_read_body:
        form = await request.post()
        params = {k: _decode(str(v)) for k, v in form.items()}
    return params, files


class BotApiStub:
    """The server, its recorded calls and the updates waiting to be fetched."""

    def __init__(self, token: str = "123:TEST") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}
        self.updates: list[dict[str, Any]] = []
        self.bot_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._file_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.root = ""
        # Called with every recorded call (benchmarks use it instead of polling ``calls``).
        self.listeners: list[Callable[[Call], None]] = []
        # Chats seen in pushed messages: the bot's own messages there carry the same chat.
        self.chats: dict[int, dict[str, Any]] = {}
        # getChatMember: (chat, user) -> "creator" / "administrator" (others are members);
        # in chats listed in ``members_unknown`` it fails, as when the bot was removed.
        self.statuses: dict[tuple[int, int], str] = {}
        self.members_unknown: set[int] = set()

    # ----- lifecycle
    async def start(self) -> str:
        """Serve on a random loopback port; returns the API root URL."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.root = f"http://127.0.0.1:{port}"
        return self.root

    async def stop(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # ----- what tests push
    def next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def add_file(self, data: bytes) -> str:
        file_id = f"file{next(self._file_ids)}"
        self.files[file_id] = data
        return file_id

    def user_message(self, user_id: int, **fields: Any) -> dict[str, Any]:
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        message = {
            "message_id": self.next_message_id(user_id), "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": user["first_name"]},
            "from": user,
        }
        message.update(fields)
        return message

    def group_message(
        self, chat_id: int, user_id: int, topic: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A message from ``user_id`` in supergroup ``chat_id`` (in forum topic ``topic``)."""
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        chat = {"id": chat_id, "type": "supergroup", "title": f"group {chat_id}",
                "is_forum": topic is not None}
        message = {"message_id": self.next_message_id(chat_id), "date": int(time.time()),
                   "chat": chat, "from": user}
        if topic is not None:
            message.update(message_thread_id=topic, is_topic_message=True)
        message.update(fields)
        self.chats[chat_id] = chat
        return message

    async def push_group_text(
        self, chat_id: int, user_id: int, text: str, topic: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A group text with its command and @mention entities, as Telegram marks them."""
        fields.setdefault("entities", _entities(text))
        message = self.group_message(chat_id, user_id, topic, text=text, **fields)
        return await self.push("message", message)

    async def push_group_photo(
        self, chat_id: int, user_id: int, data: bytes, caption: str = "",
        topic: int | None = None, **fields: Any,
    ) -> dict[str, Any]:
        if caption:
            fields.update(caption=caption, caption_entities=_entities(caption))
        message = self.group_message(chat_id, user_id, topic, photo=self.photo_sizes(data),
                                     **fields)
        return await self.push("message", message)

    def bot_message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """A message the bot sent, as a reply_to_message of a later user message."""
        return self.bot_messages[(chat_id, message_id)]

    def photo_sizes(self, data: bytes, side: int = 256) -> list[dict[str, Any]]:
        file_id = self.add_file(data)
        return [{"file_id": file_id, "file_unique_id": f"u{file_id}", "width": side,
                 "height": side, "file_size": len(data)}]

    async def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), kind: payload}
        async with self._changed:
            self.updates.append(update)
            self._changed.notify_all()
        return update

    async def push_text(self, user_id: int, text: str, **fields: Any) -> dict[str, Any]:
        if text.startswith("/"):
            length = len(text.split(" ", 1)[0])
            fields.setdefault("entities", [{"type": "bot_command", "offset": 0,
                                            "length": length}])
        return await self.push("message", self.user_message(user_id, text=text, **fields))

    async def push_photo(self, user_id: int, data: bytes, **fields: Any) -> dict[str, Any]:
        message = self.user_message(user_id, photo=self.photo_sizes(data), **fields)
        return await self.push("message", message)

    async def push_document(
        self, user_id: int, data: bytes, name: str, mime: str, size: int | None = None
    ) -> dict[str, Any]:
        document = {"file_id": self.add_file(data), "file_unique_id": f"d{len(self.files)}",
                    "file_name": name, "mime_type": mime,
                    "file_size": len(data) if size is None else size}
        return await self.push("message", self.user_message(user_id, document=document))

    async def press(self, user_id: int, sent: Call, label: str) -> None:
        """``user_id`` taps the button starting with ``label`` under the message ``sent``."""
        message = self.bot_messages[(int(sent.params["chat_id"]), sent.params["_message_id"])]
        buttons = [b for row in sent.params["reply_markup"]["inline_keyboard"] for b in row]
        data = next(b["callback_data"] for b in buttons if b["text"].startswith(label))
        await self.push_callback(user_id, data, message)

    async def push_callback(self, user_id: int, data: str, message: dict[str, Any]) -> None:
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        query = {"id": f"cb{len(self.calls)}", "from": user, "chat_instance": "1",
                 "data": data, "message": message}
        await self.push("callback_query", query)

    # ----- what tests read
    def sent(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method
                and (chat_id is None or c.chat_id == chat_id)]

    def texts(self, chat_id: int) -> list[str]:
        """Final texts shown in the chat: each message's last text (sent or edited)."""
        latest: dict[int, str] = {}
        for call in self.calls:
            if call.chat_id != chat_id or "text" not in call.params:
                continue
            mid = call.params.get("message_id", call.params.get("_message_id"))
            assert mid is not None, f"a call with text but no message id: {call}"
            latest[int(mid)] = str(call.params["text"])
        return [latest[k] for k in sorted(latest)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; fail after ``timeout`` seconds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    # ----- the HTTP side
    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        for listener in self.listeners:
            listener(call)

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        params, files = await _read_body(request)
        call = Call(request.match_info["method"], params, files)
        handler = getattr(self, f"api_{call.method}", None)
        if call.method != "getUpdates":
            await self._record(call)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404,
                                      "description": "Not Found: method not implemented"})
        result = await handler(call)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        if request.match_info["token"] != self.token or file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])

    # ----- methods
    async def api_getMe(self, call: Call) -> Any:
        return BOT_USER

    async def api_deleteWebhook(self, call: Call) -> Any:
        return True

    async def api_setWebhook(self, call: Call) -> Any:
        return True

    async def api_setMyCommands(self, call: Call) -> Any:
        return True

    async def api_getUpdates(self, call: Call) -> Any:
        offset = int(call.params.get("offset") or 0)
        timeout = min(float(call.params.get("timeout") or 0), MAX_POLL_S)

        def ready() -> bool:
            return any(u["update_id"] >= offset for u in self.updates)

        async with self._changed:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            if not ready() and timeout > 0:
                try:
                    async with asyncio.timeout(timeout):
                        await self._changed.wait_for(ready)
                except TimeoutError:
                    pass
            return list(self.updates[:100])

    def _bot_message(self, call: Call, **fields: Any) -> dict[str, Any]:
        chat_id = int(call.params["chat_id"])
        message: dict[str, Any] = {
            "message_id": self.next_message_id(chat_id), "date": int(time.time()),
            "chat": self.chats.get(chat_id, {"id": chat_id, "type": "private"}),
            "from": BOT_USER}
        if call.params.get("message_thread_id") is not None:
            message.update(message_thread_id=int(call.params["message_thread_id"]),
                           is_topic_message=True)
        message.update(fields)
        call.params["_message_id"] = message["message_id"]
        self.bot_messages[(chat_id, message["message_id"])] = message
        return message

    async def api_sendMessage(self, call: Call) -> Any:
        text = str(call.params.get("text", ""))
        if not text.strip() or len(text) > 4096:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: message text is invalid"})
        return self._bot_message(call, text=text)

    async def api_editMessageText(self, call: Call) -> Any:
        chat_id = int(call.params["chat_id"])
        text = str(call.params.get("text", ""))
        if not text.strip() or len(text) > 4096:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: message text is invalid"})
        return {"message_id": int(call.params["message_id"]), "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"}, "from": BOT_USER, "text": text}

    async def api_editMessageReplyMarkup(self, call: Call) -> Any:
        chat_id = int(call.params["chat_id"])
        known = self.bot_messages.get((chat_id, int(call.params["message_id"])))
        if known is None:
            return True
        return {**known, "reply_markup": call.params.get("reply_markup")}

    async def api_sendChatAction(self, call: Call) -> Any:
        return True

    async def api_answerCallbackQuery(self, call: Call) -> Any:
        return True

    async def api_getChatMember(self, call: Call) -> Any:
        chat_id, user_id = int(call.params["chat_id"]), int(call.params["user_id"])
        if chat_id in self.members_unknown:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: chat not found"},
                                     status=400)
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        status = self.statuses.get((chat_id, user_id), "member")
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            rights = ("can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages",
                      "can_manage_video_chats", "can_restrict_members", "can_promote_members",
                      "can_change_info", "can_invite_users", "can_post_stories",
                      "can_edit_stories", "can_delete_stories")
            member.update(dict.fromkeys(rights, False), can_manage_chat=True)
        return member

    async def api_getFile(self, call: Call) -> Any:
        file_id = str(call.params["file_id"])
        if file_id not in self.files:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: invalid file_id"})
        size = len(self.files[file_id])
        if size > TELEGRAM_FILE_LIMIT:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: file is too big"})
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": size,
                "file_path": f"photos/{file_id}"}

    def _photo_from(self, call: Call, media: Any) -> list[dict[str, Any]]:
        if isinstance(media, str) and media.startswith("attach://"):
            data = call.files[media.removeprefix("attach://")]
        elif isinstance(media, str) and media in self.files:
            data = self.files[media]
        else:
            data = call.files.get("photo", b"")
        return self.photo_sizes(data)

    async def api_sendPhoto(self, call: Call) -> Any:
        photo = self._photo_from(call, call.params.get("photo"))
        return self._bot_message(call, photo=photo, caption=call.params.get("caption"))

    async def api_sendDocument(self, call: Call) -> Any:
        data = next(iter(call.files.values()), b"")
        document = {"file_id": self.add_file(data), "file_unique_id": "doc",
                    "file_size": len(data)}
        return self._bot_message(call, document=document)

    async def api_sendMediaGroup(self, call: Call) -> Any:
        media = call.params["media"]
        group = f"g{len(self.calls)}"
        messages = []
        for item in media:
            photo = self._photo_from(call, item["media"])
            messages.append(self._bot_message(call, photo=photo, caption=item.get("caption"),
                                              media_group_id=group))
        return messages
