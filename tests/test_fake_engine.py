"""The tests' fake engine keeps to the engine port: every member the service uses, with the
port's parameters, so a change to ``EnginePort`` fails here rather than in a fake that drifted.
"""

from __future__ import annotations

import inspect

import numpy as np
from PIL import Image

from bot.service.engine_port import EnginePort
from engine.types import TextPart, Turn
from tests.fake_engine import FakeEngine


def _members(protocol: type) -> dict[str, object]:
    """The protocol's own methods and declared attributes."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return {name: getattr(protocol, name, None) for name in names}


def test_fake_engine_has_every_port_member_with_its_parameters() -> None:
    fake = FakeEngine()
    members = _members(EnginePort)
    assert {"encoder_id", "bridge_id", "search_id", "search_dim", "embed_images", "generate",
            "stream", "retrieve", "forget_session", "image_query", "gallery_rows"} <= set(members)
    for name, port_member in members.items():
        assert hasattr(fake, name), f"FakeEngine lacks EnginePort.{name}"
        if callable(port_member):
            ours = list(inspect.signature(getattr(FakeEngine, name)).parameters)
            theirs = list(inspect.signature(port_member).parameters)
            assert ours == theirs, f"FakeEngine.{name}{ours} != EnginePort.{name}{theirs}"


def test_fake_engine_vectors_have_the_port_shapes() -> None:
    fake = FakeEngine()
    images = [Image.new("RGB", (8, 8), (i * 40, 10, 200)) for i in range(3)]
    embeddings = fake.embed_images(images)
    assert embeddings.shape == (3, fake.image_dim) and embeddings.dtype == np.float32
    queries = fake.image_query(embeddings)
    assert queries.shape == (3, fake.search_dim)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    query = fake.retrieve([Turn("user", (TextPart("show me a harbour"),))], {})
    assert query.shape == (fake.search_dim,)


def test_a_new_bridge_id_is_a_new_projection() -> None:
    embeddings = FakeEngine().embed_images([Image.new("RGB", (8, 8), (90, 10, 200))])
    one = FakeEngine(bridge_id="a").image_query(embeddings)
    assert np.allclose(one, FakeEngine(bridge_id="a").image_query(embeddings))
    assert not np.allclose(one, FakeEngine(bridge_id="b").image_query(embeddings))
