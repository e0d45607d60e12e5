"""Model and store calls off the event loop: own thread pools, a bound on concurrent model
calls, streamed generation handed back to the loop, and timings for ``/stats``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from bot.errors import UserFacingError
from bot.service.engine_port import EnginePort
from engine.backends.errors import BackendUnavailableError
from engine.types import GenerationOptions, GenerationResult, Turn

logger = logging.getLogger(__name__)

T = TypeVar("T")
ProgressFn = Callable[[str], Awaitable[None]]
ObserveFn = Callable[[str, float], None]
_END = object()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class Workers:
    """Runs model calls (at most ``max_model_calls`` at once) and store or decoding calls in
    their own thread pools, so model calls never starve store calls (nor the loop's pool).
    """

    def __init__(self, max_model_calls: int, observe: ObserveFn | None = None) -> None:
        # Told (kind, seconds) after every model call, e.g. to keep timings for /stats.
        self.observe = observe
        self._model_slots = asyncio.Semaphore(max_model_calls)
        self._model_pool = ThreadPoolExecutor(max_model_calls, "capret-model")
        self._io_pool = ThreadPoolExecutor(8, "capret-io")

    async def model(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a model call in a worker thread, at most ``max_model_calls`` at once."""
        async with self._model_slots:
            start = time.perf_counter()
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self._model_pool, fn, *args)
            except BackendUnavailableError as exc:
                raise model_down(exc) from exc
            finally:
                await self._observed(getattr(fn, "__name__", "model"), start)

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store (or decoding) call in the I/O thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, fn, *args)

    async def generate(
        self, engine: EnginePort, dialogue: list[Turn], embeddings: dict[str, np.ndarray],
        options: GenerationOptions, progress: ProgressFn | None,
    ) -> GenerationResult:
        """The engine's reply; with ``progress``, streamed and shown as it grows."""
        if progress is None:
            return await self.model(engine.generate, dialogue, embeddings, options)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()

        def produce() -> None:
            try:
                for piece in engine.stream(dialogue, embeddings, options):
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

    def close(self) -> None:
        """Stop the worker threads (at shutdown): queued model calls are dropped."""
        self._model_pool.shutdown(wait=False, cancel_futures=True)
        self._io_pool.shutdown(wait=True)

    async def _observed(self, kind: str, start: float) -> None:
        if self.observe is None:
            return
        try:
            await self.io(self.observe, kind, time.perf_counter() - start)
        except Exception:  # timings are for /stats; never fail a reply for them
            logger.warning("could not record a model-call timing", exc_info=True)


async def _consume(pieces: asyncio.Queue[object], progress: ProgressFn) -> GenerationResult:
    """Show the streamed text as it grows; the final result, or the producer's error."""
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
        raise model_down(failure) from failure
    if failure is not None:
        raise failure
    return result if result is not None else GenerationResult(text)


def model_down(exc: BackendUnavailableError) -> UserFacingError:
    """A model server that is down or restarting: say so; nothing of the turn was stored."""
    logger.error("model backend unavailable: %s", exc)
    return UserFacingError("The language model is not reachable right now, so this message "
                           "was not answered (nothing was saved). Please send it again in a "
                           "minute.")
