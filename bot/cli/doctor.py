"""`capret doctor`: one line per thing the app needs, ready or missing, with the fix."""

from __future__ import annotations

import argparse

from bot.cli.doctor_checks import CHECKS
from bot.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret doctor` to ``sub``."""
    parser = sub.add_parser("doctor", help="print what is ready and what is missing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per check (ready or MISSING, with the fix); 1 if any is missing."""
    config = load_config(args.config)
    failures = 0
    for name, check in CHECKS:
        try:
            ok, detail = check(config)
        except Exception as exc:  # a check must never crash the report
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        failures += not ok
        print(f"{'ok ' if ok else 'MISSING'}  {name:9s} {detail}")
    return 1 if failures else 0
