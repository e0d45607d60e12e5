"""`capret caption IMAGE...`: one line per image: its path, a tab, the caption."""

from __future__ import annotations

import argparse
import sys

from PIL import Image, UnidentifiedImageError

from bot.config import load_config
from engine import create_engine


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret caption IMAGE...` to ``sub``."""
    parser = sub.add_parser("caption", help="describe image files (the quickest look at the model)")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per image: its path, a tab, its description; 1 if any image failed."""
    from engine.types import GenerationOptions

    engine = create_engine(load_config(args.config).engine)
    options = GenerationOptions(max_new_tokens=args.max_new_tokens)
    failures = 0
    for path in args.images:
        try:
            with Image.open(path) as image:
                text = engine.caption(image.convert("RGB"), options)
        except (OSError, UnidentifiedImageError) as exc:
            print(f"{path}\terror: cannot read image ({exc})", file=sys.stderr)
            failures += 1
            continue
        print(f"{path}\t{text}", flush=True)
    return 1 if failures else 0
