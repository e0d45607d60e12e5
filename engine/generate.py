"""Decoding strategies (greedy, sampling, beam search) over a step function, with [RET] as a stop.

The strategies only see a ``Stepper``: "given these next tokens, what are the hidden states".
The hf backend implements it with a KV cache; any backend that can step can reuse them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch


@dataclass(frozen=True)
class DecodeSettings:
    """Resolved decoding settings of one request."""

    strategy: Literal["greedy", "sample", "beam"]
    max_new_tokens: int
    temperature: float
    top_p: float
    num_beams: int
    repetition_penalty: float
    ret_logit_bias: float
    allow_ret: bool
    ret_id: int
    eos_ids: frozenset[int]
    seed: int | None = None
    # Beam scores are divided by length ** length_penalty (> 1 favours longer descriptions).
    length_penalty: float = 1.0
    # Conversation key for reusing its KV across turns; None = no reuse.
    session: str | None = None
    # Beam search only: given the best finished beams (at most RERANK_CANDIDATES), a bonus
    # for each, added to its length-normalised log-probability to pick the reply.
    rerank: Callable[[Sequence[BeamCandidate]], Sequence[float]] | None = None


@dataclass(frozen=True)
class BeamCandidate:
    """A beam at the end of a search."""

    score: float  # log-probability / length ** length_penalty
    ids: list[int]
    finished: bool  # ended by EOS or [RET], not by the length limit


# Finished beams a rerank chooses among, the likeliest first.
RERANK_CANDIDATES = 8

@dataclass(frozen=True)
class Finished:
    """End of a decode; ``ret_hidden`` (D,) is the hidden state at an emitted [RET]."""

    ret_hidden: torch.Tensor | None


DecodeEvent = int | Finished


class Stepper(Protocol):
    """Incremental forward passes over one prompt, for ``batch`` parallel continuations."""

    def prefill(self, embeds: torch.Tensor, batch: int) -> torch.Tensor:
        """Run the prompt (T, D); hidden state of its last position, (batch, D)."""
        ...

    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (batch,); their hidden states (batch, D)."""
        ...

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep only/duplicate the given rows of the cache (beam search)."""
        ...

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, D) -> (batch, V), including the [RET] column."""
        ...


def decode(stepper: Stepper, embeds: torch.Tensor, s: DecodeSettings) -> Iterator[DecodeEvent]:
    """Yield token ids as chosen, then ``Finished``; stops on EOS, [RET] or the length limit."""
    if s.strategy == "beam" and s.num_beams > 1:
        yield from _beam(stepper, embeds, s)
    else:
        yield from _sequential(stepper, embeds, s)


def _sequential(stepper: Stepper, embeds: torch.Tensor, s: DecodeSettings
                ) -> Iterator[DecodeEvent]:
    generator = torch.Generator().manual_seed(s.seed) if s.seed is not None else None
    hidden = stepper.prefill(embeds, batch=1)
    chosen: list[int] = []
    for _ in range(s.max_new_tokens):
        scores = adjust_scores(stepper.logits(hidden)[0].float(), chosen, s)
        token = _pick(scores, s, generator)
        chosen.append(token)
        if token in s.eos_ids:
            break
        yield token
        hidden = stepper.step(torch.tensor([token]))
        if token == s.ret_id:
            yield Finished(hidden[0])
            return
    yield Finished(None)


