"""`capret doctor`: one line per thing the app needs, ready or missing, with the fix."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bot.commands import db as db_commands
from bot.config import AppConfig, load_config
from engine import embedded
from engine.config import EMBEDDED_LM, EMBEDDED_VISION

Check = Callable[[AppConfig], tuple[bool, str]]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("doctor", help="print what is ready and what is missing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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


def check_weights(config: AppConfig) -> tuple[bool, str]:
    uses_embedded = EMBEDDED_LM in config.engine.language.model or (
        config.engine.vision.arch == EMBEDDED_VISION
    )
    if not uses_embedded:
        return True, f"hub models {config.engine.language.model}, {config.engine.vision.arch}"
    missing = [role for role in embedded.SOURCES if not _cached(role)]
    if missing:
        return False, f"not converted yet: {', '.join(missing)} (run `capret models prepare`)"
    return True, f"embedded weights converted in {embedded.cache_dir()}"


def check_bridge(config: AppConfig) -> tuple[bool, str]:
    weights = config.engine.bridge.weights
    if weights is None:
        return False, "no trained bridge weights configured (engine.bridge.weights): untrained"
    from pathlib import Path

    present = (Path(weights) / "bridge.safetensors").is_file()
    return present, f"{weights}" if present else f"{weights}/bridge.safetensors not found"


def check_gpu(config: AppConfig) -> tuple[bool, str]:
    import torch

    if torch.cuda.is_available():
        return True, f"CUDA: {torch.cuda.get_device_name(0)}"
    needs_gpu = config.engine.device == "cuda"
    return not needs_gpu, "no CUDA device" + (" but the config asks for cuda" if needs_gpu else
                                                " (CPU is fine for the embedded default)")


def check_vllm(config: AppConfig) -> tuple[bool, str]:
    if config.engine.backend != "vllm":
        return True, "not used (backend: hf)"
    from engine.backends.vllm_connect import probe_servers

    return probe_servers(config.engine.vllm)


def _cached(role: str) -> bool:
    if role == "text":
        return embedded.source_path("text").is_file()
    folder = {"language": "smollm2-135m-instruct", "vision": "efficientnet-lite0"}[role]
    return (embedded.cache_dir() / folder / "source.json").is_file()


CHECKS: list[tuple[str, Check]] = [
    ("weights", check_weights),
    ("bridge", check_bridge),
    ("gpu", check_gpu),
    ("vllm", check_vllm),
    ("database", db_commands.check_database),
    ("gallery", db_commands.check_gallery),
]
