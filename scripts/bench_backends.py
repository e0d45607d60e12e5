"""Tokens/s of the hf and vllm backends for 1 and 8 concurrent conversations, and the [RET]
round trip (the pooling request for the hidden state), on the shipped default; then tokens/s
for 16 conversations at once on one generate server and on two (replicas).

    .venv/bin/python scripts/bench_backends.py                  # exports, starts three servers
    .venv/bin/python scripts/bench_backends.py --ports 8000,8001,8002  # already running

Needs the vLLM venv (`make vllm`) unless --ports is given (GENERATE,POOLING[,GENERATE2]; no
replica row without the third). Greedy, 40 new tokens, [RET] off so every reply runs to the
limit or EOS; tokens/s counts generated tokens over wall time. Each CPU server computes on one
OpenMP thread, unpinned (vllm_launch.CPU_ENV): on a 2-core machine one generate server uses
about one core, two can use both, and the bench's own process (prompt embeddings) and the
pooling server take their share of the same two.
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


def vllm_engine(base: EngineConfig, pair: ServerPair, *more: ServerPair) -> RSCapRet:
    """The default on vLLM: ``pair``'s servers, and the generate servers of ``more``."""
    generate = (pair.urls["generate"], *(p.urls["generate"] for p in more))
    config = dataclasses.replace(base.vllm, generate_urls=generate,
                                 pool_urls=(pair.urls["pooling"],))
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


def start_replica(pair: ServerPair, port: int) -> ServerPair:
    """A second generate server on ``pair``'s checkpoint."""
    replica = ServerPair(dataclasses.replace(pair.settings, generate_port=port),
                         pair.log_dir / "replica")
    replica.log_dir.mkdir(parents=True, exist_ok=True)
    replica.spawn("generate")
    print(f"second generate server ready in {replica.wait_ready(900):.0f} s")
    return replica


def replica_row(base: EngineConfig, pair: ServerPair, replica: ServerPair) -> None:
    """16 conversations at once on one generate server, then on two."""
    one = tokens_per_s(vllm_engine(base, pair), 16)
    two = tokens_per_s(vllm_engine(base, pair, replica), 16)
    print(f"vllm  16 at once: 1 generate server {one:6.1f} tokens/s   2 replicas {two:6.1f} "
          "tokens/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports", help="GENERATE,POOLING[,GENERATE2] of running servers")
    args = parser.parse_args()
    base = load_config().engine
    hf = create_engine(base)
    with tempfile.TemporaryDirectory() as tmp:
        replica: ServerPair | None = None
        if args.ports:
            generate, pooling, *second = (int(p) for p in args.ports.split(","))
            pair = ServerPair(ServeSettings(Path(tmp), "", generate_port=generate,
                                            pooling_port=pooling), Path(tmp))
            if second:
                replica = ServerPair(dataclasses.replace(pair.settings,
                                                         generate_port=second[0]), Path(tmp))
        else:
            pair = start_servers(hf, Path(tmp))
            replica = start_replica(pair, 18102)
        try:
            engines = {"hf": hf, "vllm": vllm_engine(base, pair)}
            for name, engine in engines.items():
                one, eight = tokens_per_s(engine, 1), tokens_per_s(engine, 8)
                print(f"{name:5s} 1 conversation {one:6.1f} tokens/s   8 at once {eight:6.1f} "
                      f"tokens/s   [RET] round trip {ret_round_trip_ms(engine):6.1f} ms")
            if replica is not None:
                replica_row(base, pair, replica)
        finally:
            if replica is not None:
                replica.stop()
            pair.stop()


if __name__ == "__main__":
    main()
