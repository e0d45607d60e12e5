"""Search vectors: plain cosine ranking without a prior; hubs discounted with one."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from engine.bridge import load_bridge
from engine.hubness import HubnessPrior, gallery_rows, search_queries
from tests.engine.tiny import tiny_engine


def _unit(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_without_offsets_search_vectors_rank_by_cosine() -> None:
    keys, queries = _unit(30, 8, seed=0), _unit(5, 8, seed=1)
    zeros_k, zeros_q = torch.zeros(30), torch.zeros(5)
    scores = search_queries(queries, zeros_q) @ gallery_rows(keys, zeros_k).T
    torch.testing.assert_close(scores, (queries @ keys.T) / 3)


def test_search_score_is_cosine_less_both_offsets() -> None:
    keys, queries = _unit(30, 8, seed=2), _unit(5, 8, seed=3)
    key_offsets, query_offsets = torch.rand(30) - 0.5, torch.rand(5) - 0.5
    rows, asked = gallery_rows(keys, key_offsets), search_queries(queries, query_offsets)
    torch.testing.assert_close(rows.norm(dim=1), torch.ones(30))
    torch.testing.assert_close(asked.norm(dim=1), torch.ones(5))
    expected = queries @ keys.T - key_offsets[None, :] - query_offsets[:, None]
    torch.testing.assert_close(asked @ rows.T, expected / 3)


def test_an_image_every_train_request_matches_loses_to_the_image_asked_for() -> None:
    common = F.normalize(torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]), dim=0)
    bank = F.normalize(common + 0.5 * torch.randn(
        200, 8, generator=torch.Generator().manual_seed(4)), dim=-1)  # train requests
    hub, wanted = common, torch.tensor([0.0, 1, 0, 0, 0, 0, 0, 0])
    query = F.normalize(1.2 * hub + wanted, dim=0)
    keys = torch.stack([hub, wanted])
    assert float(query @ hub) > float(query @ wanted)  # the plain cosine picks the hub
    prior = HubnessPrior(bank, _unit(50, 8, seed=6), beta=5.0)
    offsets = prior.image_offsets(keys)
    assert float(offsets[0]) > float(offsets[1])
    scores = search_queries(query[None], prior.query_offsets(query[None])) @ gallery_rows(
        keys, offsets).T
    assert int(scores.argmax()) == 1


def test_a_bridge_keeps_its_prior_through_save_and_load(tmp_path: Path) -> None:
    bridge = tiny_engine().bridge
    shared = bridge.spec.shared_dim
    features = torch.randn(6, bridge.spec.image_dim)
    plain = bridge.gallery_rows(features)
    bridge.hubness = HubnessPrior(_unit(40, shared, seed=7), _unit(30, shared, seed=8), 5.0)
    with_prior = bridge.gallery_rows(features)
    assert not torch.allclose(plain, with_prior)
    bridge.save(tmp_path / "b")
    loaded = load_bridge(tmp_path / "b", bridge.spec)
    assert loaded.hubness is not None and float(loaded.hubness.beta) == 5.0
    assert loaded.hubness.query_bank.shape == (40, shared)
    torch.testing.assert_close(loaded.gallery_rows(features), with_prior)
    loaded.hubness = None
    loaded.save(tmp_path / "none")
    assert load_bridge(tmp_path / "none", bridge.spec).hubness is None


def test_a_search_by_example_takes_no_offset_of_its_own() -> None:
    bridge = tiny_engine().bridge
    shared = bridge.spec.shared_dim
    bridge.hubness = HubnessPrior(_unit(40, shared, seed=9), _unit(30, shared, seed=10), 5.0)
    features = torch.randn(4, bridge.spec.image_dim)
    keys = bridge.image_vectors(features)
    rows = bridge.gallery_rows(features)
    # The gallery ranked by q . x - o(x): the example's own hubness is left out.
    expected = keys @ keys.T - bridge.hubness.image_offsets(keys)[None, :]
    torch.testing.assert_close(bridge.image_queries(features) @ rows.T, expected / 3)
