"""`capret export-vllm`: write the checkpoint the vLLM servers serve (base LM + trained [RET])."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from bot.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret export-vllm` to ``sub``."""
    parser = sub.add_parser(
        "export-vllm", help="write the base LM with the bridge's [RET] row for `serve-llm`")
    parser.add_argument("--out", help="folder to write (default: engine.vllm.checkpoint)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the checkpoint the vLLM servers serve (base LM with the bridge's [RET] row)."""
    from engine import create_engine
    from engine.backends.vllm_export import export_checkpoint

    config = load_config(args.config)
    out = args.out or config.engine.vllm.checkpoint
    if not out:
        print("error: give --out DIR or set engine.vllm.checkpoint", file=sys.stderr)
        return 2
    # The export reads the LM and bridge in this process, whatever backend serves them later.
    engine = create_engine(dataclasses.replace(config.engine, backend="hf"))
    manifest = export_checkpoint(engine.lm, engine.bridge, engine.bridge_id, out)
    print(f"exported {manifest.lm} with [RET] (id {manifest.ret_id}) from {manifest.bridge_id} "
          f"to {out}")
    return 0
