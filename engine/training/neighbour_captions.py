"""The k-nearest-caption baseline: copy the commonest caption of an image's nearest train images.

No LM: each query image's k nearest datastore images (cosine of the adapted encoder's vectors)
vote with their captions, and the commonest caption wins (Devlin et al. 2015 showed such
copying is a strong captioning baseline; issue 28 measures how much the LM adds over it).
An image never retrieves its own captions: a query whose key is in the datastore is left out of
its own neighbours (leave-one-out), so scoring train images is honest too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from engine.model import ImageEncoder
from engine.training.caption_datastore import CaptionDatastore
from engine.training.data import CaptionedImage
from engine.training.evaluate import EvalReport, variety
from engine.training.features import cached_features
from engine.training.metrics import caption_metrics


@dataclass(frozen=True)
class NeighbourCaptionConfig:
    """How neighbours vote."""

    # Nearest train images whose captions vote.
    k: int = 15
    # "all": each of a neighbour's captions votes, as released (an image that repeats one
    # sentence five times gives it five votes); "distinct": each neighbour votes once per
    # distinct caption it has.
    votes: Literal["all", "distinct"] = "all"


def nearest_rows(queries: torch.Tensor, query_keys: Sequence[str], store: CaptionDatastore,
                 k: int) -> list[list[int]]:
    """Each query's ``k`` nearest datastore rows, nearest first, its own row left out.

    Args:
        queries: (Q, D) image vectors from the datastore's encoder.
        query_keys: each query's key ("source/file name"); a key in the datastore is the same
            image, which is never its own neighbour.
        store: the datastore.
        k: neighbours per query (fewer when the datastore is smaller).
    """
    if len(query_keys) != queries.shape[0]:
        raise ValueError(f"{queries.shape[0]} query vectors but {len(query_keys)} keys")
    scores = F.normalize(queries.float(), dim=-1) @ store.vectors.T  # (Q, N)
    row_of = {key: row for row, key in enumerate(store.keys)}
    for query, key in enumerate(query_keys):
        if key in row_of:
            scores[query, row_of[key]] = float("-inf")
    available = store.vectors.shape[0] - (1 if row_of.keys() & set(query_keys) else 0)
    top = scores.topk(min(k, available), dim=1).indices  # (Q, k)
    return [[int(r) for r in row] for row in top]


def commonest_caption(neighbour_captions: Sequence[Sequence[str]],
                      votes: Literal["all", "distinct"] = "all") -> str:
    """The caption with most votes among the neighbours' captions (nearest neighbour first).

    Ties go to the caption first met in that order, i.e. held by the nearer neighbour.
    """
    counts: Counter[str] = Counter()
    for captions in neighbour_captions:
        counts.update(dict.fromkeys(captions, 1) if votes == "distinct" else captions)
    if not counts:
        raise ValueError("no neighbour captions to choose from")
    return max(counts, key=counts.__getitem__)  # max keeps the first of equal counts


def neighbour_captions(queries: torch.Tensor, query_keys: Sequence[str],
                       store: CaptionDatastore, config: NeighbourCaptionConfig
                       ) -> list[str]:
    """One caption per query: the commonest among its ``config.k`` nearest train images."""
    return [commonest_caption([store.captions[r] for r in rows], config.votes)
            for rows in nearest_rows(queries, query_keys, store, config.k)]


def evaluate_neighbour_captions(encoder: ImageEncoder, records: Sequence[CaptionedImage],
                                store: CaptionDatastore, config: NeighbourCaptionConfig,
                                cache_dir: Path) -> EvalReport:
    """The baseline's captions for ``records``, scored as `capret eval` scores descriptions.

    Args:
        encoder: the encoder the datastore was built with (checked by its id).
        records: the images to describe, with their references.
        store: the train datastore.
        config: how neighbours vote.
        cache_dir: where the query images' vectors are cached.

    Returns:
        An ``EvalReport`` with the caption metrics, variety and each image's caption.
    """
    if encoder.encoder_id != store.encoder_id:
        raise ValueError(f"the datastore's vectors come from {store.encoder_id}, "
                         f"the queries would come from {encoder.encoder_id}")
    features, kept = cached_features(encoder, records, cache_dir)  # (1, Q, D)
    chosen = neighbour_captions(features[0], [r.key for r in kept], store, config)
    report = EvalReport(captions={r.path.name: c for r, c in zip(kept, chosen, strict=True)})
    references = {r.path.name: list(r.captions) for r in kept}
    report.metrics.update(caption_metrics({k: [v] for k, v in report.captions.items()},
                                          references))
    report.metrics.update(variety(report.captions))
    return report
