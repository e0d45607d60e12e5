"""`capret refit-retrieval`: the recipe's last stage, the retrieval maps refit on cached states."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bot.cli.train import add_later_stage_options, print_run, with_encoder
from bot.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret refit-retrieval` and its options to ``sub``."""
    parser = sub.add_parser(
        "refit-retrieval", help="refit a trained bridge's retrieval maps on cached [RET] states")
    parser.add_argument("--bridge", help="the trained bridge (default: <train.out_dir>/bridge)")
    parser.add_argument("--out", help="where to write the refit bridge "
                        "(default: <train.out_dir>/bridge_refit)")
    parser.add_argument("--epochs", type=int, help="override train.retrieval_refit.epochs")
    parser.add_argument("--holdout", type=int, default=0,
                        help="leave N train images (drawn at random, seeded) out and print "
                             "their mR after each epoch")
    add_later_stage_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Refit the retrieval maps of a trained bridge and write the whole bridge."""
    from engine.training.pipeline import run_retrieval_refit

    config = load_config(args.config)
    train = config.train
    if args.epochs is not None:
        train = dataclasses.replace(train, retrieval_refit=dataclasses.replace(
            train.retrieval_refit, epochs=args.epochs))
    bridge = Path(args.bridge or Path(train.out_dir) / "bridge")
    out = Path(args.out or Path(train.out_dir) / "bridge_refit")
    run = run_retrieval_refit(with_encoder(config.engine, args.encoder), train, bridge, out,
                              args.holdout, args.limit_images)
    for epoch, mean_recall in enumerate(run.held_out_mr, start=1):
        print(f"epoch {epoch}: held-out mR {mean_recall:.2f}")
    print_run(run)
    return 0
