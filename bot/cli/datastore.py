"""`capret datastore`: the train captions and image vectors that caption retrieval reads.

Built from the configured sources' train split only, with the configured (adapted) encoder's
CLIP-projected vectors; written beside the weights (default ``weights/datastore``). `capret
eval --neighbour-captions <folder>` scores the k-nearest-caption baseline from it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.train import add_later_stage_options, with_encoder
from bot.config import AppConfig, load_config

if TYPE_CHECKING:
    from engine.training.data import CaptionedImage
    from engine.training.evaluate import EvalReport
    from engine.vision import ClipImageEncoder

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "weights" / "datastore"


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret datastore` and its options to ``sub``."""
    parser = sub.add_parser("datastore", help="build the datastore of train captions and "
                                              "image vectors (caption retrieval)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    add_later_stage_options(parser)  # --limit-images, --encoder
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Embed the train split and write its datastore."""
    from engine.datastore import save_datastore
    from engine.training.caption_datastore import build_datastore
    from engine.training.data import load_sources

    config = load_config(args.config)
    _threads(config)
    records = load_sources(config.train.sources, "train")[:args.limit_images]
    config = dataclasses.replace(config, engine=with_encoder(config.engine, args.encoder))
    store = build_datastore(_encoder(config), records, _cache(config))
    save_datastore(store, Path(args.out))
    print(f"caption datastore: {len(store.keys)} train images, "
          f"{sum(map(len, store.captions))} captions, vectors {tuple(store.vectors.shape)} "
          f"-> {args.out}")
    return 0


def neighbour_report(config: AppConfig, records: list[CaptionedImage], folder: Path,
                     k: int, votes: str) -> EvalReport:
    """The k-nearest-caption baseline on ``records`` from the datastore in ``folder``."""
    from engine.datastore import load_datastore
    from engine.training.neighbour_captions import (
        NeighbourCaptionConfig,
        evaluate_neighbour_captions,
    )

    _threads(config)
    vote = NeighbourCaptionConfig(k, "distinct" if votes == "distinct" else "all")
    return evaluate_neighbour_captions(_encoder(config), records, load_datastore(folder), vote,
                                       _cache(config))


def _encoder(config: AppConfig) -> ClipImageEncoder:
    """The configured image encoder, its CLIP-projected output (the space it was adapted in)."""
    import torch

    from engine.vision import build_image_encoder

    vision = dataclasses.replace(config.engine.vision, feature="projected")
    return build_image_encoder(vision, torch.device("cpu"))


def _cache(config: AppConfig) -> Path:
    return Path(config.train.feature_cache) / "datastore"


def _threads(config: AppConfig) -> None:
    if config.engine.threads:
        import torch

        torch.set_num_threads(config.engine.threads)
