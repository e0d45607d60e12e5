"""Generation: strategies, streaming, and the [RET] switch on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.dihedral import quarter_turned
from engine.model import RSCapRet
from engine.types import GenerationOptions, GenerationResult, ImagePart, TextPart, Turn
from tests.engine.tiny import tiny_engine


def _dialogue() -> list[Turn]:
    return [Turn("user", (ImagePart("img"), TextPart("What is here?")))]


def _images(engine: RSCapRet, image: Image.Image) -> dict[str, np.ndarray]:
    return {"img": engine.embed_images([image])[0]}


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_streaming_equals_generate(engine: RSCapRet, image: Image.Image, strategy: str) -> None:
    options = GenerationOptions(strategy=strategy, seed=3)  # type: ignore[arg-type]
    images = _images(engine, image)
    items = list(engine.stream(_dialogue(), images, options))
    pieces = [i for i in items if isinstance(i, str)]
    final = items[-1]
    assert isinstance(final, GenerationResult)
    assert "".join(pieces).strip() == final.text
    assert final == engine.generate(_dialogue(), images, options) or (
        final.text == engine.generate(_dialogue(), images, options).text)


def test_max_new_tokens_bounds_generation(engine: RSCapRet, image: Image.Image) -> None:
    result = engine.generate(_dialogue(), _images(engine, image),
                             GenerationOptions(max_new_tokens=5))
    assert 1 <= len(result.token_ids) <= 5


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_forced_ret_logit_emits_ret_and_a_unit_query(image: Image.Image, strategy: str) -> None:
    engine = tiny_engine(ret_bias=1e4)  # the [RET] logit dominates every step
    result = engine.generate(_dialogue(), _images(engine, image),
                             GenerationOptions(strategy=strategy))  # type: ignore[arg-type]
    assert result.token_ids[-1] == engine.lm.ret_id
    assert result.query is not None and result.query.shape == (engine.search_dim,)
    assert np.linalg.norm(result.query) == pytest.approx(1.0, abs=1e-5)
    assert "[RET]" not in result.text


def test_retrieval_can_be_forbidden(image: Image.Image) -> None:
    engine = tiny_engine(ret_bias=1e4)
    result = engine.generate(_dialogue(), _images(engine, image),
                             GenerationOptions(allow_retrieval=False, max_new_tokens=6))
    assert result.query is None and engine.lm.ret_id not in result.token_ids


def test_ret_query_equals_forced_retrieve_after_same_text(image: Image.Image) -> None:
    """[RET] emitted as the first token gives the same vector as retrieve() on that dialogue."""
    engine = tiny_engine(ret_bias=1e4)
    images = _images(engine, image)
    emitted = engine.generate(_dialogue(), images).query
    forced = engine.retrieve(_dialogue(), images)
    assert emitted is not None
    np.testing.assert_allclose(emitted, forced, atol=1e-4)


def test_text_retrieval_and_image_query_shapes(engine: RSCapRet, image: Image.Image) -> None:
    query = engine.retrieve([Turn("user", (TextPart("airports near the sea"),))], {})
    embeddings = engine.embed_images([image, image.rotate(90)])
    for vectors in (engine.image_query(embeddings), engine.gallery_rows(embeddings)):
        assert query.shape == (engine.search_dim,) and vectors.shape == (2, engine.search_dim)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_gallery_embeddings_do_not_depend_on_which_way_is_up(engine: RSCapRet,
                                                               image: Image.Image) -> None:
    turned = [quarter_turned(image, k) for k in range(4)]
    gallery = engine.embed_for_gallery(turned)
    np.testing.assert_allclose(gallery, np.repeat(gallery[:1], 4, axis=0), atol=1e-5)
    # ...while the prompt's embedding of a turned image is another one.
    plain = engine.embed_images(turned[:2])
    assert not np.allclose(plain[0], plain[1], atol=1e-3)
    assert engine.gallery_encoder_id != engine.encoder_id


def test_caption_shortcut_returns_text(engine: RSCapRet, image: Image.Image) -> None:
    assert isinstance(engine.caption(image), str)


def test_missing_image_embedding_is_a_clear_error(engine: RSCapRet) -> None:
    with pytest.raises(KeyError, match="img"):
        engine.generate(_dialogue(), {})


def test_sampling_is_reproducible_with_a_seed(engine: RSCapRet, image: Image.Image) -> None:
    images = _images(engine, image)
    runs = [engine.generate(_dialogue(), images, GenerationOptions(strategy="sample", seed=7))
            for _ in range(2)]
    assert runs[0].token_ids == runs[1].token_ids


def test_batched_retrieval_equals_one_by_one(engine: RSCapRet) -> None:
    texts = ["airports near the sea", "a dense residential area with many buildings", "river"]
    dialogues = [[Turn("user", (TextPart(t),))] for t in texts]
    batched = engine.retrieve_batch(dialogues, {})
    single = np.stack([engine.retrieve(d, {}) for d in dialogues])
    np.testing.assert_allclose(batched, single, atol=1e-4)
