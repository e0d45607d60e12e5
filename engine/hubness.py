"""Search vectors that discount hubs: gallery items that match every query a little.

In a shared embedding space some images lie close to most requests (and some requests close
to most images) and crowd every result list. The inverted softmax (Smith et al. 2017; the
query bank of QB-Norm, Bogolin et al. 2022) scores a query q against a gallery item x as

    q . x - o(x),   o(x) = (1 / beta) * log mean_b exp(beta * b . x)

where the b are the *train* vectors of the other side (every train request's query vector for
an image, every train image's vector for a request), so the bank never sees the items
searched. Ranking one query's results only needs each item's own offset, computed once when
the item is added; nothing is added per query.

So FAISS (inner product, vectors normalised by the store) can rank by it, a search vector is
the shared-space vector with four more coordinates, so that every search vector has norm
sqrt(3):

    gallery row  [x, -o(x), 1,     0,    r(x)]      r = sqrt(1 - o^2)
    query        [q, 1,     -o(q), r(q), 0   ]

Their inner product is q . x - o(x) - o(q): for one query o(q) is a constant (text->image
ranks by q . x - o(x)), for one image o(x) is (image->text ranks by q . x - o(q)). Offsets
lie in [-1, 1] (a mean of cosines, softened), so r is real. Without a bank every offset is 0
and the ranking is the plain cosine's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Coordinates a search vector has beyond the shared space.
EXTRA_DIMS = 4
# Every search vector has squared norm 3 before it is normalised, so the inner product of a
# query and a row times this is the cosine less both offsets: the score a search shows.
SCORE_SCALE = 3.0


class HubnessPrior(nn.Module):
    """The two banks of train vectors (stored as float16) and the temperature ``beta``."""

    query_bank: torch.Tensor  # (Q, S) every train request's query vector
    image_bank: torch.Tensor  # (N, S) every train image's vector
    beta: torch.Tensor  # a scalar

    def __init__(self, query_bank: torch.Tensor, image_bank: torch.Tensor, beta: float) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        self.register_buffer("query_bank", query_bank.detach().to(torch.float16))
        self.register_buffer("image_bank", image_bank.detach().to(torch.float16))
        self.register_buffer("beta", torch.tensor(float(beta)))

    @classmethod
    def empty(cls, queries: int, images: int, shared_dim: int) -> HubnessPrior:
        """A prior of the given bank sizes to load saved weights into."""
        return cls(torch.zeros(queries, shared_dim), torch.zeros(images, shared_dim), 1.0)

    def image_offsets(self, keys: torch.Tensor) -> torch.Tensor:
        """(N, S) normalised image vectors -> (N,) how much every train request matches each."""
        return _offsets(keys, self.query_bank, float(self.beta))

    def query_offsets(self, queries: torch.Tensor) -> torch.Tensor:
        """(N, S) normalised query vectors -> (N,) how much every train image matches each."""
        return _offsets(queries, self.image_bank, float(self.beta))


def _offsets(vectors: torch.Tensor, bank: torch.Tensor, beta: float) -> torch.Tensor:
    scores = vectors.float() @ bank.float().T  # (N, B) cosines
    return (torch.logsumexp(beta * scores, dim=1) - math.log(bank.shape[0])) / beta


def gallery_rows(keys: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(N, S) normalised image vectors and their offsets -> (N, S + 4), L2-normalised."""
    o = offsets.clamp(-1.0, 1.0)[:, None]
    ones, zeros = torch.ones_like(o), torch.zeros_like(o)
    rows = torch.cat([keys, -o, ones, zeros, (1 - o * o).clamp(min=0).sqrt()], dim=1)
    return F.normalize(rows, dim=-1)


def search_scores(queries: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(Q, S + 4) queries x (N, S + 4) rows -> (Q, N) cosine less both offsets."""
    return SCORE_SCALE * (queries @ rows.T)


def search_queries(queries: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(N, S) normalised query vectors and their offsets -> (N, S + 4), L2-normalised."""
    o = offsets.clamp(-1.0, 1.0)[:, None]
    ones, zeros = torch.ones_like(o), torch.zeros_like(o)
    rows = torch.cat([queries, ones, -o, (1 - o * o).clamp(min=0).sqrt(), zeros], dim=1)
    return F.normalize(rows, dim=-1)
