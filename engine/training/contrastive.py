"""The one contrastive loss: symmetric InfoNCE, the mean of its two directions.

Used by the encoder's CLIP adaptation (``train_encoder.py``: several captions per image) and by
the bridge's [RET] objective (``objective.py``: one query per image). The RS-CapRet objective
writes its term as the sum ``L_t2i + L_i2t``, which is twice this mean: ``objective.py``
multiplies by 2, so its loss scale and trained weights are what they were. ``bank_info_nce``
is the same loss with the query->image direction ranked against every train image;
``full_info_nce`` ranks both directions against everything (the retrieval refit's loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(queries: torch.Tensor, keys: torch.Tensor, scale: torch.Tensor,
             owner: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric (multi-positive) InfoNCE: mean of query->key and key->query cross-entropy.

    Args:
        queries: (N, D) normalised queries (captions, or [RET] vectors).
        keys: (B, D) normalised keys (images).
        scale: the logit scale (already exponentiated, clamped by the caller if wanted).
        owner: (N,) index of each query's key; None pairs query i with key i (N == B). A key
            with several queries counts all of them as positives (log-sum-exp over them).

    Returns:
        The scalar loss.
    """
    logits = scale * queries @ keys.T  # (N, B)
    if owner is None:
        labels = torch.arange(len(queries), device=queries.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    q2k = F.cross_entropy(logits, owner)
    per_key = logits.T  # (B, N)
    mine = owner[None, :] == torch.arange(keys.shape[0], device=owner.device)[:, None]  # (B, N)
    positive = per_key.masked_fill(~mine, float("-inf")).logsumexp(dim=1)  # (B,)
    k2q = (per_key.logsumexp(dim=1) - positive).mean()
    return (q2k + k2q) / 2


def bank_info_nce(queries: torch.Tensor, keys: torch.Tensor, bank: torch.Tensor,
                  rows: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """InfoNCE whose query->key direction ranks each query against a whole bank of keys.

    Retrieval ranks a query against the whole gallery, but a batch holds only a few of its
    images; the bank (every train image's key) gives each query thousands of negatives for the
    cost of one linear map of cached features. Key->query stays in-batch: more queries would
    need more LM passes.

    Args:
        queries: (B, D) normalised queries.
        keys: (B, D) normalised keys of the queries' own images (the views trained this step).
        bank: (N, D) normalised keys of all images; row ``rows[i]`` is query i's image.
        rows: (B,) each query's image in the bank; its bank key is replaced by ``keys[i]``.
        scale: the logit scale (already exponentiated).

    Returns:
        The mean of the two directions (as ``info_nce``).
    """
    logits = scale * queries @ bank.T  # (B, N)
    positive = scale * (queries * keys).sum(-1, keepdim=True)  # (B, 1)
    logits = logits.scatter(1, rows.unsqueeze(1), positive)
    q2k = F.cross_entropy(logits, rows)
    in_batch = scale * keys @ queries.T  # (B, B)
    k2q = F.cross_entropy(in_batch, torch.arange(len(keys), device=keys.device))
    return (q2k + k2q) / 2


def full_info_nce(queries: torch.Tensor, owners: torch.Tensor, picked: torch.Tensor,
                  keys: torch.Tensor, scale: torch.Tensor, key_weight: float = 1.0
                  ) -> torch.Tensor:
    """InfoNCE with both directions ranked against everything there is.

    For cached features and states, where every key and every query costs only a linear map:
    each of the step's queries is ranked against all keys, and each of their keys against all
    queries (all of its own queries are positives).

    Args:
        queries: (Q, D) every normalised query.
        owners: (Q,) the key of each query.
        picked: (B,) the step's queries, one per key.
        keys: (N, D) every normalised key.
        scale: the logit scale (already exponentiated).
        key_weight: the weight of the key->query direction.

    Returns:
        The query->key cross-entropy plus ``key_weight`` times the key->query one.
    """
    rows = owners[picked]
    q2k = F.cross_entropy(scale * queries[picked] @ keys.T, rows)
    logits = scale * keys[rows] @ queries.T  # (B, Q)
    mine = owners[None, :] == rows[:, None]
    k2q = (logits.logsumexp(1) - logits.masked_fill(~mine, float("-inf")).logsumexp(1)).mean()
    return q2k + key_weight * k2q
