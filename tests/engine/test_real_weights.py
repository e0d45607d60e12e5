"""The real embedded default, end to end: a real RSICD image in, a caption and a query out."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bot.config import load_config
from engine import create_engine
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT
from engine.types import GenerationOptions, TextPart, Turn
from tests.paths import RSICD_IMAGES as RSICD

pytestmark = pytest.mark.real_weights


@pytest.fixture(scope="module")
def engine() -> RSCapRet:
    return create_engine(load_config().engine)


def test_default_config_captions_a_real_image(engine: RSCapRet) -> None:
    image = Image.open(RSICD / "00001.jpg").convert("RGB")
    caption = engine.caption(image, GenerationOptions(max_new_tokens=30))
    assert isinstance(caption, str) and len(caption.split()) >= 2
    assert "[RET]" not in caption


def test_default_config_retrieves_with_ret(engine: RSCapRet) -> None:
    images = [Image.open(RSICD / name).convert("RGB") for name in ("00001.jpg", "00002.jpg")]
    gallery = engine.gallery_rows(engine.embed_images(images))
    query = engine.retrieve([Turn("user", (TextPart("Show me a playground"),))], {})
    assert gallery.shape == (2, engine.search_dim) and query.shape == (engine.search_dim,)
    # The towers' part on the datastore's principal directions: narrower than their 512.
    assert engine.search_dim == engine.bridge.search_dim + engine.config.search.clip_dims
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-4)
    assert np.isfinite(gallery @ query).all()


def test_engine_identities_name_the_embedded_models(engine: RSCapRet) -> None:
    assert engine.encoder_id.startswith("efficientnet-lite0")
    assert engine.lm.name == "embedded:smollm2-135m-instruct"
    assert engine.lm.tokenizer.encode("[RET]", add_special_tokens=False) == [engine.lm.ret_id]


def test_batched_descriptions_equal_one_at_a_time(engine: RSCapRet) -> None:
    names = ["00001.jpg", "00010.jpg", "00020.jpg"]
    features = engine.embed_images([Image.open(RSICD / n).convert("RGB") for n in names])
    embeddings = dict(zip(names, features, strict=True))
    dialogues = [[image_turn(CAPTION_PROMPT, n)] for n in names]
    options = GenerationOptions(strategy="greedy", max_new_tokens=30, allow_retrieval=False)
    single = [engine.generate(d, embeddings, options).text for d in dialogues]
    assert [r.text for r in engine.generate_batch(dialogues, embeddings, options)] == single
