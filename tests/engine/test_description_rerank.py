"""Descriptions decoded apart: beam search whose finished beams are re-ranked by how well
their words, asked as a search, find the image; every other reply as configured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch
from PIL import Image

from engine.generate import BeamCandidate, DecodeSettings, Finished, decode
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT, RETRIEVAL_PROMPTS
from engine.types import GenerationOptions, ImagePart, TextPart, Turn
from tests.engine.lone_stepper import HfStepper
from tests.engine.tiny import tiny_engine


def _described(beams: int = 3, match: float = 1.0) -> RSCapRet:
    engine = tiny_engine()
    generation = dataclasses.replace(engine.config.generation, description_beams=beams,
                                     description_match=match)
    engine.config = dataclasses.replace(engine.config, generation=generation)
    return engine


def _ids(events: Iterator[int | Finished]) -> list[int]:
    return [e for e in events if not isinstance(e, Finished)]


def _beam_settings(engine: RSCapRet, **changes: object) -> DecodeSettings:
    settings = engine._settings(GenerationOptions(strategy="beam", num_beams=4,
                                                  allow_retrieval=False, max_new_tokens=8))
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


def _prompt(engine: RSCapRet, image: Image.Image) -> torch.Tensor:
    return engine._prompt_embeddings([image_turn(CAPTION_PROMPT, "img")],
                                     {"img": engine.embed_images([image])[0]}, True)


def test_a_rerank_picks_the_candidate_with_the_best_score_plus_bonus(image: Image.Image) -> None:
    engine = tiny_engine()
    embeds = _prompt(engine, image)
    plain = _ids(decode(HfStepper(engine.lm, engine.bridge), embeds, _beam_settings(engine)))
    offered: list[list[list[int]]] = []

    def no_bonus(candidates: Sequence[BeamCandidate]) -> list[float]:
        offered.append([list(c.ids) for c in candidates])
        return [0.0] * len(candidates)

    settings = _beam_settings(engine, rerank=no_bonus)
    assert _ids(decode(HfStepper(engine.lm, engine.bridge), embeds, settings)) == plain
    candidates = offered[0]
    assert 2 <= len(candidates) <= 8 and len({tuple(c) for c in candidates}) == len(candidates)

    def favour_last(candidates: Sequence[BeamCandidate]) -> list[float]:
        return [0.0] * (len(candidates) - 1) + [1e6]

    settings = _beam_settings(engine, rerank=favour_last)
    chosen = _ids(decode(HfStepper(engine.lm, engine.bridge), embeds, settings))
    assert chosen != plain
    assert chosen == [t for t in candidates[-1] if t not in settings.eos_ids]


class _Recording:
    """Wraps a backend and keeps the settings of each decode."""

    def __init__(self, engine: RSCapRet) -> None:
        self.inner, self.settings = engine.backend, list[DecodeSettings]()

    def decode(self, embeds: torch.Tensor, settings: DecodeSettings) -> Iterator[int | Finished]:
        self.settings.append(settings)
        yield from self.inner.decode(embeds, settings)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_only_a_request_to_describe_one_image_is_decoded_apart(image: Image.Image) -> None:
    engine = _described()
    recording = _Recording(engine)
    engine.backend = recording  # type: ignore[assignment]
    images = {"a": engine.embed_images([image])[0], "b": engine.embed_images([image])[0]}
    describe = [image_turn(CAPTION_PROMPT, "a")]
    ask = [Turn("user", (ImagePart("a"), TextPart("Is there a river?")))]
    both = [Turn("user", (ImagePart("a"), ImagePart("b"), TextPart(CAPTION_PROMPT)))]
    for dialogue in (describe, ask, both):
        engine.generate(dialogue, images)
    engine.generate(describe, images, GenerationOptions(strategy="greedy"))
    described, asked, two, greedy = recording.settings
    assert described.strategy == "beam" and described.num_beams == 3
    assert described.rerank is not None
    for other in (asked, two, greedy):
        assert other.strategy == "greedy" and other.rerank is None
    assert engine.caption(image) == engine.generate(describe, {"a": images["a"]}).text


def test_the_bonus_is_the_weighted_search_score_of_the_words(image: Image.Image) -> None:
    engine = _described(match=2.5)
    embedding = engine.embed_images([image])[0]
    words = ["a harbour with boats", "many buildings", "a green field"]
    candidates = [BeamCandidate(0.0, engine.lm.tokenizer.encode(w, add_special_tokens=False), True)
                  for w in words]
    bonus = engine._search_match(embedding, 2.5)(candidates)
    row = engine.gallery_rows(embedding[None])[0]
    for text, got in zip(words, bonus, strict=True):
        query = engine.retrieve(
            [Turn("user", (TextPart(RETRIEVAL_PROMPTS[0].format(query=text)),))], {})
        assert got == pytest.approx(2.5 * 3 * float(query @ row), abs=1e-4)
    assert len(set(np.round(bonus, 6))) == 3
