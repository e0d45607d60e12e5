"""How searches score images: the bridge's match, shared with the CLIP towers' cosine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine.bridge import Bridge, BridgeSpec
from engine.hubness import search_scores
from engine.model import RSCapRet
from engine.search import Basis, SearchSpace, search_words
from engine.tokens import RETRIEVAL_PROMPTS
from engine.types import TextPart, Turn
from tests.engine.tiny import tiny_engine

POOLED, LM, CLIP = 12, 16, 6
WORDS = ("harbour", "forest", "runway", "desert", "stadium", "river")


class WordTowers:
    """CLIP towers whose space has one axis per word: an image's pooled feature is its own
    coordinates there, and a text points along each of its words it knows.
    """

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled[:, :CLIP]

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([[float(w in t.split()) + 1e-3 for w in WORDS] for t in texts])


def _bridge() -> Bridge:
    torch.manual_seed(0)
    return Bridge(BridgeSpec(image_dim=POOLED, lm_dim=LM, prefix_tokens=1, shared_dim=8,
                             tied_head=True, encoder_id="e", lm_id="l"))


def _images() -> torch.Tensor:
    """One image per word: mostly that word's axis, plus noise in the rest of the feature."""
    torch.manual_seed(1)
    images = torch.randn(len(WORDS), POOLED) * 0.3
    images[:, :CLIP] += torch.eye(CLIP) * 3
    return images


def test_without_the_towers_the_bridge_alone_scores() -> None:
    bridge, images, hidden = _bridge(), _images(), torch.randn(3, LM)
    plain = SearchSpace(bridge, "b1", WordTowers(), share=0.0, text_weights=None)
    assert plain.search_id == "b1" and plain.dim == bridge.search_dim
    assert torch.equal(plain.rows(images), bridge.gallery_rows(images))
    assert torch.equal(plain.text_queries(hidden, ["x"] * 3), bridge.text_queries(hidden))
    assert torch.equal(plain.image_queries(images), bridge.image_queries(images))


def test_a_score_is_the_shared_out_sum_of_both_matches() -> None:
    bridge, images, hidden = _bridge(), _images(), torch.randn(3, LM)
    words = ["a harbour", "a forest by a river", "nothing known"]
    space = SearchSpace(bridge, "b1", WordTowers(), share=0.4, text_weights=None)
    rows, queries = space.rows(images), space.text_queries(hidden, words)
    assert rows.shape == (len(WORDS), space.dim) and space.dim == bridge.search_dim + CLIP
    assert torch.allclose(rows.norm(dim=1), torch.ones(len(WORDS)))
    assert torch.allclose(queries.norm(dim=1), torch.ones(3))
    bridge_scores = search_scores(bridge.text_queries(hidden), bridge.gallery_rows(images))
    cosines = (F.normalize(WordTowers().embed_texts(words), dim=-1)
               @ F.normalize(images[:, :CLIP], dim=-1).T)
    shown = space.score_scale * (queries @ rows.T)
    assert torch.allclose(shown, 0.6 * bridge_scores + 0.4 * cosines, atol=1e-5)


def test_the_words_find_their_image_where_the_bridge_alone_does_not() -> None:
    bridge, images = _bridge(), _images()  # an untrained bridge: its match is noise
    hidden = torch.randn(len(WORDS), LM)
    asked = [f"a {w} seen from above" for w in WORDS]
    found = []
    for share in (0.0, 0.9):
        space = SearchSpace(bridge, "b1", WordTowers(), share=share, text_weights=None)
        best = (space.text_queries(hidden, asked) @ space.rows(images).T).argmax(dim=1)
        found.append(int((best == torch.arange(len(WORDS))).sum()))
    assert found[1] == len(WORDS) > found[0]


def test_the_space_is_named_by_its_share_and_text_tower(tmp_path: Path) -> None:
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    one.write_bytes(b"1")
    two.write_bytes(b"2")
    ids = {SearchSpace(_bridge(), "b1", WordTowers(), share, str(path)).search_id
           for share in (0.3, 0.4) for path in (one, two)}
    assert len(ids) == 4 and all(i.startswith("b1+clip") for i in ids)
    with pytest.raises(ValueError, match="clip_share"):
        SearchSpace(_bridge(), "b1", WordTowers(), share=1.0)


