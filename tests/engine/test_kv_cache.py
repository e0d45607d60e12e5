"""Reuse across turns: a conversation's KV is kept, bounded, dropped on request."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from engine.backends.hf import MIN_SHARED_ROWS, HfBackend
from engine.config import BatchingConfig
from engine.kv_cache import ConversationCache, common_prefix, nbytes
from engine.model import RSCapRet
from engine.types import GenerationOptions, ImagePart, TextPart, Turn
from tests.engine.tiny import tiny_engine

FOLLOW_UPS = ["What is in the top left corner?", "And the roads?", "How many cars are there?"]


def _conversation(engine: RSCapRet, image: Image.Image, session: str | None
                  ) -> list[tuple[int, ...]]:
    """Three turns about two images; each turn's reply token ids."""
    images = {"a": engine.embed_images([image])[0],
              "b": engine.embed_images([image.rotate(90)])[0]}
    options = GenerationOptions(max_new_tokens=10, session=session)
    dialogue: list[Turn] = []
    replies = []
    for i, text in enumerate(FOLLOW_UPS):
        parts = (ImagePart("a" if i == 0 else "b"), TextPart(text)) if i < 2 else (TextPart(text),)
        dialogue.append(Turn("user", parts))
        result = engine.generate(dialogue, images, options)
        replies.append(result.token_ids)
        dialogue.append(Turn("assistant", (TextPart(result.text or "ok"),)))
    return replies


def test_later_turns_reuse_the_kv_and_reply_as_a_fresh_prefill(image: Image.Image) -> None:
    engine = tiny_engine(seed=5)
    backend = engine.backend
    assert isinstance(backend, HfBackend)
    fresh = _conversation(engine, image, session=None)
    assert backend.batcher.cache.hits == 0
    reused = _conversation(engine, image, session="chat-1")
    assert reused == fresh
    # Turns 2 and 3 started from the cached prompt+reply: at least turn 1's prompt each.
    first_prompt = len(engine._layout([Turn("user", (ImagePart("a"), TextPart(FOLLOW_UPS[0])))],
                                      True))
    assert backend.batcher.cache.hits >= 2 * first_prompt
    assert len(backend.batcher.cache) == 1


def test_forget_session_and_new_bridge_drop_the_kv(image: Image.Image) -> None:
    engine = tiny_engine(seed=6)
    backend = engine.backend
    assert isinstance(backend, HfBackend)
    _conversation(engine, image, session="chat-2")
    _conversation(engine, image, session="chat-3")
    assert len(backend.batcher.cache) == 2
    engine.forget_session("chat-2")
    assert len(backend.batcher.cache) == 1


def _layers(tokens: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    return tuple((torch.zeros(1, 2, tokens, 8), torch.zeros(1, 2, tokens, 8)) for _ in range(2))


def test_cache_evicts_least_recently_used_beyond_its_count() -> None:
    cache = ConversationCache(max_conversations=2, max_mb=10)
    for key in ("a", "b"):
        cache.put(key, torch.randn(5, 4), _layers(5))
    cache.lookup("a", torch.randn(5, 4))  # "a" is now the most recent
    cache.put("c", torch.randn(5, 4), _layers(5))
    assert len(cache) == 2
    assert cache.lookup("b", torch.randn(5, 4)) == (0, None)


def test_cache_stays_within_its_megabytes() -> None:
    one = nbytes(_layers(100))  # 12.5 KiB
    cache = ConversationCache(max_conversations=100, max_mb=3.5 * one / 2**20)
    for i in range(10):
        cache.put(str(i), torch.randn(100, 4), _layers(100))
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 3
    cache.put("huge", torch.randn(400, 4), _layers(400))  # larger than the whole budget
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes


def test_reuse_is_the_common_prefix_and_leaves_one_position() -> None:
    embeds = torch.randn(6, 4)
    changed = embeds.clone()
    changed[4] += 1
    assert common_prefix(embeds, changed) == 4
    cache = ConversationCache(max_conversations=4, max_mb=1)
    cache.put("k", embeds, _layers(6))
    reused, layers = cache.lookup("k", changed)
    assert reused == 4 and layers is not None and layers[0][0].shape[2] == 4
    assert cache.lookup("k", embeds)[0] == 5  # identical prompt: the last one is prefilled


def test_a_small_cache_config_holds_under_many_conversations(image: Image.Image) -> None:
    engine = tiny_engine(seed=7)
    engine.backend = backend = HfBackend(engine.lm, engine.bridge,
                                         BatchingConfig(kv_cache_conversations=3))
    images = {"a": engine.embed_images([image])[0]}
    turn = Turn("user", (ImagePart("a"), TextPart("What is here?")))
    for i in range(6):
        engine.generate([turn], images, GenerationOptions(max_new_tokens=3, session=str(i)))
    assert len(backend.batcher.cache) == 3
    options = dataclasses.replace(GenerationOptions(max_new_tokens=3), session="5")
    assert engine.generate([turn], images, options).token_ids  # the newest is still usable
    assert np.isfinite(backend.batcher.cache.bytes)


def test_requests_sharing_a_template_reuse_its_kv_and_match_each_alone(
        engine: RSCapRet, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = [[Turn("user", (TextPart(f"Show me {words}"),))]
             for words in ("a beach", "many green trees around a playground", "a port .")]
    together = engine.ret_states(asked, {})
    alone = torch.cat([engine.ret_states([d], {}) for d in asked])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    layouts = [engine._layout(d, add_generation_prompt=True).ids for d in asked]
    backend = engine.backend
    assert isinstance(backend, HfBackend)
    lm_hidden = backend.lm.hidden
    widths = []

    def counting(embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 past: object = None, positions: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, object]:
        widths.append(embeds.shape[1])
        return lm_hidden(embeds, attention_mask, past, positions)

    monkeypatch.setattr(backend.lm, "hidden", counting)
    engine.ret_states(asked, {})
    # The template's common rows run once, then what differs, up to and with [RET].
    shared = widths[0]
    assert len(widths) == 2 and shared >= MIN_SHARED_ROWS
    assert widths[1] == max(len(ids) for ids in layouts) + 1 - shared
