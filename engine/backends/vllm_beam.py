"""Beam search on vLLM generate servers, stepped from the client, as ``engine.generate``'s.

vLLM's own beam search takes no prompt embeddings, so each step asks the server for one token
per live beam (the prompt's embeddings followed by the beam's tokens'), with the ``2 x beams``
likeliest next tokens and their log-probabilities. The server must report them *processed*
(``--logprobs-mode processed_logprobs``, as `capret serve-llm` starts it): after the [RET] ban
or bias and the engine's repetition penalty (the served logits processor, told the beam's
tokens as already generated), so each is the hf backend's ``log_softmax(adjust_scores(...))``.
The beams then advance, finish and are re-ranked exactly as in ``engine.generate._beam``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from engine.backends.vllm_http import VllmError
from engine.backends.vllm_payload import completion_body
from engine.generate import BeamCandidate, DecodeSettings, beam_step, chosen_beam, unfinished

# The argument naming a beam's earlier tokens to the served penalty (vllm_plugin).
PREVIOUS_KEY = "capret_previous"
# Each beam's next tokens, as (token id -> log-probability) of its likeliest few.
NextTokens = Callable[[list[list[int]]], list[dict[int, float]]]


def beam_search(next_tokens: NextTokens, s: DecodeSettings) -> list[int]:
    """The chosen beam's ids (a closing EOS or [RET] included), as ``engine.generate`` picks."""
    n, width = s.num_beams, 2 * s.num_beams
    beams: list[list[int]] = [[]]  # all n beams start identical: expand from one
    totals = [0.0]
    done: list[BeamCandidate] = []
    for _ in range(s.max_new_tokens):
        rows = next_tokens(beams)
        flat = sorted(((totals[i] + lp, i, token) for i, row in enumerate(rows)
                       for token, lp in row.items()), key=lambda c: (-c[0], c[1], c[2]))
        kept, tokens, keep = beam_step(flat[:width], beams, done, s)
        if len(done) >= n or not kept:
            break
        beams = [beams[r] + [t] for r, t in zip(kept, tokens, strict=True)]
        totals = keep
    done.extend(unfinished(beams, totals, s))
    return chosen_beam(done, s)


def step_body(model: str, prompt: torch.Tensor, beam: list[int], s: DecodeSettings,
              width: int) -> dict[str, Any]:
    """The /v1/completions request for a beam's next tokens (``prompt``: the prompt's and
    the beam's embeddings).
    """
    one = dataclasses.replace(s, strategy="greedy", max_new_tokens=1)
    body = completion_body(model, prompt, one, stream=False)
    body["logprobs"] = width
    body["return_tokens_as_token_ids"] = True  # keys "token_id:N": two ids may share a text
    body["vllm_xargs"] = {**body["vllm_xargs"], PREVIOUS_KEY: beam}
    return body


def top_logprobs(answer: dict[str, Any]) -> dict[int, float]:
    """Token id -> log-probability of a one-token answer's likeliest next tokens."""
    try:
        top = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        return {int(str(key).removeprefix("token_id:")): float(value)
                for key, value in top.items()}
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise VllmError(f"unexpected logprobs in a beam step: {str(answer)[:200]}") from exc


def in_parallel(one: Callable[[list[int]], dict[int, float]]) -> NextTokens:
    """``NextTokens`` that asks for every beam at once (the server batches them)."""
    def step(beams: list[list[int]]) -> list[dict[int, float]]:
        if len(beams) == 1:
            return [one(beams[0])]
        with ThreadPoolExecutor(len(beams), "capret-vllm-beam") as pool:
            return list(pool.map(one, beams))

    return step
