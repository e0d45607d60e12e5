"""`capret serve-llm`: the generate and pooling vLLM servers for the exported checkpoint.

Ports and the served name come from ``engine.vllm`` (so the bot finds what this starts); the
servers listen on loopback unless told otherwise, wait for health, and stop on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast
from urllib.parse import urlsplit

from bot.config import load_config
from engine.config import VllmConfig

if TYPE_CHECKING:
    from engine.backends.vllm_launch import ServeSettings

PROJECT = Path(__file__).resolve().parents[2]
PYTHON_ENV = "CAPRET_VLLM_PYTHON"


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret serve-llm` and its options to ``sub``."""
    parser = sub.add_parser("serve-llm", help="start the vLLM servers for the exported LM")
    parser.add_argument("--checkpoint", help="exported folder (default: engine.vllm.checkpoint)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--host", default="127.0.0.1",
                        help="listen address (keep it loopback or private)")
    parser.add_argument("--python", help=f"Python of the vLLM venv (default: ${PYTHON_ENV}, "
                        "else .venv-vllm/bin/python from `make vllm`)")
    parser.add_argument("--ready-timeout", type=float, default=900.0, help="seconds")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start both vLLM servers on the exported checkpoint and wait until interrupted."""
    from engine.backends.vllm_launch import ServerPair

    config = load_config(args.config).engine.vllm
    checkpoint = args.checkpoint or config.checkpoint
    if not checkpoint or not (Path(checkpoint) / "config.json").is_file():
        print(f"error: no exported checkpoint at {checkpoint}: run `capret export-vllm` first",
              file=sys.stderr)
        return 2
    settings = serve_settings(config, Path(checkpoint), args)
    servers = ServerPair(settings, Path(checkpoint) / "logs")
    # SIGTERM (docker stop, kill) stops both servers as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        servers.start()
        waited = servers.wait_ready(args.ready_timeout)
        print(f"vLLM ready after {waited:.0f} s: generate {servers.urls['generate']}, pooling "
              f"{servers.urls['pooling']} (logs in {servers.log_dir}); Ctrl-C stops both",
              flush=True)
        while all(p.poll() is None for p in servers.processes.values()):
            time.sleep(1.0)
        print("a vLLM server exited; stopping the other", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        servers.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_settings(config: VllmConfig, checkpoint: Path, args: argparse.Namespace
                   ) -> ServeSettings:
    """How to start the two servers: ports from the config URLs, device and python from args."""
    from engine.backends.vllm_launch import ServeSettings

    # The first replica of each role: serve-llm starts one pair (more: one per port, by hand).
    generate, pooling = urlsplit(config.generate_urls[0]), urlsplit(config.pool_urls[0])
    return ServeSettings(
        checkpoint=checkpoint.resolve(), python=args.python or vllm_python(),
        device=resolve_device(args.device), host=args.host,
        generate_port=generate.port or 8000, pooling_port=pooling.port or 8001,
        served_model=config.served_model, max_model_len=config.max_model_len,
        api_key=os.environ.get("CAPRET_VLLM_API_KEY") or None)


def vllm_python() -> str:
    """$CAPRET_VLLM_PYTHON, else the project's vLLM venv (`make vllm`)."""
    return os.environ.get(PYTHON_ENV) or str(PROJECT / ".venv-vllm" / "bin" / "python")


def resolve_device(device: str) -> Literal["cpu", "gpu"]:
    """``cpu`` or ``gpu`` for vLLM; ``auto`` picks the GPU when CUDA is available."""
    if device != "auto":
        return cast(Literal["cpu", "gpu"], device)
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"
