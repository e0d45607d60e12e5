"""`capret train-encoder`: adapt the embedded image encoder to RS captions (CLIP loss)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret train-encoder` and its options to ``sub``."""
    parser = sub.add_parser("train-encoder",
                            help="contrastively adapt the embedded image encoder (train.encoder)")
    parser.add_argument("--out", help="output folder (default: train.encoder.out_dir)")
    parser.add_argument("--epochs", type=int, help="override train.encoder.epochs")
    parser.add_argument("--views", type=int, help="override train.encoder.cached_views")
    parser.add_argument("--limit-images", type=int, help="use only the first N images per split")
    parser.add_argument("--max-steps", type=int, help="stop after N steps (tiny runs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Contrastively adapt the embedded image encoder (train.encoder) and write its weights."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bot.config import load_config
    from engine.training.train_encoder import train_encoder

    config = load_config(args.config)
    cfg = config.train.encoder
    overrides = {"out_dir": args.out, "epochs": args.epochs, "cached_views": args.views}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if config.engine.threads:
        import torch

        torch.set_num_threads(config.engine.threads)
    report = train_encoder(cfg, config.train.sources, args.limit_images, args.max_steps)
    print(json.dumps({"val_before": report["val_before"], "val_after": report["val_after"],
                      "minutes": report["minutes"]}, indent=2))
    print(f"adapted towers written to {cfg.out_dir}/visual.safetensors and text.safetensors")
    print(f"use them: set engine.vision.weights: {cfg.out_dir}/visual.safetensors and "
          f"engine.vision.text_weights: {cfg.out_dir}/text.safetensors in your config")
    return 0
