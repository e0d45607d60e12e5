"""The k-nearest-caption baseline: copy the commonest caption of an image's nearest train images.

No LM: each query image's k nearest datastore images (cosine of the adapted encoder's vectors)
vote with their captions, and the commonest caption wins (Devlin et al. 2015 showed such
copying is a strong captioning baseline; issue 28 measures how much the LM adds over it).
An image never retrieves its own captions: a query whose key is in the datastore is left out of
its own neighbours (leave-one-out), so scoring train images is honest too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.datastore import CaptionDatastore, Votes, nearest_rows, ranked_captions
from engine.model import ImageEncoder
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
    votes: Votes = "all"


def neighbour_captions(queries: torch.Tensor, query_keys: Sequence[str],
                       store: CaptionDatastore, config: NeighbourCaptionConfig
                       ) -> list[str]:
    """One caption per query: the commonest among its ``config.k`` nearest train images."""
    return [ranked_captions([store.captions[r] for r in rows], config.votes)[0]
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
