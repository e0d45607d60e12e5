"""The conversation service: a user's turn in, a reply out. No transport, no ``telegram``.

It loads the context from the store, embeds each image once (cached by sha256 and encoder),
calls the engine off the event loop (a bounded number at once), runs gallery searches for
``[RET]``, ``/search``, ``/more`` and "more like this", and writes both turns back together.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from bot.config import BotConfig
from bot.errors import UserFacingError
from bot.honesty import honest_reply
from bot.images import DecodedImage, TileRule, decode_image
from bot.ports import EnginePort
from bot.replies import Hit, Reply
from bot.storage import SavedSearch, StorePort
from bot.tiles import TiledScene, notable, tile_lines, tile_sheet
from engine.backends.errors import BackendUnavailableError
from engine.prompt import image_turn
from engine.tokens import caption_prompt
from engine.types import GenerationOptions, GenerationResult, ImagePart, TextPart, Turn

logger = logging.getLogger(__name__)

T = TypeVar("T")
ProgressFn = Callable[[str], Awaitable[None]]
ObserveFn = Callable[[str, float], None]
_END = object()
# Large scenes kept in memory for /tiles (their tiles are not stored; a restart forgets them).
SCENES_KEPT = 64
NO_OWN_IMAGES = ("You have not sent me any images yet: every image you send joins your own "
                 "gallery, searchable only by you. /search <text> looks in the public gallery.")
CAP_NOTICE = ("(Your image gallery is full: from now on, your oldest images leave it as new "
              "ones arrive. They stay in our conversations; only searches no longer find them.)")


@dataclass(frozen=True)
class UserRef:
    """Who is talking, as the transport knows them."""

    transport: str
    external_id: str
    name: str | None = None


@dataclass(frozen=True)
class _Failure:
    error: BaseException


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
        # The newest large scene of each conversation (for /tiles and /similar), newest last.
        self._scenes: OrderedDict[int, TiledScene] = OrderedDict()
        self._model_slots = asyncio.Semaphore(config.max_concurrent_model_calls)
        # Own thread pools: model calls must not starve store calls (nor the loop's default pool).
        self._model_pool = ThreadPoolExecutor(config.max_concurrent_model_calls, "capret-model")
        self._io_pool = ThreadPoolExecutor(8, "capret-io")

    # ----- conversation
    async def ask(
        self, user: UserRef, text: str, uploads: Sequence[bytes] = (),
        progress: ProgressFn | None = None,
    ) -> Reply:
        """A user turn (text and/or images) in, the reply out; the model may search."""
        text = self._checked_text(text, allow_empty=bool(uploads))
        images = [await self._decode(data) for data in uploads]
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        if not images and (fixed := honest_reply(text)) is not None:
            return await self._answer_without_model(uid, text, fixed)
        # The engine's own layout and texts: a photo without words is the caption request.
        user_turn = image_turn(text or caption_prompt(len(images)), *(i.sha256 for i in images))
        for image in images:
            await self._db(self.store.put_image, uid, image.sha256, image.png)
        await self._keep_footprints(images)
        dialogue = [*await self._db(self.store.context, uid), user_turn]
        embeddings = await self._embeddings(dialogue, images)
        # A turn that brings images is about them: describe or answer, never search instead
        # (searching by an image is /similar). Text-only turns may retrieve.
        options = GenerationOptions(allow_retrieval=not images, session=_session(uid))
        result = await self._generate(dialogue, embeddings, options, progress)
        hits: tuple[Hit, ...] = ()
        if result.query is not None:
            hits = await self._search(uid, SavedSearch(result.query), fresh=True)
        reply = with_locations(result.text.strip() or _found_text(hits), images)
        reply = await self._with_tiles(uid, images, reply)
        turn_id = await self._db(self.store.append_exchange, uid, user_turn,
                                 _reply_turn(reply, hits))
        notice = await self._index_uploads(uid, images, embeddings)
        return Reply(f"{reply}\n\n{notice}" if notice else reply, hits, turn_id)

    async def _answer_without_model(self, uid: int, text: str, reply: str) -> Reply:
        """Small talk and questions an image cannot answer: a fixed true reply, kept in the
        conversation like any other, with no model call and no search."""
        user_turn = image_turn(text)
        turn_id = await self._db(self.store.append_exchange, uid, user_turn,
                                 _reply_turn(reply, ()))
        return Reply(reply, (), turn_id)

    async def search(self, user: UserRef, text: str) -> Reply:
        """Forced retrieval for a text request; "mine <text>" looks among the chat's own
        images only."""
        only_own, text = _scope(text)
        if only_own and not text.strip():
            raise UserFacingError("Tell me what to look for among your images, "
                                  "e.g. /search mine harbour")
        text = self._checked_text(text, allow_empty=False)
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        if only_own and not await self._db(self.store.private_count, uid):
            raise UserFacingError(NO_OWN_IMAGES)
        user_turn = Turn("user", (TextPart(text),))
        dialogue = [*await self._db(self.store.context, uid), user_turn]
        embeddings = await self._embeddings(dialogue, [])
        query = await self._model(self.engine.retrieve, dialogue, embeddings)
        hits = await self._search(uid, SavedSearch(query, only_own), fresh=True)
        reply = _found_text(hits, only_own)
        await self._db(self.store.append_exchange, uid, user_turn, _reply_turn(reply, hits))
        return Reply(reply, hits)

    async def more(self, user: UserRef) -> Reply:
        """The next results of the user's last search, none shown before."""
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        saved = await self._db(self.store.last_search, uid)
        if saved is None:
            raise UserFacingError("There is no search to continue: try /search airport first.")
        hits = await self._search(uid, saved, fresh=False)
        if not hits:
            return Reply("No more results for that search.")
        return Reply(_found_text(hits, saved.only_own), hits)

    async def similar(self, user: UserRef, upload: bytes | None = None) -> Reply:
        """Gallery images like ``upload``, or like the conversation's last image."""
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        if upload is not None:
            image = await self._decode(upload)
            await self._db(self.store.put_image, uid, image.sha256, image.png)
            sha, images = image.sha256, [image]
        else:
            context = await self._db(self.store.context, uid)
            shas = [p.sha256 for t in context for p in t.parts if isinstance(p, ImagePart)]
            if not shas:
                raise UserFacingError("Send an image first, or reply to one with /similar.")
            sha, images = shas[-1], []
        embedding = (await self._embeddings([Turn("user", (ImagePart(sha),))], images))[sha]
        scene = self._scenes.get(uid)
        none = np.empty((0, embedding.shape[-1]), dtype=np.float32)
        tiles = scene.vectors if scene is not None and scene.sha256 == sha else none
        # A large scene searches with the whole and with each tile; the best score per image.
        queries = await self._model(self.engine.image_query, np.vstack([embedding[None], tiles]))
        # The chat's own copy of the example is in its gallery: like itself, but no news.
        hits = await self._search(uid, SavedSearch(queries[0]), fresh=True, extra=queries[1:],
                                  skip=(sha,))
        return Reply(_found_text(hits), hits)

    async def tiles(self, user: UserRef) -> bytes:
        """A contact sheet (PNG) of the conversation's newest large scene, tile by tile."""
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        scene = self._scenes.get(uid)
        if scene is None:
            side = int(self.config.model_input_side * self.config.tile_factor)
            raise UserFacingError(
                f"No large scene here yet: send a scene wider or taller than {side} pixels "
                "(as a file, to keep its full size) and I describe it tile by tile.")
        return await self._db(tile_sheet, scene)

    # ----- account
    async def reset(self, user: UserRef) -> str:
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        await self._db(self.store.reset, uid)
        self.engine.forget_session(_session(uid))
        return "New conversation started: earlier images and messages are no longer in context."

    async def rate(self, user: UserRef, turn_id: int, rating: int) -> str:
        """Keep a 👍 (+1) or 👎 (-1) for one of the conversation's replies (a new tap replaces
        the old)."""
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        try:
            await self._db(self.store.rate, uid, turn_id, 1 if rating > 0 else -1)
        except KeyError as exc:
            raise UserFacingError("That reply is no longer kept (after /forget).") from exc
        return "Thanks, noted: 👍" if rating > 0 else "Thanks, noted: 👎"

    async def history(self, user: UserRef) -> str:
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        turns = await self._db(self.store.history, uid)
        if not turns:
            return "This conversation is empty."
        return "\n".join(_render_turn(turn) for turn in turns)

    async def export(self, user: UserRef) -> bytes:
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        return await self._db(self.store.export, uid)

    async def forget(self, user: UserRef) -> str:
        uid = await self._db(self.store.user_id, user.transport, user.external_id, user.name)
        await self._db(self.store.forget, uid)
        self.engine.forget_session(_session(uid))
        return "Done: I deleted everything I kept about you."

    async def about(self) -> str:
        size = await self._db(self.store.gallery_size)
        lines = [self.description] if self.description else []
        lines += [f"Image encoder: {self.engine.encoder_id}",
                  f"Bridge weights: {self.engine.bridge_id}",
                  f"Retrieval space: {self.engine.shared_dim} dimensions",
                  f"Gallery: {size:,} images"]
        return "\n".join(lines)

    def close(self) -> None:
        """Stop the worker threads and release the store (at shutdown)."""
        self._model_pool.shutdown(wait=False, cancel_futures=True)
        self._io_pool.shutdown(wait=True)
        self.store.close()

    # ----- internals
    def _checked_text(self, text: str, allow_empty: bool) -> str:
        text = (text or "").strip()
        if not text and not allow_empty:
            raise UserFacingError("Your message is empty: ask a question or send an image.")
        if len(text) > self.config.max_text_chars:
            raise UserFacingError(
                f"Your message is too long ({len(text):,} characters; the limit is "
                f"{self.config.max_text_chars:,}). Please shorten it.")
        return text

    async def _decode(self, data: bytes) -> DecodedImage:
        tiling = TileRule(self.config.model_input_side, self.config.tile_factor,
                          self.config.tile_grid)
        decode = functools.partial(
            decode_image, data, max_bytes=self.config.max_image_bytes,
            max_pixels=self.config.max_image_pixels, max_side=self.config.stored_image_side,
            tiling=tiling)
        return await self._db(decode)

    async def _embeddings(
        self, dialogue: Sequence[Turn], fresh: Sequence[DecodedImage]
    ) -> dict[str, np.ndarray]:
        """Encoder embedding of every image in the dialogue, computed once per sha256."""
        shas = list(dict.fromkeys(p.sha256 for t in dialogue for p in t.parts
                                  if isinstance(p, ImagePart)))
        if not shas:
            return {}
        encoder = self.engine.encoder_id
        found = await self._db(self.store.cached_embeddings, shas, encoder)
        missing = [sha for sha in shas if sha not in found]
        if missing:
            pil = {image.sha256: image.image for image in fresh}
            images = [pil[sha] if sha in pil else await self._stored_image(sha) for sha in missing]
            vectors = await self._model(self.engine.embed_images, images)  # (N, D_img)
            computed = {sha: np.asarray(v, dtype=np.float32)
                        for sha, v in zip(missing, vectors, strict=True)}
            await self._db(self.store.cache_embeddings, computed, encoder)
            found.update(computed)
        return found

    async def _keep_footprints(self, images: Sequence[DecodedImage]) -> None:
        """Store each GeoTIFF's footprint with its image (read from the file, never guessed)."""
        for image in images:
            if image.geo is not None and image.geo.footprint is not None:
                await self._db(self.store.put_footprint, image.sha256,
                               image.geo.footprint.as_dict())

    async def _with_tiles(self, uid: int, images: Sequence[DecodedImage], reply: str) -> str:
        """For a large scene: caption its tiles (embedded in one batch) and name the ones
        least like the whole; kept for /tiles and /similar."""
        image = next((i for i in images if i.tiles), None)
        if image is None:
            return reply
        vectors = await self._model(self.engine.embed_images, [t.image for t in image.tiles])
        captions = [await self._caption(f"{image.sha256}:tile{i}", v)
                    for i, v in enumerate(vectors)]
        scene = TiledScene(image.sha256, image.tiles, tuple(captions), np.asarray(vectors))
        self._scenes[uid] = scene
        self._scenes.move_to_end(uid)
        while len(self._scenes) > SCENES_KEPT:
            self._scenes.popitem(last=False)
        whole = (await self._embeddings([Turn("user", (ImagePart(image.sha256),))], [image]))
        picked = notable(scene.vectors, whole[image.sha256], self.config.notable_tiles)
        return f"{reply}\n\n{tile_lines(scene, picked)}"

    async def _caption(self, key: str, vector: np.ndarray) -> str:
        turn = image_turn(caption_prompt(1), key)
        options = GenerationOptions(allow_retrieval=False)
        result = await self._model(self.engine.generate, [turn], {key: vector}, options)
        return result.text.strip() or "(no description)"

    async def _stored_image(self, sha: str) -> Any:
        data = await self._db(self.store.get_image, sha)
        if data is None:
            raise UserFacingError("An earlier image of this conversation is gone: try /reset.")
        return (await self._decode(data)).image

    async def _search(self, uid: int, search: SavedSearch, fresh: bool,
                      extra: np.ndarray | None = None, skip: Sequence[str] = ()
                      ) -> tuple[Hit, ...]:
        if fresh:
            await self._db(self.store.remember_search, uid, search)
        exclude = await self._db(self.store.shown, uid)
        if len(exclude) >= self.config.max_search_depth and not fresh:
            return ()
        k = self.config.search_results
        exclude = exclude | set(skip)
        hits = await self._db(self.store.search, uid, search.query, k, exclude, search.only_own)
        for more in extra if extra is not None else ():
            hits += await self._db(self.store.search, uid, more, k, exclude, search.only_own)
        best: dict[str, Hit] = {}
        for hit in sorted(hits, key=lambda h: -h.score):
            best.setdefault(hit.sha256, hit)
        hits = list(best.values())[:k]
        await self._db(self.store.mark_shown, uid, [hit.sha256 for hit in hits])
        return tuple(hits)

    async def _index_uploads(self, uid: int, images: Sequence[DecodedImage],
                             embeddings: dict[str, np.ndarray]) -> str:
        """The chat's images join its private gallery, their vectors made from the encoder
        embeddings already computed for the reply; returns what to tell the chat, or ""."""
        shas = list(dict.fromkeys(image.sha256 for image in images))
        if not shas:
            return ""
        try:
            vectors = await self._model(self.engine.image_query,
                                        np.stack([embeddings[sha] for sha in shas]))
            done = await self._db(self.store.index_uploads, uid, shas, vectors)
        except Exception:  # the reply is stored and must still be sent; searching can wait
            logger.exception("indexing %d upload(s) of user %d failed", len(shas), uid)
            return ""
        return CAP_NOTICE if done.first_overflow else ""

    async def _model(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a model call in a worker thread, at most ``max_concurrent_model_calls`` at once."""
        async with self._model_slots:
            start = time.perf_counter()
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self._model_pool, fn, *args)
            except BackendUnavailableError as exc:
                raise _model_down(exc) from exc
            finally:
                await self._observed(getattr(fn, "__name__", "model"), start)

    async def _observed(self, kind: str, start: float) -> None:
        if self.observe is None:
            return
        try:
            await self._db(self.observe, kind, time.perf_counter() - start)
        except Exception:  # timings are for /stats; never fail a reply for them
            logger.warning("could not record a model-call timing", exc_info=True)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store (or decoding) call in the I/O thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, fn, *args)

    async def _generate(
        self, dialogue: list[Turn], embeddings: dict[str, np.ndarray],
        options: GenerationOptions, progress: ProgressFn | None,
    ) -> GenerationResult:
        if progress is None:
            return await self._model(self.engine.generate, dialogue, embeddings, options)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()

        def produce() -> None:
            try:
                for piece in self.engine.stream(dialogue, embeddings, options):
                    loop.call_soon_threadsafe(pieces.put_nowait, piece)
            except BaseException as exc:  # handed to the event loop side, raised there
                loop.call_soon_threadsafe(pieces.put_nowait, _Failure(exc))
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, _END)

        async with self._model_slots:
            start = time.perf_counter()
            worker = loop.run_in_executor(self._model_pool, produce)
            try:
                return await _consume(pieces, progress)
            finally:
                await worker
                await self._observed("generate", start)


async def _consume(pieces: asyncio.Queue[object], progress: ProgressFn) -> GenerationResult:
    text, result, failure = "", None, None
    while (piece := await pieces.get()) is not _END:
        if isinstance(piece, _Failure):
            failure = piece.error
        elif isinstance(piece, GenerationResult):
            result = piece
        elif isinstance(piece, str) and failure is None:
            text += piece
            try:
                await progress(text)
            except Exception:  # showing progress is cosmetic; the final reply still comes
                logger.warning("progress callback failed", exc_info=True)
    if isinstance(failure, BackendUnavailableError):
        raise _model_down(failure) from failure
    if failure is not None:
        raise failure
    return result if result is not None else GenerationResult(text)


def _session(uid: int) -> str:
    """The engine's key for a user's conversation (its cross-turn KV cache)."""
    return f"user-{uid}"


def _model_down(exc: BackendUnavailableError) -> UserFacingError:
    """A model server that is down or restarting: say so; nothing of the turn was stored."""
    logger.error("model backend unavailable: %s", exc)
    return UserFacingError("The language model is not reachable right now, so this message "
                           "was not answered (nothing was saved). Please send it again in a "
                           "minute.")


def with_locations(text: str, images: Sequence[DecodedImage]) -> str:
    """The reply plus what each georeferenced file says about where it is; nothing for plain
    photos (a location is never guessed from pixels)."""
    notes = [(index, image.geo.describe()) for index, image in enumerate(images, 1)
             if image.geo is not None]
    if not notes:
        return text
    lines = [note if len(images) == 1 else f"Image {index}: {note}" for index, note in notes]
    return "\n\n".join([text, *lines])


def _found_text(hits: Sequence[Hit], only_own: bool = False) -> str:
    where = "among your images" if only_own else "in the gallery"
    if not hits:
        return f"I found no matching images {where}."
    source = "of your images" if only_own else "image(s) from the gallery"
    return f"Here {'is' if len(hits) == 1 else 'are'} {len(hits)} {source}."


def _scope(text: str) -> tuple[bool, str]:
    """("mine harbour" -> only the chat's own images, "harbour")."""
    first, _, rest = (text or "").strip().partition(" ")
    if first.lower() == "mine":
        return True, rest.strip()
    return False, text


def _reply_turn(text: str, hits: Sequence[Hit]) -> Turn:
    found = "; ".join(f"{hit.label or 'your image'} ({hit.score:.2f})" for hit in hits)
    return Turn("assistant", (TextPart(f"{text}\n[shown: {found}]" if hits else text),))


def _render_turn(turn: Turn) -> str:
    who = "You" if turn.role == "user" else "CapRet"
    body = " ".join("[image]" if isinstance(p, ImagePart) else p.text for p in turn.parts)
    return f"{who}: {body}"
