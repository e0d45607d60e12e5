"""Latency of one caption with the embedded default, and the process's peak RSS.

    .venv/bin/python scripts/bench_caption.py [--config configs/default.yaml] [--runs 5]

Loads the engine once (timed separately), then captions real RSICD images with at most 30 new
tokens, decoded as the config decodes a description (the embedded default: 5 beams re-ranked by
the search match); prints the median latency, tokens generated and peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from PIL import Image

from bot.config import load_config
from engine import create_engine
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT
from engine.types import GenerationOptions

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "rsicd" / "images"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=30)
    args = parser.parse_args()
    started = time.perf_counter()
    engine = create_engine(load_config(args.config).engine)
    print(f"engine load: {time.perf_counter() - started:.1f} s")
    options = GenerationOptions(max_new_tokens=args.tokens, allow_retrieval=False)
    latencies, tokens = [], []
    for path in sorted(IMAGES.glob("*.jpg"))[: args.runs + 1]:
        image = Image.open(path).convert("RGB")
        started = time.perf_counter()
        features = engine.embed_images([image])[0]
        result = engine.generate([image_turn(CAPTION_PROMPT, "x")], {"x": features}, options)
        latencies.append(time.perf_counter() - started)
        tokens.append(len(result.token_ids))
    latencies, tokens = latencies[1:], tokens[1:]  # the first run warms up
    print(f"caption latency (image in, <= {args.tokens} new tokens): "
          f"median {statistics.median(latencies):.2f} s over {len(latencies)} images, "
          f"{statistics.mean(tokens):.1f} tokens on average, "
          f"{sum(tokens) / sum(latencies):.1f} tokens/s")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
