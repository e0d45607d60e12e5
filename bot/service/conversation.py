"""The conversation service: a user's turn in, a reply out. No transport, no ``telegram``.

It loads the context from the store, embeds each image once (cached by sha256 and encoder),
calls the engine off the event loop (a bounded number at once), runs gallery searches for
``[RET]``, ``/search``, ``/more`` and "more like this", and writes both turns back together.
The parts live beside it in ``bot/service/``: workers, uploads, search, scenes, turns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from bot.bot_config import BotConfig
from bot.errors import UserFacingError
from bot.honesty import honest_reply
from bot.images import DecodedImage
from bot.replies import Reply
from bot.service.engine_port import EnginePort
from bot.service.questions import Questions
from bot.service.scenes import Scenes
from bot.service.search import CANNOT_LEAVE_OUT, NO_OWN_IMAGES, GallerySearch, found_text, scope
from bot.service.store_port import SavedSearch, StorePort
from bot.service.turns import render_turn, reply_turn, session_key
from bot.service.uploads import Uploads, with_locations
from bot.service.user_ref import UserRef
from bot.service.workers import ObserveFn, ProgressFn, Workers
from engine.intent import SEARCHES, Intent, read_intent, search_request
from engine.prompt import image_turn
from engine.tokens import RETRIEVAL_PROMPTS, caption_prompt
from engine.types import GenerationOptions, ImagePart, TextPart, Turn

T = TypeVar("T")


class ConversationService:
    """Transport-free conversations over an engine and a store."""

    def __init__(
        self, engine: EnginePort, store: StorePort, config: BotConfig,
        description: str = "", observe: ObserveFn | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.config = config
        self.description = description
        # Told (kind, seconds) after every model call, e.g. to keep timings for /stats.
        self.observe = observe
        self._workers = Workers(config.max_concurrent_model_calls, observe)
        self._uploads = Uploads(engine, store, config, self._workers)
        self._search = GallerySearch(store, config, self._workers)
        self._scenes = Scenes(engine, config, self._workers, self._uploads)
        self._questions = Questions(engine, self._workers, self._uploads)

    # ----- conversation
    async def ask(
        self, user: UserRef, text: str, uploads: Sequence[bytes] = (),
        progress: ProgressFn | None = None,
    ) -> Reply:
        """A user turn (text and/or images) in, the reply out: a search when it asks for other
        images, else an answer about the conversation's images (``engine/intent.py``).
        """
        text = self._checked_text(text, allow_empty=bool(uploads))
        images = [await self._uploads.decode(data) for data in uploads]
        # The user and their context in one read (the store's cost per message, issue 30).
        uid, context = await self._db(self.store.user_context, user.transport,
                                      user.external_id, user.name)
        if not images and (fixed := honest_reply(text)) is not None:
            return await self._answer_without_model(uid, text, fixed)
        # The engine's own layout and texts: a photo without words is the caption request.
        user_turn = image_turn(text or caption_prompt(len(images)), *(i.sha256 for i in images))
        for image in images:
            await self._db(self.store.put_image, uid, image.sha256, image.png)
        await self._uploads.keep_footprints(images)
        dialogue = [*context, user_turn]
        intent = read_intent(text or caption_prompt(len(images)), _image_count(dialogue),
                             0 if images else len(self._questions.shown(uid)))
        if intent.kind in SEARCHES:
            return await self._search_asked(uid, user_turn, intent, images)
        embeddings = await self._uploads.embeddings(dialogue, images)
        if images and intent.kind == "describe":
            # "What is this?" with a photo is the caption request, in the words it was taught.
            asked = image_turn(caption_prompt(len(images)), *(i.sha256 for i in images))
            reply = await self._described(uid, [*context, asked], embeddings, images, progress)
        else:
            reply = await self._questions.answer(uid, intent, dialogue, embeddings)
        if images:  # a new photo is what "these" means now; results stay for other questions
            self._questions.remember(uid, ())
        turn_id = await self._db(self.store.append_exchange, uid, user_turn,
                                 reply_turn(reply, ()))
        notice = await self._uploads.index(uid, images)
        return Reply(f"{reply}\n\n{notice}" if notice else reply, (), turn_id)

    async def _described(self, uid: int, dialogue: list[Turn], embeddings: dict[str, np.ndarray],
                         images: Sequence[DecodedImage], progress: ProgressFn | None) -> str:
        """The model's description of the images the turn brings (never a search), with
        their locations and, for a large scene, its tiles.
        """
        options = GenerationOptions(allow_retrieval=False, session=session_key(uid))
        result = await self._workers.generate(
            self.engine, dialogue, embeddings, options, progress)
        reply = with_locations(result.text.strip(), images)
        return await self._scenes.describe(uid, images, reply)

    async def _search_asked(self, uid: int, user_turn: Turn, intent: Intent,
                            images: Sequence[DecodedImage]) -> Reply:
        """A request for other images in the chat: by its words, or like the last image."""
        if intent.kind == "more":
            reply = await self._more(uid)
        elif intent.kind == "similar":
            reply = await self._similar(uid, images, intent.subject)
            if intent.fewer:  # "like this but without the buildings"
                reply = Reply(f"{CANNOT_LEAVE_OUT} {reply.text}", reply.hits)
        else:
            query = await self._request_query(Turn("user", (TextPart(
                search_request(intent, _text_of(user_turn))),)))
            hits = await self._search.hits(uid, SavedSearch(query), fresh=True)
            reply = Reply(found_text(hits), hits)
        self._questions.remember(uid, reply.hits)
        turn_id = await self._db(self.store.append_exchange, uid, user_turn,
                                 reply_turn(reply.text, reply.hits))
        notice = await self._uploads.index(uid, images)
        text = f"{reply.text}\n\n{notice}" if notice else reply.text
        return Reply(text, reply.hits, turn_id)

    async def _answer_without_model(self, uid: int, text: str, reply: str) -> Reply:
        """Small talk and questions an image cannot answer: a fixed true reply, kept in the
        conversation like any other, with no model call and no search.
        """
        user_turn = image_turn(text)
        turn_id = await self._db(self.store.append_exchange, uid, user_turn,
                                 reply_turn(reply, ()))
        return Reply(reply, (), turn_id)

    async def search(self, user: UserRef, text: str) -> Reply:
        """Forced retrieval for a text request; "mine <text>" looks among the chat's own
        images only.
        """
        only_own, text = scope(text)
        if only_own and not text.strip():
            raise UserFacingError("Tell me what to look for among your images, "
                                  "e.g. /search mine harbour")
        text = self._checked_text(text, allow_empty=False)
        uid = await self._uid(user)
        if only_own and not await self._db(self.store.private_count, uid):
            raise UserFacingError(NO_OWN_IMAGES)
        user_turn = Turn("user", (TextPart(text),))
        query = await self._request_query(user_turn)
        hits = await self._search.hits(uid, SavedSearch(query, only_own), fresh=True)
        reply = found_text(hits, only_own)
        await self._db(self.store.append_exchange, uid, user_turn, reply_turn(reply, hits))
        return Reply(reply, hits)

    async def _request_query(self, request: Turn) -> np.ndarray:
        """A search's query vector, from the request alone. [RET] was trained on requests
        without earlier turns, and an image in context pulls the query toward that image: on
        `val`, "Show me <caption>" after another photo ranked the captioned image in the top
        10 for 5% of 40 requests, against 40% asked alone (scripts/search_after_photo.py).
        """
        return await self._workers.model(self.engine.retrieve, [request], {})

    async def more(self, user: UserRef) -> Reply:
        """The next results of the user's last search, none shown before."""
        return await self._more(await self._uid(user))

    async def _more(self, uid: int) -> Reply:
        saved = await self._db(self.store.last_search, uid)
        if saved is None:
            raise UserFacingError("There is no search to continue: try /search airport first.")
        hits = await self._search.hits(uid, saved, fresh=False)
        if not hits:
            return Reply("No more results for that search.")
        return Reply(found_text(hits, saved.only_own), hits)

    async def similar(self, user: UserRef, upload: bytes | None = None) -> Reply:
        """Gallery images like ``upload``, or like the conversation's last image."""
        uid = await self._uid(user)
        images = []
        if upload is not None:
            image = await self._uploads.decode(upload)
            await self._db(self.store.put_image, uid, image.sha256, image.png)
            images = [image]
        return await self._similar(uid, images)

    async def _similar(self, uid: int, images: Sequence[DecodedImage], words: str = "") -> Reply:
        """Gallery images like the newest of ``images`` or else of the conversation's; with
        ``words`` ("more harbours like this"), like the image and the words together.
        """
        if images:
            sha = images[-1].sha256
        else:
            context = await self._db(self.store.context, uid)
            shas = [p.sha256 for t in context for p in t.parts if isinstance(p, ImagePart)]
            if not shas:
                raise UserFacingError("Send an image first, or reply to one with /similar.")
            sha = shas[-1]
        embedding = (await self._uploads.gallery_embeddings([sha], images))[sha]
        scene = self._scenes.get(uid)
        none = np.empty((0, embedding.shape[-1]), dtype=np.float32)
        tiles = scene.vectors if scene is not None and scene.sha256 == sha else none
        # A large scene searches with the whole and with each tile; the best score per image.
        queries = await self._workers.model(self.engine.image_query,
                                            np.vstack([embedding[None], tiles]))
        if words:  # like the image and like the words: the sum of both directions
            asked = Turn("user", (TextPart(RETRIEVAL_PROMPTS[0].format(query=words)),))
            both = queries + await self._request_query(asked)
            queries = both / np.linalg.norm(both, axis=1, keepdims=True)
        # The chat's own copy of the example is in its gallery: like itself, but no news.
        hits = await self._search.hits(uid, SavedSearch(queries[0]), fresh=True,
                                       extra=queries[1:], skip=(sha,))
        return Reply(found_text(hits), hits)

    async def tiles(self, user: UserRef) -> bytes:
        """A contact sheet (PNG) of the conversation's newest large scene, tile by tile."""
        uid = await self._uid(user)
        return await self._scenes.sheet(uid)

    # ----- account
    async def reset(self, user: UserRef) -> str:
        """Start a new conversation: earlier images and messages leave the context."""
        uid = await self._uid(user)
        await self._db(self.store.reset, uid)
        self.engine.forget_session(session_key(uid))
        return "New conversation started: earlier images and messages are no longer in context."

    async def rate(self, user: UserRef, turn_id: int, rating: int) -> str:
        """Keep a 👍 (+1) or 👎 (-1) for one of the conversation's replies (a new tap replaces
        the old).
        """
        uid = await self._uid(user)
        try:
            await self._db(self.store.rate, uid, turn_id, 1 if rating > 0 else -1)
        except KeyError as exc:
            raise UserFacingError("That reply is no longer kept (after /forget).") from exc
        return "Thanks, noted: 👍" if rating > 0 else "Thanks, noted: 👎"

    async def history(self, user: UserRef) -> str:
        """The conversation so far, one line per turn."""
        uid = await self._uid(user)
        turns = await self._db(self.store.history, uid)
        if not turns:
            return "This conversation is empty."
        return "\n".join(render_turn(turn) for turn in turns)

    async def export(self, user: UserRef) -> bytes:
        """Everything kept about the conversation, as the store exports it (a zip)."""
        uid = await self._uid(user)
        return await self._db(self.store.export, uid)

    async def forget(self, user: UserRef) -> str:
        """Delete everything kept about the conversation, its private images included."""
        uid = await self._uid(user)
        await self._db(self.store.forget, uid)
        self.engine.forget_session(session_key(uid))
        return "Done: I deleted everything I kept about you."

    async def about(self) -> str:
        """What answers: the model's description, encoder, bridge and gallery size."""
        size = await self._db(self.store.gallery_size)
        lines = [self.description] if self.description else []
        lines += [f"Image encoder: {self.engine.encoder_id}",
                  f"Bridge weights: {self.engine.bridge_id}",
                  f"Retrieval space: {self.engine.search_dim} dimensions",
                  f"Gallery: {size:,} images"]
        return "\n".join(lines)

    def close(self) -> None:
        """Stop the worker threads and release the store (at shutdown)."""
        self._workers.close()
        self.store.close()

    # ----- internals
    def _checked_text(self, text: str, allow_empty: bool) -> str:
        """The message stripped, refused when empty (unless images come) or too long."""
        text = (text or "").strip()
        if not text and not allow_empty:
            raise UserFacingError("Your message is empty: ask a question or send an image.")
        if len(text) > self.config.max_text_chars:
            raise UserFacingError(
                f"Your message is too long ({len(text):,} characters; the limit is "
                f"{self.config.max_text_chars:,}). Please shorten it.")
        return text

    async def _uid(self, user: UserRef) -> int:
        """The store's id for the conversation ``user`` names (created on first contact)."""
        return await self._db(self.store.user_id, user.transport, user.external_id, user.name)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call in the I/O thread pool."""
        return await self._workers.io(fn, *args)


def _image_count(dialogue: Sequence[Turn]) -> int:
    """How many distinct images the dialogue holds."""
    return len({p.sha256 for t in dialogue for p in t.parts if isinstance(p, ImagePart)})


def _text_of(turn: Turn) -> str:
    return " ".join(p.text for p in turn.parts if isinstance(p, TextPart))
