"""The same conversations through the hf and vllm backends: identical text and [RET] queries
within 1e-3, on the shipped default (real weights, trained bridge, real RSICD images): replies
greedy, descriptions beam-searched and re-ranked by the search match, as the default decodes.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.model import RSCapRet
from engine.types import GenerationOptions, GenerationResult, ImagePart, TextPart, Turn
from tests.paths import RSICD_IMAGES

pytestmark = pytest.mark.real_weights

OPTIONS = GenerationOptions(max_new_tokens=30)


def embeddings(engine: RSCapRet, *names: str) -> dict[str, np.ndarray]:
    images = [Image.open(RSICD_IMAGES / name).convert("RGB") for name in names]
    return dict(zip(names, engine.embed_images(images), strict=True))


def both(hf: RSCapRet, vllm: RSCapRet, dialogue: list[Turn], names: tuple[str, ...],
         options: GenerationOptions = OPTIONS) -> tuple[GenerationResult, GenerationResult]:
    images = embeddings(hf, *names)
    return hf.generate(dialogue, images, options), vllm.generate(dialogue, images, options)


def assert_same(a: GenerationResult, b: GenerationResult) -> None:
    assert b.token_ids == a.token_ids, (a.text, b.text)
    assert b.text == a.text
    assert (a.query is None) == (b.query is None)
    if a.query is not None and b.query is not None:
        assert np.abs(a.query - b.query).max() < 1e-3


def test_single_image_caption(hf_engine: RSCapRet, vllm_engine: RSCapRet) -> None:
    dialogue = [Turn("user", (ImagePart("00010.jpg"), TextPart("Describe this image.")))]
    hf, vllm = both(hf_engine, vllm_engine, dialogue, ("00010.jpg",),
                    GenerationOptions(max_new_tokens=30, allow_retrieval=False))
    assert len(hf.text.split()) >= 3
    assert_same(hf, vllm)


def test_two_images_over_three_turns(hf_engine: RSCapRet, vllm_engine: RSCapRet) -> None:
    dialogue = [
        Turn("user", (ImagePart("00001.jpg"), TextPart("Describe this image."))),
        Turn("assistant", (TextPart("A playground surrounded by green trees."),)),
        Turn("user", (ImagePart("00020.jpg"), TextPart("And this one? How is it different?"))),
    ]
    hf, vllm = both(hf_engine, vllm_engine, dialogue, ("00001.jpg", "00020.jpg"))
    assert_same(hf, vllm)


def test_retrieval_request_ends_in_ret_with_the_same_query(hf_engine: RSCapRet,
                                                           vllm_engine: RSCapRet) -> None:
    dialogue = [Turn("user", (TextPart("Show me an airport with many planes"),))]
    hf, vllm = both(hf_engine, vllm_engine, dialogue, ())
    assert hf.retrieved, hf.text  # the trained default answers a request for images with [RET]
    assert_same(hf, vllm)


def test_forced_retrieval_queries_agree(hf_engine: RSCapRet, vllm_engine: RSCapRet) -> None:
    dialogues = [[Turn("user", (TextPart(text),))]
                 for text in ("a harbour with boats", "dense residential area", "a beach")]
    single = [vllm_engine.retrieve(d, {}) for d in dialogues]
    batch = vllm_engine.retrieve_batch(dialogues, {})
    reference = hf_engine.retrieve_batch(dialogues, {})
    assert np.abs(np.stack(single) - reference).max() < 1e-3
    assert np.abs(batch - reference).max() < 1e-3


def test_batched_greedy_replies_agree(hf_engine: RSCapRet, vllm_engine: RSCapRet) -> None:
    dialogues = [[Turn("user", (ImagePart(name), TextPart("Describe this image.")))]
                 for name in ("00001.jpg", "00010.jpg", "00020.jpg")]
    images = embeddings(hf_engine, "00001.jpg", "00010.jpg", "00020.jpg")
    options = GenerationOptions(max_new_tokens=30, allow_retrieval=False)
    assert ([r.text for r in vllm_engine.generate_batch(dialogues, images, options)]
            == [r.text for r in hf_engine.generate_batch(dialogues, images, options)])
