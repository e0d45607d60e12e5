"""Continuous batching for the hf backend: many conversations share each decode step.

Each request keeps running the ordinary strategies of ``engine.generate`` (greedy, sampling,
beam; their stop rules, [RET], streaming and seeds) in its caller's thread, over a
``BatchedStepper``. The stepper does not run the LM itself: it hands its prefill or its next
tokens to one scheduler thread, which prefills newcomers on their own, then runs ONE forward
pass for every row that asked for a step (left-padded KV, per-row positions, a padding mask)
and one vocabulary projection for all of them. A request that arrives mid-decode joins at the
next step; a finished one leaves at once. On a CPU the step of a small LM costs about the same
for 1 row as for 8 (it reads every weight once either way), so 8 conversations decode almost
8 times faster together than in turn.

Across turns, a finished single-row request leaves its prompt+reply KV in the
``ConversationCache`` under its session key, so the next turn prefills only the new tokens.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import DynamicCache

from engine.bridge import Bridge
from engine.config import BatchingConfig
from engine.kv_cache import (
    ConversationCache,
    Layers,
    cat_rows,
    from_cache,
    left_pad,
    select_rows,
    slice_positions,
    to_cache,
)
from engine.language import LanguageModel

logger = logging.getLogger(__name__)


class _Request:
    """One decode's rows as the scheduler tracks them (touched by the scheduler thread only)."""

    def __init__(self, session: str | None) -> None:
        self.session = session
        self.rows = 0
        # Own KV and mask while outside the shared batch: (rows, H, T, d) and (rows, T).
        self.layers: Layers | None = None
        self.mask: torch.Tensor | None = None
        self.positions = torch.zeros(0, dtype=torch.long)  # (rows,) next position per row
        self.prompt: torch.Tensor | None = None  # (T, D) prompt embeddings
        self.fed: list[torch.Tensor] = []  # embeddings (D,) of the tokens fed after the prompt


@dataclass(eq=False)  # compared by identity: payloads are tensors
class _Job:
    kind: Literal["prefill", "step", "leave"]
    request: _Request
    payload: tuple[torch.Tensor, ...] = ()
    # Beam search's pending row order, applied before this step (None = unchanged).
    reorder: torch.Tensor | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[torch.Tensor, torch.Tensor] | None = None
    error: BaseException | None = None


