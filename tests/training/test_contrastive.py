"""One InfoNCE for both trainings: its conventions, and the [RET] objective's unchanged scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.training.contrastive import bank_info_nce, full_info_nce, info_nce


def _pair(n: int = 5, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(n, d, generator=generator), dim=-1)
    k = F.normalize(torch.randn(n, d, generator=generator), dim=-1)
    return q, k


def test_the_retrieval_term_is_the_sum_the_objective_always_used() -> None:
    q, k = _pair()
    scale = torch.tensor(2.6593).exp().clamp(max=100.0)
    logits = scale * q @ k.T
    labels = torch.arange(len(q))
    summed = F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)
    assert torch.equal(2 * info_nce(q, k, scale), summed)


def test_one_caption_per_image_is_the_plain_symmetric_loss() -> None:
    q, k = _pair()
    scale = torch.tensor(10.0)
    torch.testing.assert_close(info_nce(q, k, scale, torch.arange(len(q))), info_nce(q, k, scale))


def test_a_bank_of_only_the_batch_s_images_is_the_plain_loss() -> None:
    q, k = _pair()
    scale = torch.tensor(10.0)
    rows = torch.arange(len(q))
    torch.testing.assert_close(bank_info_nce(q, k, k, rows, scale), info_nce(q, k, scale))


def test_bank_images_are_negatives_and_the_trained_view_is_the_positive() -> None:
    q, k = _pair(n=1)
    scale = torch.tensor(10.0)
    row = torch.tensor([2])  # the query's image sits among others in the bank
    unrelated = F.normalize(torch.randn(6, q.shape[1], generator=torch.Generator().manual_seed(1)),
                            dim=-1)
    other_view = unrelated.clone()
    other_view[2] = -k[0]  # the bank's own view of the image is not what the query must match
    base = bank_info_nce(q, k, unrelated, row, scale)
    assert torch.isclose(base, bank_info_nce(q, k, other_view, row, scale))
    lookalike = unrelated.clone()
    lookalike[0] = q[0]  # another image that matches the query perfectly: a hard negative
    assert bank_info_nce(q, k, lookalike, row, scale) > base


def test_ranking_everything_with_one_query_per_key_is_twice_the_plain_loss() -> None:
    q, k = _pair()
    scale = torch.tensor(10.0)
    every = torch.arange(len(q))
    torch.testing.assert_close(full_info_nce(q, every, every, k, scale), 2 * info_nce(q, k, scale))


def test_every_query_of_a_key_is_a_positive_and_unpicked_queries_are_negatives() -> None:
    q, k = _pair(n=6)
    scale = torch.tensor(10.0)
    owners = torch.tensor([0, 0, 1, 1, 2, 2])
    picked = torch.tensor([0, 2])  # keys 0 and 1 this step; key 2 and queries 4, 5 still rank
    keys = k[:3]
    q2k = F.cross_entropy(scale * q[picked] @ keys.T, owners[picked])
    logits = scale * keys[:2] @ q.T
    k2q = torch.stack([logits[0].logsumexp(0) - logits[0, :2].logsumexp(0),
                       logits[1].logsumexp(0) - logits[1, 2:4].logsumexp(0)]).mean()
    torch.testing.assert_close(full_info_nce(q, owners, picked, keys, scale, 0.5), q2k + 0.5 * k2q)
