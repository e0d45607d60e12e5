"""One InfoNCE for both trainings: its conventions, and the [RET] objective's unchanged scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.training.contrastive import info_nce


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
