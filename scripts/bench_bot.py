"""Benchmark: messages/s and added latency of the Telegram bot + service around a fake engine.

50 users talk at once (each sends its next message ``--think-ms`` after the previous reply is
complete, like people reading a reply; ``--think-ms 0`` measures saturation throughput); the
real python-telegram-bot Application polls the local Bot API stand-in; the engine takes a
constant time. Added latency = (update pushed → final reply text recorded) − engine time.

    .venv/bin/python scripts/bench_bot.py [--users 50] [--messages 10] [--engine-ms 50]
                                          [--think-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import BotConfig  # noqa: E402
from bot.service import ConversationService  # noqa: E402
from bot.telegram_main import build_application  # noqa: E402
from tests.bot.bot_api_stub import BotApiStub, Call  # noqa: E402
from tests.bot.fake_engine import FakeEngine  # noqa: E402
from tests.bot.memory_store import MemoryStore  # noqa: E402


async def bench(
    users: int, messages: int, engine_ms: float, think_ms: float
) -> dict[str, float]:
    api = BotApiStub()
    await api.start()
    # The stand-in is not Telegram: its send limit would only measure itself, so lift it.
    config = dataclasses.replace(BotConfig(), send_rate_per_s=100_000,
                                 max_concurrent_model_calls=users,
                                 rate_limit_messages=10_000)
    engine = FakeEngine(delay_s=engine_ms / 1000)
    service = ConversationService(engine, MemoryStore(), config)
    app = build_application(service, config, api.token, api.root)
    waiting: dict[int, asyncio.Future[float]] = {}
    loop = asyncio.get_running_loop()

    def on_call(call: Call) -> None:
        text = str(call.params.get("text", ""))
        future = waiting.get(call.chat_id or 0)
        if text.startswith("I see") and not text.endswith("…") and future and not future.done():
            future.set_result(time.perf_counter())

    api.listeners.append(on_call)
    latencies: list[float] = []

    async def user(uid: int) -> None:
        for index in range(messages):
            waiting[uid] = loop.create_future()
            sent = time.perf_counter()
            await api.push_text(uid, f"question {index}")
            latencies.append(await asyncio.wait_for(waiting[uid], 60) - sent)
            await asyncio.sleep(think_ms / 1000 * random.uniform(0.5, 1.5))

    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        started = time.perf_counter()
        await asyncio.gather(*(user(1000 + u) for u in range(users)))
        elapsed = time.perf_counter() - started
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        await api.stop()
    added = sorted((lat * 1000 - engine_ms) for lat in latencies)
    return {"messages": len(latencies), "messages_per_s": len(latencies) / elapsed,
            "p50_added_ms": statistics.median(added),
            "p95_added_ms": added[int(0.95 * (len(added) - 1))]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--engine-ms", type=float, default=50.0)
    parser.add_argument("--think-ms", type=float, default=1000.0)
    args = parser.parse_args()
    random.seed(0)
    result = asyncio.run(bench(args.users, args.messages, args.engine_ms, args.think_ms))
    print(f"users={args.users} messages={result['messages']:.0f} engine={args.engine_ms:.0f} ms "
          f"think={args.think_ms:.0f} ms")
    print(f"throughput {result['messages_per_s']:.1f} messages/s")
    print(f"added latency p50 {result['p50_added_ms']:.1f} ms, p95 {result['p95_added_ms']:.1f} ms"
          " (target: p50 <= 20 ms)")
    return 0 if result["p50_added_ms"] <= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
