"""The one contrastive loss: symmetric InfoNCE, the mean of its two directions.

Used by the encoder's CLIP adaptation (``train_encoder.py``: several captions per image) and by
the bridge's [RET] objective (``objective.py``: one query per image). The RS-CapRet objective
writes its term as the sum ``L_t2i + L_i2t``, which is twice this mean: ``objective.py``
multiplies by 2, so its loss scale and trained weights are what they were.
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