def _beam(stepper: Stepper, embeds: torch.Tensor, s: DecodeSettings) -> Iterator[DecodeEvent]:
    n = s.num_beams
    hidden = stepper.prefill(embeds, batch=n)
    beams: list[list[int]] = [[] for _ in range(n)]
    totals = torch.zeros(n)
    totals[1:] = -float("inf")  # all beams start identical: expand from the first only
    done: list[BeamCandidate] = []
    for _ in range(s.max_new_tokens):
        logp = torch.stack([
            torch.log_softmax(adjust_scores(row.float(), beams[i], s), -1)
            for i, row in enumerate(stepper.logits(hidden))
        ])  # (n, V)
        flat = (totals.unsqueeze(1) + logp).view(-1)
        top = torch.topk(flat, 2 * n)
        ranked = [(score, *divmod(index, logp.shape[1]))
                  for score, index in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
        rows, tokens, keep = beam_step(ranked, beams, done, s)
        if len(done) >= n or not rows:
            break
        beams = [beams[r] + [t] for r, t in zip(rows, tokens, strict=True)]
        totals = torch.tensor(keep)
        stepper.reorder(torch.tensor(rows))
        hidden = stepper.step(torch.tensor(tokens))
    done.extend(unfinished(beams, totals.tolist(), s))
    yield from _replay(stepper, embeds, chosen_beam(done, s), s)


def beam_step(ranked: Sequence[tuple[float, int, int]], beams: Sequence[list[int]],
              done: list[BeamCandidate], s: DecodeSettings
              ) -> tuple[list[int], list[int], list[float]]:
    """One beam-search step over candidates ``(score, beam row, token)``, best first: those
    that close a beam (EOS or [RET]) join ``done`` scored by length; the ``num_beams`` best
    others go on, returned as their rows, tokens and scores. The hf backend and the vLLM
    client step beams alike through it.
    """
    rows: list[int] = []
    tokens: list[int] = []
    keep: list[float] = []
    for score, row, token in ranked:
        seq = beams[row] + [token]
        if token in s.eos_ids or token == s.ret_id:
            done.append(BeamCandidate(score / len(seq) ** s.length_penalty, seq, True))
        elif len(rows) < s.num_beams:
            rows.append(row)
            tokens.append(token)
            keep.append(score)
    return rows, tokens, keep


def unfinished(beams: Sequence[list[int]], totals: Sequence[float],
               s: DecodeSettings) -> list[BeamCandidate]:
    """The beams still open when the token budget ends, scored by length."""
    return [BeamCandidate(float(t) / max(len(b), 1) ** s.length_penalty, b, False)
            for t, b in zip(totals, beams, strict=True)]


def chosen_beam(done: list[BeamCandidate], s: DecodeSettings) -> list[int]:
    """The likeliest beam, or with ``s.rerank`` the best of the likeliest finished ones."""
    if s.rerank is None:
        return max(done, key=lambda c: c.score).ids
    unique = {tuple(c.ids): c for c in sorted(done, key=lambda c: c.score)}  # best kept
    pool = [c for c in unique.values() if c.finished] or list(unique.values())
    ranked = sorted(pool, key=lambda c: -c.score)[:RERANK_CANDIDATES]
    bonus = s.rerank(ranked)
    return max(zip(ranked, bonus, strict=True), key=lambda p: p[0].score + p[1])[0].ids


def _replay(stepper: Stepper, embeds: torch.Tensor, best: list[int], s: DecodeSettings
            ) -> Iterator[DecodeEvent]:
    """Emit the winning beam; for a [RET] ending, recompute its hidden state on one row."""
    text = [t for t in best if t not in s.eos_ids]
    yield from text
    if text and text[-1] == s.ret_id:
        stepper.prefill(embeds, batch=1)
        hidden = torch.zeros(0)
        for token in text:
            hidden = stepper.step(torch.tensor([token]))
        yield Finished(hidden[0])
    else:
        yield Finished(None)


def adjust_scores(logits: torch.Tensor, previous: list[int], s: DecodeSettings) -> torch.Tensor:
    """Apply the [RET] bias or ban, and the repetition penalty, to one row of logits (V,)."""
    logits = logits.clone()
    if s.allow_ret:
        logits[s.ret_id] += s.ret_logit_bias
    else:
        logits[s.ret_id] = -float("inf")
    if s.repetition_penalty != 1.0 and previous:
        seen = torch.tensor(sorted(set(previous)))
        values = logits[seen]
        logits[seen] = torch.where(values > 0, values / s.repetition_penalty,
                                   values * s.repetition_penalty)
    return logits


def _pick(scores: torch.Tensor, s: DecodeSettings, generator: torch.Generator | None) -> int:
    if s.strategy != "sample":
        return int(torch.argmax(scores))
    probs = torch.softmax(scores / max(s.temperature, 1e-5), dim=-1)
    ordered, order = torch.sort(probs, descending=True)
    cutoff = torch.cumsum(ordered, 0) - ordered > s.top_p  # keep the smallest nucleus
    ordered[cutoff] = 0.0
    choice = torch.multinomial(ordered / ordered.sum(), 1, generator=generator)
    return int(order[choice])
