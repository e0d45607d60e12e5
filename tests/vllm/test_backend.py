"""The vllm backend's behaviour on real servers: streaming, [RET] as a stop and forbidden,
sampling with a seed, concurrent conversations, and the start-up checks' errors.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from bot.config import load_config
from engine.backends.vllm import VllmBackend
from engine.backends.vllm_connect import connect_vllm
from engine.backends.vllm_http import VllmError, VllmUnavailableError
from engine.backends.vllm_launch import ServerPair
from engine.bridge import Bridge
from engine.generate import Finished
from engine.model import RSCapRet
from engine.types import GenerationOptions, GenerationResult, TextPart, Turn
from tests.vllm.conftest import free_port, vllm_config

pytestmark = pytest.mark.real_weights

REQUEST = [Turn("user", (TextPart("Show me an airport with many planes"),))]
QUESTION = [Turn("user", (TextPart("What can satellite images show about a city?"),))]


def backend_of(engine: RSCapRet) -> VllmBackend:
    assert isinstance(engine.backend, VllmBackend)
    return engine.backend


def test_streaming_equals_non_streaming(vllm_engine: RSCapRet) -> None:
    backend = backend_of(vllm_engine)
    # Words, not [RET]: the retrained bridge answers this question with a search otherwise.
    options = GenerationOptions(max_new_tokens=25, allow_retrieval=False)
    pieces = list(vllm_engine.stream(QUESTION, {}, options))
    streamed = pieces[-1]
    assert isinstance(streamed, GenerationResult)
    backend.stream = False
    try:
        whole = vllm_engine.generate(QUESTION, {}, options)
    finally:
        backend.stream = True
    assert len(pieces) > 3  # text came in pieces, as decoded
    assert "".join(p for p in pieces if isinstance(p, str)) == whole.text
    assert streamed == dataclasses.replace(whole, query=streamed.query)


def test_ret_stops_and_can_be_forbidden(vllm_engine: RSCapRet) -> None:
    allowed = vllm_engine.generate(REQUEST, {}, GenerationOptions(max_new_tokens=30))
    assert allowed.token_ids[-1] == vllm_engine.lm.ret_id and allowed.retrieved
    forbidden = vllm_engine.generate(
        REQUEST, {}, GenerationOptions(max_new_tokens=30, allow_retrieval=False))
    assert vllm_engine.lm.ret_id not in forbidden.token_ids and not forbidden.retrieved
    assert forbidden.text


def test_sampling_with_a_seed_repeats(vllm_engine: RSCapRet) -> None:
    options = GenerationOptions(strategy="sample", temperature=1.0, top_p=0.95, seed=7,
                                max_new_tokens=20, allow_retrieval=False)
    first, again = (vllm_engine.generate(QUESTION, {}, options) for _ in range(2))
    assert first.token_ids == again.token_ids
    other = vllm_engine.generate(QUESTION, {}, dataclasses.replace(options, seed=8))
    assert other.token_ids != first.token_ids


def test_beam_search_steps_from_the_client_as_hf(hf_engine: RSCapRet,
                                                 vllm_engine: RSCapRet) -> None:
    options = GenerationOptions(strategy="beam", num_beams=3, max_new_tokens=20,
                                allow_retrieval=False)
    beams = vllm_engine.generate(QUESTION, {}, options)
    assert beams.token_ids == hf_engine.generate(QUESTION, {}, options).token_ids
    assert beams.text


def test_eight_conversations_at_once(hf_engine: RSCapRet, vllm_engine: RSCapRet) -> None:
    topics = ["a harbour", "a forest", "a stadium", "a river", "a bridge", "a beach",
              "a church", "farmland"]
    dialogues = [[Turn("user", (TextPart(f"Tell me about {t} seen from above."),))]
                 for t in topics]
    options = GenerationOptions(max_new_tokens=20, allow_retrieval=False)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda d: vllm_engine.generate(d, {}, options), dialogues))
    assert all(r.text for r in results)
    assert results[0].token_ids == hf_engine.generate(dialogues[0], {}, options).token_ids


def test_a_stale_ret_row_is_refused(vllm_engine: RSCapRet, servers: ServerPair) -> None:
    other = Bridge(vllm_engine.bridge.spec)
    with torch.no_grad():
        other.ret_embedding.add_(0.5)
    config = vllm_config(load_config().engine, servers).vllm
    with pytest.raises(VllmError, match="export-vllm"):
        connect_vllm(config, vllm_engine.lm, other)


def test_a_server_that_is_down_is_named(vllm_engine: RSCapRet, servers: ServerPair) -> None:
    config = dataclasses.replace(
        vllm_config(load_config().engine, servers).vllm,
        generate_urls=(f"http://127.0.0.1:{free_port()}",), retries=1, backoff_s=0.05)
    with pytest.raises(VllmUnavailableError, match="cannot reach the vLLM server"):
        connect_vllm(config, vllm_engine.lm, vllm_engine.bridge)


def test_decode_events_end_with_the_ret_hidden_state(vllm_engine: RSCapRet) -> None:
    embeds = vllm_engine._prompt_embeddings(REQUEST, {}, add_generation_prompt=True)
    settings = vllm_engine._settings(GenerationOptions(max_new_tokens=30))
    events = list(vllm_engine.backend.decode(embeds, settings))
    final = events[-1]
    assert isinstance(final, Finished) and final.ret_hidden is not None
    assert final.ret_hidden.shape == (vllm_engine.lm.hidden_size,)
