"""The vLLM backend: decoding on a vLLM server from prompt embeddings, [RET] states from a second.

The engine still builds every prompt's embeddings (token rows, the [RET] row, image prefixes);
this backend sends them as ``prompt_embeds`` to ``/v1/completions`` (which applies no chat
template) and reads the chosen token ids back, streamed. Generation returns no hidden states, so
at [RET] the whole sequence (prompt, generated tokens, [RET]) goes to a pooling server (LAST
pooling, no activation), which returns the last layer's hidden state there, as the hf backend's.
Both serve the checkpoint written by ``engine.backends.vllm_export``. Each role may have several
replicas (``engine.backends.vllm_replicas``): a conversation sticks to its generate replica and a
reply cut by a dying one is decoded again on another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from engine.backends.vllm_beam import beam_search, in_parallel, step_body, top_logprobs
from engine.backends.vllm_http import HttpClient, VllmError
from engine.backends.vllm_payload import completion_body, pooling_body
from engine.backends.vllm_replicas import Replicas
from engine.generate import DecodeEvent, DecodeSettings, Finished

logger = logging.getLogger(__name__)

# Token ids (N,) -> their input embeddings (N, D), [RET] taking the bridge's row.
TokenEmbedder = Callable[[list[int]], torch.Tensor]


class VllmBackend:
    """Decodes on vLLM completions servers; [RET] hidden states from vLLM pooling servers."""

    def __init__(self, generate: Replicas, pool: Replicas, model: str,
                 embed_tokens: TokenEmbedder, stream: bool = True, concurrency: int = 8) -> None:
        self.generate = generate
        self.pool = pool
        self.model = model
        self.embed_tokens = embed_tokens
        self.stream = stream
        self.concurrency = concurrency

    def decode(self, embeds: torch.Tensor, settings: DecodeSettings) -> Iterator[DecodeEvent]:
        """Token ids as the server chooses them, then ``Finished`` (with [RET]'s hidden state)."""
        ids: list[int] = []
        for token in self._decoded(embeds, settings):
            ids.append(token)
            yield token
        if ids and ids[-1] == settings.ret_id:
            yield Finished(self.last_hidden(torch.cat([embeds, self._embed(ids, embeds)])))
        else:
            yield Finished(None)

    def _decoded(self, embeds: torch.Tensor, s: DecodeSettings) -> Iterator[int]:
        """Greedy or sampled ids streamed from a server; a beam search's from the client's
        steps (vLLM's own takes no prompt embeddings).
        """
        if s.strategy == "beam" and s.num_beams > 1:
            best = beam_search(in_parallel(lambda beam: self._beam_step(embeds, beam, s)), s)
            yield from _until_stop(best, s)
            return
        body = completion_body(self.model, embeds, s, self.stream)
        yield from self.generate.stream(lambda client: self._tokens(client, body, s),
                                        s.session)

    def _beam_step(self, embeds: torch.Tensor, beam: list[int], s: DecodeSettings
                   ) -> dict[int, float]:
        prompt = torch.cat([embeds, self._embed(beam, embeds)]) if beam else embeds
        body = step_body(self.model, prompt, beam, s, 2 * s.num_beams)
        return top_logprobs(self.generate.call(
            lambda client: client.post("/v1/completions", body), s.session))

    def forget_session(self, session: str) -> None:
        """The servers manage their own KV (prefix caching); the conversation picks afresh."""
        self.generate.forget(session)

    def last_hidden(self, embeds: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden state (D,) at the last position of ``embeds`` (T, D)."""
        body = pooling_body(self.model, embeds)
        answer = self.pool.call(lambda client: client.post("/pooling", body))
        return pooled_vector(answer, embeds.shape[1])

    def last_hidden_batch(self, sequences: list[torch.Tensor]) -> torch.Tensor:
        """``last_hidden`` of each sequence, sent as concurrent requests (the server batches
        them continuously): (N, D).
        """
        with ThreadPoolExecutor(self._workers(sequences), "capret-vllm-pool") as pool:
            return torch.stack(list(pool.map(self.last_hidden, sequences)))

    def _workers(self, sequences: list[torch.Tensor]) -> int:
        return max(1, min(self.concurrency, len(sequences)))

    def _embed(self, ids: list[int], like: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(ids).to(device=like.device, dtype=like.dtype)  # (N, D)

    def _tokens(self, client: HttpClient, body: dict[str, Any], s: DecodeSettings
                ) -> Iterator[int]:
        """The reply's token ids from one server, without a closing EOS; [RET] kept when it
        ended the reply.
        """
        choices = (client.stream("/v1/completions", body) if self.stream
                   else iter([client.post("/v1/completions", body)]))
        stop = None
        for chunk in choices:
            choice = chunk["choices"][0]
            for token in choice.get("token_ids") or ():
                if token in s.eos_ids:
                    return
                yield int(token)
                if token == s.ret_id:
                    return
            stop = choice.get("stop_reason", stop)
        if stop == s.ret_id:  # a server that leaves the stop token out of token_ids
            yield s.ret_id


def _until_stop(ids: list[int], s: DecodeSettings) -> list[int]:
    """A beam's ids as ``_tokens`` gives a reply's: no closing EOS, [RET] kept."""
    return [t for t in ids if t not in s.eos_ids]


def pooled_vector(answer: dict[str, Any], width: int) -> torch.Tensor:
    """The (D,) vector of a /pooling answer; a clear error for any other shape."""
    try:
        data = answer["data"][0]["data"]
    except (KeyError, IndexError, TypeError) as exc:
        raise VllmError(f"unexpected /pooling answer: {str(answer)[:200]}") from exc
    vector = torch.tensor(data, dtype=torch.float32)
    if vector.shape != (width,):
        raise VllmError(f"the pooling server returned a vector of shape {tuple(vector.shape)}, "
                        f"expected ({width},): is it started with LAST pooling "
                        "(`capret serve-llm` does that)?")
    return vector
