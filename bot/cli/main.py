"""The `capret` command line: one sub-command per module in ``bot.cli``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from bot.logs import setup_logging
from engine.typed_config import ConfigError

# Each module defines ``register(subparsers)``, which adds its parser and sets ``func``.
COMMAND_MODULES = (
    "bot.cli.run",
    "bot.cli.weights",
    "bot.cli.doctor",
    "bot.cli.caption",
    "bot.cli.train",
    "bot.cli.train_encoder",
    "bot.cli.refit_retrieval",
    "bot.cli.tune_answers",
    "bot.cli.tune_descriptions",
    "bot.cli.evaluate",
    "bot.cli.datastore",
    "bot.cli.chat",
    "bot.cli.db",
    "bot.cli.gallery",
    "bot.cli.export_vllm",
    "bot.cli.serve_llm",
    "bot.cli.feedback",
    "bot.cli.deploy_secrets",
)


def build_parser() -> argparse.ArgumentParser:
    """The `capret` parser: global options, then every module's sub-command."""
    parser = argparse.ArgumentParser(prog="capret", description=__doc__)
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every log line (default: they go to $CAPRET_LOG_FILE, "
                             "~/.cache/rs-capret/capret.log)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `capret` command; its exit status (2 for a config error, 130 on Ctrl-C)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
