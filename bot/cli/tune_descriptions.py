"""`capret tune-descriptions`: a trained bridge's description maps tuned with the captions of
each image's nearest train images in the prompt; answers and retrieval are left as they were.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bot.cli.train import add_later_stage_options, print_run, with_encoder
from bot.config import load_config

DEFAULT_DATASTORE = Path(__file__).resolve().parents[2] / "weights" / "datastore"


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret tune-descriptions` and its options to ``sub``."""
    parser = sub.add_parser(
        "tune-descriptions",
        help="tune a trained bridge's descriptions to read the captions of images like it")
    parser.add_argument("--bridge", help="the trained bridge "
                        "(default: <train.out_dir>/bridge_tuned, `capret tune-answers`' output)")
    parser.add_argument("--datastore", default=str(DEFAULT_DATASTORE),
                        help="the train captions and vectors (`capret datastore`; default: "
                        "weights/datastore)")
    parser.add_argument("--out", help="where to write the tuned bridge "
                        "(default: <train.out_dir>/bridge_hinted)")
    parser.add_argument("--steps", type=int, help="override train.description_tuning.steps")
    parser.add_argument("--max-steps", type=int, help="stop after N steps (tiny runs)")
    add_later_stage_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tune the description maps of a trained bridge and write the whole bridge."""
    from engine.training.pipeline import run_description_tuning

    config = load_config(args.config)
    train = config.train
    if args.steps is not None:
        train = dataclasses.replace(train, description_tuning=dataclasses.replace(
            train.description_tuning, steps=args.steps))
    bridge = Path(args.bridge or Path(train.out_dir) / "bridge_tuned")
    out = Path(args.out or Path(train.out_dir) / "bridge_hinted")
    run = run_description_tuning(with_encoder(config.engine, args.encoder), train, bridge,
                                 Path(args.datastore), out, args.limit_images, args.max_steps)
    print_run(run)
    return 0
