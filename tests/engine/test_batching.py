"""Continuous batching: concurrent decodes share steps and give the one-at-a-time results."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from engine.backends.hf import HfBackend
from engine.config import BatchingConfig
from engine.generate import DecodeEvent, DecodeSettings, Finished
from engine.model import RSCapRet
from engine.types import GenerationOptions, ImagePart, TextPart, Turn
from tests.engine.lone_stepper import decode_alone
from tests.engine.tiny import tiny_engine

QUESTIONS = ["What is here?", "Describe the buildings near the river in detail, please.",
             "Any boats?", "Is this an airport or a harbour, and how many planes are there?",
             "Count the trees.", "What colour is the roof of the largest building?"]


def _prompts(engine: RSCapRet, image: Image.Image) -> list[torch.Tensor]:
    """Prompt embeddings of different lengths, with and without an image."""
    images = {"img": engine.embed_images([image])[0]}
    out = []
    for i, question in enumerate(QUESTIONS):
        parts = (ImagePart("img"), TextPart(question)) if i % 2 else (TextPart(question),)
        out.append(engine._prompt_embeddings([Turn("user", parts)], images, True))
    return out


def _settings(engine: RSCapRet, **overrides: object) -> DecodeSettings:
    options = GenerationOptions(**overrides)  # type: ignore[arg-type]
    return engine._settings(options)


def _backend(engine: RSCapRet) -> HfBackend:
    assert isinstance(engine.backend, HfBackend)
    return engine.backend


def _concurrently(jobs: list[Callable[[], list[DecodeEvent]]]) -> list[list[DecodeEvent]]:
    """Run ``jobs`` in threads that start together; their results in order."""
    results: list[list[DecodeEvent]] = [[] for _ in jobs]
    start = threading.Barrier(len(jobs))

    def work(i: int) -> None:
        start.wait()
        results[i] = jobs[i]()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _tokens(events: list[DecodeEvent]) -> list[int]:
    return [e for e in events if isinstance(e, int)]


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_concurrent_decodes_equal_one_at_a_time(image: Image.Image, strategy: str) -> None:
    engine = tiny_engine(seed=1)
    backend = _backend(engine)
    prompts = _prompts(engine, image)
    # A peaked distribution for sampling: the tiny random model's logits are nearly flat, and
    # batched and lone matmuls round differently, which reorders near-equal probabilities.
    peaked = {"temperature": 0.05, "top_p": 0.3} if strategy == "sample" else {}
    settings = [_settings(engine, strategy=strategy, seed=i, max_new_tokens=10, num_beams=3,
                          **peaked) for i in range(len(prompts))]
    alone = [list(decode_alone(backend, p, s)) for p, s in zip(prompts, settings, strict=True)]
    together = _concurrently([
        (lambda p=p, s=s: list(backend.decode(p, s)))  # type: ignore[misc]
        for p, s in zip(prompts, settings, strict=True)])
    assert [_tokens(t) for t in together] == [_tokens(a) for a in alone]
    assert backend.batcher.largest_batch > (3 if strategy == "beam" else 1)  # steps were shared
    assert not backend.batcher._active  # every finished request left the batch


def test_late_arrivals_join_a_running_batch(image: Image.Image) -> None:
    """A request that starts while another is mid-decode joins it and still matches."""
    engine = tiny_engine(seed=2)
    backend = _backend(engine)
    prompts = _prompts(engine, image)[:3]
    settings = _settings(engine, max_new_tokens=12)
    settings = dataclasses.replace(settings, eos_ids=frozenset())  # all run to the limit
    alone = [_tokens(list(decode_alone(backend, p, settings))) for p in prompts]
    first = backend.decode(prompts[0], settings)
    head = [next(first), next(first)]  # the first request is decoding now
    late = _concurrently([(lambda p=p: list(backend.decode(p, settings)))  # type: ignore[misc]
                          for p in prompts[1:]])
    assert _tokens(head + list(first)) == alone[0]
    assert [_tokens(x) for x in late] == alone[1:]


def test_ret_rows_finish_with_their_own_hidden_state(image: Image.Image) -> None:
    engine = tiny_engine(ret_bias=1e4)
    backend = _backend(engine)
    prompts = _prompts(engine, image)[:4]
    settings = _settings(engine)
    alone = [list(decode_alone(backend, p, settings)) for p in prompts]
    together = _concurrently([(lambda p=p: list(backend.decode(p, settings)))  # type: ignore[misc]
                              for p in prompts])
    for mine, reference in zip(together, alone, strict=True):
        assert _tokens(mine) == _tokens(reference) == [engine.lm.ret_id]
        assert isinstance(mine[-1], Finished) and isinstance(reference[-1], Finished)
        assert mine[-1].ret_hidden is not None and reference[-1].ret_hidden is not None
        torch.testing.assert_close(mine[-1].ret_hidden, reference[-1].ret_hidden,
                                   atol=1e-4, rtol=1e-4)


def test_the_batch_never_exceeds_max_rows(image: Image.Image) -> None:
    engine = tiny_engine(seed=3)
    lm, bridge = engine.lm, engine.bridge
    engine.backend = backend = HfBackend(lm, bridge, BatchingConfig(max_rows=2))
    prompts = _prompts(engine, image)
    settings = _settings(engine, max_new_tokens=8)
    alone = [_tokens(list(decode_alone(backend, p, settings))) for p in prompts]
    together = _concurrently([(lambda p=p: list(backend.decode(p, settings)))  # type: ignore[misc]
                              for p in prompts])
    assert [_tokens(t) for t in together] == alone
    assert backend.batcher.largest_batch == 2


def test_generate_from_many_threads_matches_sequential(image: Image.Image) -> None:
    """The engine facade (text, streaming pieces) is unchanged by batching."""
    engine = tiny_engine(seed=4)
    images = {"img": engine.embed_images([image])[0]}
    dialogues = [[Turn("user", (ImagePart("img"), TextPart(q)))] for q in QUESTIONS[:4]]
    options = GenerationOptions(max_new_tokens=10)
    sequential = [engine.generate(d, images, options).token_ids for d in dialogues]
    results: list[tuple[int, ...]] = [() for _ in dialogues]

    def work(i: int) -> None:
        results[i] = engine.generate(dialogues[i], images, options).token_ids

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(dialogues))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == sequential
    assert np.all([len(r) > 0 for r in results])