def _in_a_plane(count: int, width: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` unit vectors of ``width`` coordinates that all lie in one 3-d subspace."""
    torch.manual_seed(2)
    plane = torch.linalg.qr(torch.randn(width, 3)).Q  # (width, 3), orthonormal
    return F.normalize(torch.randn(count, 3) @ plane.T, dim=-1), plane


def test_a_basis_keeps_the_cosines_of_the_vectors_it_spans() -> None:
    vectors, _ = _in_a_plane(40)
    basis = Basis(vectors, 3, "v")
    directions = basis.directions
    assert directions.shape == (16, 3)
    assert torch.allclose(directions.T @ directions, torch.eye(3), atol=1e-5)
    narrowed = F.normalize(vectors @ directions, dim=-1)
    assert torch.allclose(narrowed @ narrowed.T, vectors @ vectors.T, atol=1e-5)


def test_every_process_makes_the_same_basis_from_the_same_vectors() -> None:
    # Gallery rows stored by one process are searched with another's queries: a direction
    # whose sign flipped between them would turn its share of every score around.
    vectors, _ = _in_a_plane(40)
    first = Basis(vectors, 3, "v").directions
    largest = first.abs().argmax(dim=0)
    assert (first[largest, torch.arange(3)] > 0).all()  # the convention that fixes signs
    assert torch.allclose(Basis(vectors[torch.randperm(40)], 3, "v").directions, first,
                          atol=1e-5)
    assert torch.allclose(Basis(-vectors, 3, "v").directions, first, atol=1e-5)
    with pytest.raises(ValueError, match="clip_dims"):
        Basis(vectors, 17, "v")


def test_a_narrowed_space_scores_with_the_towers_cosine_on_its_basis() -> None:
    bridge, images, hidden = _bridge(), _images(), torch.randn(3, LM)
    words = ["a harbour", "a forest by a river", "nothing known"]
    basis = Basis(F.normalize(images[:, :CLIP], dim=-1), 4, "train")
    space = SearchSpace(bridge, "b1", WordTowers(), share=0.4, text_weights=None, basis=basis)
    rows, queries = space.rows(images), space.text_queries(hidden, words)
    assert space.dim == bridge.search_dim + 4 and rows.shape == (len(WORDS), space.dim)
    assert space.search_id.endswith("-pc4-train")
    on_basis = [F.normalize(F.normalize(v, dim=-1) @ basis.directions, dim=-1)
                for v in (WordTowers().embed_texts(words), images[:, :CLIP])]
    bridge_scores = search_scores(bridge.text_queries(hidden), bridge.gallery_rows(images))
    shown = space.score_scale * (queries @ rows.T)
    assert torch.allclose(shown, 0.6 * bridge_scores + 0.4 * on_basis[0] @ on_basis[1].T,
                          atol=1e-5)


@pytest.mark.parametrize("phrasing", RETRIEVAL_PROMPTS)
def test_the_words_of_a_search_leave_its_request_phrasing(phrasing: str) -> None:
    asked = [Turn("user", (TextPart("Describe this image."),)),
             Turn("assistant", (TextPart("A port."),)),
             Turn("user", (TextPart(phrasing.format(query="boats in a harbour")),))]
    assert search_words(asked) == "boats in a harbour"


def test_words_in_the_users_own_phrasing_are_kept() -> None:
    assert search_words([Turn("user", (TextPart(" airports next to the sea "),))]) == (
        "airports next to the sea")
    assert search_words([]) == ""


class TinyTowers:
    """Towers for the tiny engine: images by their feature's first values, words by length."""

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled[:, :4]

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([[len(t), 1.0, 0.0, 1.0] for t in texts])


def test_the_engine_searches_in_the_shared_space() -> None:
    tiny = tiny_engine()
    space = SearchSpace(tiny.bridge, "tiny", TinyTowers(), share=0.5, text_weights=None)
    engine = RSCapRet(tiny.config, tiny.encoder, tiny.lm, tiny.bridge, tiny.backend, "tiny",
                      search=space)
    assert (engine.search_dim, engine.search_id) == (space.dim, space.search_id)
    images = engine.embed_images([Image.new("RGB", (32, 32), (v, v, v)) for v in (30, 220)])
    rows = engine.gallery_rows(images)
    asked = [Turn("user", (TextPart("Show me a bright field"),))]
    query = engine.retrieve(asked, {})
    assert rows.shape == (2, space.dim) and query.shape == (space.dim,)
    np.testing.assert_allclose(engine.retrieve_batch([asked], {})[0], query, atol=1e-5)
    assert engine.image_query(images).shape == (2, space.dim)
    assert engine.score_scale == pytest.approx(space.score_scale)