class ContinuousBatcher:
    """The scheduler thread and the shared batch state of one LM."""

    def __init__(self, lm: LanguageModel, bridge: Bridge, config: BatchingConfig) -> None:
        self.lm = lm
        self.bridge = bridge
        self.config = config
        self.cache = ConversationCache(config.kv_cache_conversations, config.kv_cache_mb)
        self._cv = threading.Condition()
        self._queue: list[_Job] = []
        self._active: list[_Request] = []  # prefilled and not yet left
        self._members: list[_Request] = []  # the rows of ``_layers``, in order
        self._spans: dict[int, tuple[int, int]] = {}  # id(request) -> (first row, rows)
        self._layers: Layers | None = None  # (B, H, L, d) per layer, left-padded
        self._mask = torch.zeros(0, 0, dtype=torch.long)  # (B, L) 1 = real position
        self._stale = False  # rows left the batch since it was composed
        self._last_step_s = 0.0  # duration of the last shared step
        self._thread: threading.Thread | None = None
        self.largest_batch = 0  # rows in the widest step so far (tests, benchmarks)

    def submit(self, job: _Job) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Queue ``job`` for the scheduler and wait for its (hidden, logits)."""
        with self._cv:
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="capret-batcher",
                                                daemon=True)
                self._thread.start()
            self._cv.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, V) on the CPU, [RET] column included."""
        with torch.inference_mode():
            return self.lm.logits(hidden, self.bridge.ret_output_row).cpu()

    # ----- the scheduler thread
    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                jobs = self._take_round()
                try:
                    self._run(jobs)
                except BaseException as exc:  # handed to every waiting request, raised there
                    logger.exception("batched decode step failed")
                    self._members, self._spans, self._layers = [], {}, None
                    for job in jobs:
                        job.error = job.error or exc
                finally:
                    for job in jobs:
                        job.done.set()

    def _take_round(self) -> list[_Job]:
        """The next jobs; a step waits (briefly) until every active request has asked."""
        with self._cv:
            while not self._queue:
                self._cv.wait()
            while True:
                deadline = time.monotonic() + self._join_wait_s()
                while not self._everyone_asked() and time.monotonic() < deadline:
                    self._cv.wait(max(deadline - time.monotonic(), 0.0))
                taken = self._admissible()
                if taken:
                    self._queue = [job for job in self._queue if job not in taken]
                    return taken
                self._cv.wait()  # only prefills that do not fit yet: wait for a step or leave

    def _join_wait_s(self) -> float:
        return max(self.config.join_wait_ms / 1000,
                   self.config.join_wait_step_fraction * self._last_step_s)

    def _everyone_asked(self) -> bool:
        asking = {id(job.request) for job in self._queue}
        return all(id(r) in asking for r in self._active)

    def _admissible(self) -> list[_Job]:
        """All steps and leaves; prefills while the batch has room (one at least)."""
        rows = sum(r.rows for r in self._active)
        taken = []
        for job in self._queue:
            if job.kind == "prefill":
                want = int(job.payload[1])
                if rows and rows + want > self.config.max_rows:
                    continue
                rows += want
            taken.append(job)
        return taken

    def _run(self, jobs: list[_Job]) -> None:
        for job in jobs:
            if job.kind == "leave":
                self._leave(job.request)
            elif job.kind == "prefill":
                job.result = self._prefill(job.request, job.payload[0], int(job.payload[1]))
        steps = [job for job in jobs if job.kind == "step"]
        if steps:
            started = time.monotonic()
            self._step(steps)
            self._last_step_s = time.monotonic() - started

    def _prefill(self, req: _Request, embeds: torch.Tensor, rows: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run one prompt (T, D) alone, reusing its conversation's cached prefix."""
        # A second prefill (beam replay) drops the request's earlier rows from the batch.
        self._drop_rows(req)
        reused, past = (0, None) if req.session is None else self.cache.lookup(req.session, embeds)
        config = self.lm.model.config
        start = DynamicCache(config=config) if past is None else to_cache(past, config)
        positions = torch.arange(reused, len(embeds), device=embeds.device)[None]  # (1, T')
        hidden, cache = self.lm.hidden(embeds[reused:][None], past=start, positions=positions)
        layers = from_cache(cache)  # type: ignore[arg-type]  # (1, H, T, d)
        if rows > 1:
            layers = select_rows(layers, torch.zeros(rows, dtype=torch.long))
        req.layers, req.rows = layers, rows
        req.mask = torch.ones(rows, len(embeds), dtype=torch.long)
        req.positions = torch.full((rows,), len(embeds), dtype=torch.long)
        req.prompt, req.fed = embeds, []
        if req not in self._active:
            self._active.append(req)
        last = hidden[:, -1].expand(rows, -1)  # (rows, D)
        return last, self.logits(last)

    def _step(self, jobs: list[_Job]) -> None:
        """One forward pass for every row of ``jobs``: (B, 1, D) in, hidden and logits out."""
        jobs = sorted(jobs, key=self._batch_order)
        self._compose(jobs)
        assert self._layers is not None
        tokens = torch.cat([job.payload[0] for job in jobs]).to(self.lm.model.device)  # (B,)
        embeds = self.lm.embed_ids(tokens[:, None], self.bridge.ret_embedding)  # (B, 1, D)
        mask = torch.cat([self._mask, torch.ones(len(tokens), 1, dtype=torch.long)], 1)
        positions = torch.cat([job.request.positions for job in jobs])[:, None]  # (B, 1)
        hidden, cache = self.lm.hidden(
            embeds, attention_mask=mask.to(embeds.device), past=to_cache(self._layers,
                                                                         self.lm.model.config),
            positions=positions.to(embeds.device))
        self._layers, self._mask = from_cache(cache), mask  # type: ignore[arg-type]
        last = hidden[:, -1]  # (B, D)
        logits = self.logits(last)
        self.largest_batch = max(self.largest_batch, len(tokens))
        for job in jobs:
            start, rows = self._spans[id(job.request)]
            job.request.positions = job.request.positions + 1
            if rows == 1 and job.request.session is not None:
                job.request.fed.append(embeds[start, 0])
            job.result = (last[start:start + rows], logits[start:start + rows])

    def _batch_order(self, job: _Job) -> tuple[int, int]:
        span = self._spans.get(id(job.request))
        return (0, span[0]) if span is not None else (1, 0)

    def _compose(self, jobs: list[_Job]) -> None:
        """Make the shared batch hold exactly ``jobs``' rows, in order (reused when unchanged)."""
        wanted = [job.request for job in jobs]
        if not self._stale and wanted == self._members and all(job.reorder is None for job in jobs):
            return
        self._park_absent(wanted)
        gather: list[torch.Tensor] = []
        outside: list[tuple[Layers, torch.Tensor]] = []
        for job in jobs:
            req, span = job.request, self._spans.get(id(job.request))
            if span is not None:
                rows = torch.arange(span[0], span[0] + span[1])
                gather.append(rows if job.reorder is None else rows[job.reorder])
            else:
                assert req.layers is not None and req.mask is not None
                order = job.reorder
                layers = req.layers if order is None else select_rows(req.layers, order)
                outside.append((layers, req.mask if order is None else req.mask[order]))
                req.layers = req.mask = None
            if job.reorder is not None:
                req.positions = req.positions[job.reorder]
        parts = outside
        if gather:
            assert self._layers is not None
            index = torch.cat(gather)
            parts = [(select_rows(self._layers, index), self._mask[index]), *outside]
        self._layers, self._mask = _stack(parts)
        self._members, self._stale = wanted, False
        self._spans, start = {}, 0
        for req in wanted:
            req.rows = len(req.positions)
            self._spans[id(req)] = (start, req.rows)
            start += req.rows

    def _drop_rows(self, req: _Request) -> tuple[int, int] | None:
        """Forget where ``req``'s rows are; the batch must be recomposed before the next step."""
        span = self._spans.pop(id(req), None)
        self._stale = self._stale or span is not None
        return span

    def _park_absent(self, wanted: list[_Request]) -> None:
        """Copy out the rows of active requests that skip this step; they rejoin later."""
        present = {id(r) for r in wanted}
        for req in self._members:
            span = self._spans.get(id(req))
            if id(req) in present or span is None or req not in self._active:
                continue
            rows = torch.arange(span[0], span[0] + span[1])
            assert self._layers is not None
            req.layers, req.mask = select_rows(self._layers, rows), self._mask[rows]
            self._spans.pop(id(req))

    def _leave(self, req: _Request) -> None:
        """A finished request: its rows go; a one-row conversation's KV goes to the cache."""
        if req in self._active:
            self._active.remove(req)
        span = self._drop_rows(req)
        if req.session is None or req.prompt is None or req.rows != 1:
            return
        if span is None and req.layers is None:
            return  # its rows were lost with a failed step: nothing to keep
        if span is not None:
            assert self._layers is not None
            row = torch.tensor([span[0]])
            layers, mask = select_rows(self._layers, row), self._mask[span[0]]
        else:
            assert req.layers is not None and req.mask is not None
            layers, mask = req.layers, req.mask[0]
        padding = int((mask == 0).sum())
        layers = tuple((k.clone(), v.clone()) for k, v in slice_positions(layers, padding))
        embeds = torch.cat([req.prompt, *(e[None] for e in req.fed)])  # (T, D)
        self.cache.put(req.session, embeds, layers)


def _stack(parts: list[tuple[Layers, torch.Tensor]]) -> tuple[Layers, torch.Tensor]:
    """Left-pad every part to the widest, stack the rows, drop columns no row uses."""
    width = max(mask.shape[1] for _, mask in parts)
    padded = [left_pad(layers, width) for layers, _ in parts]
    masks = [torch.nn.functional.pad(mask, (width - mask.shape[1], 0)) for _, mask in parts]
    layers, mask = cat_rows(padded), torch.cat(masks)
    unused = int((mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
    if unused:
        layers, mask = slice_positions(layers, unused), mask[:, unused:]
    return layers, mask


class BatchedStepper:
    """A ``Stepper`` whose forward passes run in the shared batch (one per decode)."""

    def __init__(self, batcher: ContinuousBatcher, session: str | None) -> None:
        self.batcher = batcher
        self.request = _Request(session)
        self._hidden: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None
        self._reorder: torch.Tensor | None = None

    def prefill(self, embeds: torch.Tensor, batch: int) -> torch.Tensor:
        self._reorder = None
        return self._keep(_Job("prefill", self.request, (embeds, torch.tensor(batch))))

    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        job = _Job("step", self.request, (token_ids.cpu(),), reorder=self._reorder)
        self._reorder = None
        return self._keep(job)

    def reorder(self, rows: torch.Tensor) -> None:
        # Two reorders before a step compose: new row i comes from old row first[rows[i]].
        self._reorder = rows if self._reorder is None else self._reorder[rows]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden is self._hidden and self._logits is not None:
            return self._logits  # computed with the whole batch's in one projection
        return self.batcher.logits(hidden)

    def close(self) -> None:
        """Leave the batch (and hand the conversation's KV to the cross-turn cache)."""
        self.batcher.submit(_Job("leave", self.request))

    def _keep(self, job: _Job) -> torch.Tensor:
        result = self.batcher.submit(job)
        assert result is not None
        self._hidden, self._logits = result
        return self._hidden
