"""Tokens/s of the hf and vllm backends for 1 and 8 concurrent conversations, and the [RET]
round trip (the pooling request for the hidden state), on the shipped default.

    .venv/bin/python scripts/bench_backends.py                  # exports, starts both servers
    .venv/bin/python scripts/bench_backends.py --ports 8000,8001  # servers already running

Needs the vLLM venv (`make vllm`) unless --ports is given. Greedy, 40 new tokens, [RET] off so
every reply runs to the limit or EOS; tokens/s counts generated tokens over wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.config import load_config
from engine import create_engine
from engine.backends.vllm_export import export_checkpoint
from engine.backends.vllm_launch import ServerPair, ServeSettings
from engine.config import EngineConfig
from engine.model import RSCapRet
from engine.types import GenerationOptions, TextPart, Turn

PROJECT = Path(__file__).resolve().parents[1]
TOPICS = ["a harbour", "a forest", "a stadium", "a river", "a bridge", "a beach", "a church",
          "farmland"]
OPTIONS = GenerationOptions(max_new_tokens=40, allow_retrieval=False)


def tokens_per_s(engine: RSCapRet, concurrent: int, rounds: int = 2) -> float:
    dialogues = [[Turn("user", (TextPart(f"Describe {TOPICS[i % len(TOPICS)]} seen from a "
                                         "satellite."),))] for i in range(concurrent)]
    engine.generate(dialogues[0], {}, OPTIONS)  # warm-up
    tokens, start = 0, time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        for _ in range(rounds):
            results = pool.map(lambda d: engine.generate(d, {}, OPTIONS), dialogues)
            tokens += sum(len(r.token_ids) for r in results)
    return tokens / (time.perf_counter() - start)


def ret_round_trip_ms(engine: RSCapRet, repeats: int = 10) -> float:
    dialogue = [Turn("user", (TextPart("Show me an airport with many planes"),))]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.retrieve(dialogue, {})
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def vllm_engine(base: EngineConfig, pair: ServerPair) -> RSCapRet:
    urls = pair.urls
    config = dataclasses.replace(base.vllm, generate_urls=(urls["generate"],),
                                 pool_urls=(urls["pooling"],))
    return create_engine(dataclasses.replace(base, backend="vllm", vllm=config))


def start_servers(hf: RSCapRet, folder: Path) -> ServerPair:
    export_checkpoint(hf.lm, hf.bridge, hf.bridge_id, folder / "checkpoint")
    settings = ServeSettings(folder / "checkpoint", str(PROJECT / ".venv-vllm/bin/python"),
                             generate_port=18100, pooling_port=18101,
                             env={"TMPDIR": str(folder), "VLLM_CACHE_ROOT": str(folder)})
    pair = ServerPair(settings, folder / "logs")
    pair.start()
    print(f"vLLM servers ready in {pair.wait_ready(900):.0f} s")
    return pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports", help="GENERATE,POOLING of running servers")
    args = parser.parse_args()
    base = load_config().engine
    hf = create_engine(base)
    with tempfile.TemporaryDirectory() as tmp:
        if args.ports:
            generate, pooling = (int(p) for p in args.ports.split(","))
            pair = ServerPair(ServeSettings(Path(tmp), "", generate_port=generate,
                                            pooling_port=pooling), Path(tmp))
        else:
            pair = start_servers(hf, Path(tmp))
        try:
            engines = {"hf": hf, "vllm": vllm_engine(base, pair)}
            for name, engine in engines.items():
                one, eight = tokens_per_s(engine, 1), tokens_per_s(engine, 8)
                print(f"{name:5s} 1 conversation {one:6.1f} tokens/s   8 at once {eight:6.1f} "
                      f"tokens/s   [RET] round trip {ret_round_trip_ms(engine):6.1f} ms")
        finally:
            pair.stop()


if __name__ == "__main__":
    main()
