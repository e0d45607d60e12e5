"""Ablation of the bridge recipe at a reduced budget (a script: it trains and evaluates).

    .venv/bin/python scripts/ablation.py [--limit-images 640] [--max-steps 40] [--val 80]

Trains one bridge per variant on the first ``--limit-images`` RSICD train images for at most
``--max-steps`` steps, then evaluates it on the first ``--val`` val images (file-name order),
and prints a Markdown table. Every variant gets the same data, steps and seed, so the rows
compare with each other, not with the full-budget figures in docs/EXPERIMENTS.md. Variants:

- shipped: configs/default.yaml as is (its encoder, feature, k, losses, dialogues);
- k=1: one prefix vector per image instead of four;
- ImageNet encoder: the wheel's ImageNet EfficientNet-Lite0, pooled features;
- no retrieval loss: λr = 0 (the [RET] row and retrieval heads get no signal);
- pooled: the adapted trunk's 1280-d pooled output alone (no grid cells);
- projected: the adapted encoder's 512-d CLIP projection;
- spatial 3x3: the pooled output plus a 3x3 grid of cells (13 vectors per image).

Outputs (bridges, eval JSON) go under runs/ablation/<variant>/.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.config import AppConfig, load_config

Variant = Callable[[AppConfig], AppConfig]
COLUMNS = ("BLEU-4", "METEOR", "CIDEr", "mR", "scene_accuracy", "followup_yes_no_%",
           "distinct_captions_%")


def _k1(c: AppConfig) -> AppConfig:
    return replace(c, engine=replace(c.engine, bridge=replace(c.engine.bridge, prefix_tokens=1)))


def _vision(**changes: Any) -> Variant:
    """A variant that changes only the image encoder settings."""
    def variant(c: AppConfig) -> AppConfig:
        return replace(c, engine=replace(c.engine, vision=replace(c.engine.vision, **changes)))
    return variant


def _no_retrieval(c: AppConfig) -> AppConfig:
    return replace(c, train=replace(c.train, lambda_retrieval=0.0))


VARIANTS: dict[str, Variant] = {
    "shipped": lambda c: c,
    "k=1": _k1,
    "ImageNet encoder": _vision(weights="imagenet", feature="pooled"),
    "no retrieval loss": _no_retrieval,
    "pooled": _vision(feature="pooled"),
    "projected": _vision(feature="projected"),
    "spatial 3x3": _vision(feature="spatial", grid=3),
}


def run_variant(name: str, config: AppConfig, args: argparse.Namespace) -> dict[str, float]:
    from engine import create_engine
    from engine.training.data import evaluation_records
    from engine.training.evaluate import evaluate
    from engine.training.pipeline import run_bridge_training

    out = Path(args.out) / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    train = replace(config.train, out_dir=str(out))
    bridge = run_bridge_training(config.engine, train, args.limit_images, args.max_steps).folder
    engine_config = replace(config.engine,
                            bridge=replace(config.engine.bridge, weights=str(bridge)))
    records = evaluation_records(config.train.sources, "val", args.val)
    report = evaluate(create_engine(engine_config), records)
    (out / "val.json").write_text(json.dumps(report.to_json(), indent=1))
    return report.metrics


def _cell(metrics: dict[str, float], key: str) -> str:
    """Caption scores as fractions (3 decimals), recall and accuracy in percent (1 decimal)."""
    value = metrics.get(key, float("nan"))
    return f"{value:.1f}" if key == "mR" or key.startswith(("scene", "followup", "distinct")) \
        else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="base config (default: configs/default.yaml)")
    parser.add_argument("--limit-images", type=int, default=640)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--val", type=int, default=80, help="first N val images")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run these only")
    parser.add_argument("--out", default="runs/ablation")
    args = parser.parse_args()
    base = load_config(args.config)
    rows = []
    for name in args.only or VARIANTS:
        metrics = run_variant(name, VARIANTS[name](base), args)
        rows.append(f"| {name} | " + " | ".join(_cell(metrics, k) for k in COLUMNS) + " |")
        print(rows[-1], flush=True)
    print(f"\n{args.limit_images} train images, {args.max_steps} steps, first {args.val} val "
          "images\n\n| variant | " + " | ".join(COLUMNS) + " |\n|" + "---|" * (len(COLUMNS) + 1))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
