"""`capret tune-answers`: a trained bridge given answer maps, tuned on answers to scene
questions and follow-up dialogues; descriptions and retrieval are left as they were.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bot.cli.train import add_later_stage_options, print_run, with_encoder
from bot.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret tune-answers` and its options to ``sub``."""
    parser = sub.add_parser(
        "tune-answers", help="give a trained bridge answer maps, tuned on answers to questions")
    parser.add_argument("--bridge", help="the trained bridge (default: <train.out_dir>/bridge)")
    parser.add_argument("--out", help="where to write the tuned bridge "
                        "(default: <train.out_dir>/bridge_tuned)")
    parser.add_argument("--steps", type=int, help="override train.answer_tuning.steps")
    parser.add_argument("--kept-share", type=float,
                        help="override train.answer_tuning.kept_share (1: all of the tuning)")
    parser.add_argument("--max-steps", type=int, help="stop after N steps (tiny runs)")
    add_later_stage_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tune the answer maps of a trained bridge and write the whole bridge."""
    from engine.training.pipeline import run_answer_tuning

    config = load_config(args.config)
    train = config.train
    overrides = {"steps": args.steps, "kept_share": args.kept_share}
    train = dataclasses.replace(train, answer_tuning=dataclasses.replace(
        train.answer_tuning, **{k: v for k, v in overrides.items() if v is not None}))
    bridge = Path(args.bridge or Path(train.out_dir) / "bridge")
    out = Path(args.out or Path(train.out_dir) / "bridge_tuned")
    run = run_answer_tuning(with_encoder(config.engine, args.encoder), train, bridge, out,
                            args.limit_images, args.max_steps)
    print_run(run)
    return 0
