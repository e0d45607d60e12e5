"""`capret train`: train the bridge (the config's `train:` section holds every setting)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import load_config
from engine.config import TEXT_WEIGHTS

if TYPE_CHECKING:
    from engine.config import EngineConfig
    from engine.training.pipeline import TrainingRun


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret train` and its options to ``sub``."""
    parser = sub.add_parser("train", help="train the bridge on caption data")
    parser.add_argument("--out", help="output folder (default: train.out_dir)")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--limit-images", type=int, help="use only the first N train images")
    parser.add_argument("--max-steps", type=int, help="stop after N steps (tiny runs)")
    parser.add_argument("--encoder", help="adapted image tower to train on (default: "
                        "engine.vision.weights), e.g. runs/encoder/visual.safetensors")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the bridge on the configured caption data and write its weights."""
    from engine.training.pipeline import run_bridge_training

    config = load_config(args.config)
    train = config.train
    if args.out:
        train = dataclasses.replace(train, out_dir=args.out)
    if args.epochs:
        train = dataclasses.replace(train, epochs=args.epochs)
    engine = with_encoder(config.engine, args.encoder)
    run = run_bridge_training(engine, train, args.limit_images, args.max_steps)
    print_run(run)
    print(f"use it: set engine.bridge.weights: {run.folder} in your config")
    return 0


def add_later_stage_options(parser: argparse.ArgumentParser) -> None:
    """--limit-images and --encoder, as the stages after `capret train` take them."""
    parser.add_argument("--limit-images", type=int, help="use only the first N train images")
    parser.add_argument("--encoder", help="adapted image tower the bridge was trained on "
                        "(default: engine.vision.weights)")


def with_encoder(engine: EngineConfig, encoder: str | None) -> EngineConfig:
    """``engine`` with ``encoder`` (`capret train-encoder`'s output) as its image tower, and
    the text tower written beside it (if any): the two are one CLIP space. The configured
    caption datastore holds the configured encoder's vectors, not this one's, so none is set
    (the stage that reads one is given it: `capret tune-descriptions --datastore`).
    """
    if not encoder:
        return engine
    text = Path(encoder).with_name(TEXT_WEIGHTS)
    return dataclasses.replace(
        engine, bridge=dataclasses.replace(engine.bridge, datastore=None),
        vision=dataclasses.replace(engine.vision, weights=encoder,
                                   text_weights=str(text) if text.is_file() else None))


def print_run(run: TrainingRun) -> None:
    """Each stage's wall time, then where the bridge was written."""
    for stage, minutes in run.minutes.items():
        print(f"{stage}: {minutes:.1f} min wall time")
    print(f"bridge written to {run.folder}")
