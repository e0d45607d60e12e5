"""Store benchmarks (a script, not a timed test): turn appends on SQLite, gallery search.

    .venv/bin/python scripts/bench_store.py                    # 10k, 100k, 1M vectors
    .venv/bin/python scripts/bench_store.py --sizes 10000 --turns 200   # quick
    .venv/bin/python scripts/bench_store.py --messages 500 --turns 0 --sizes  # a message's cost

Search vectors are synthetic: 256-d unit vectors drawn around cluster centres (embeddings of
real images cluster by scene), queries are perturbed gallery vectors. Latency is one query per
call, one thread, through the gallery's filtered search (visibility bitmap); recall@10 of the
approximate index is measured against exact (flat) search on the same data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import faiss
import numpy as np

from store import GalleryConfig, NewImage, Store, StoreConfig, open_store
from store import faiss_index as fx


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def bench_turns(turns: int, image_every: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(StoreConfig(data_dir=tmp))
        user = store.repo.get_or_create_user("bench", 1).id
        times = []
        for i in range(turns):
            parts: list[str | NewImage] = [f"turn {i}: what is in this scene? " * 3]
            if i % image_every == 0:
                parts.append(NewImage(os.urandom(60_000), "JPEG", 224, 224, "bench"))
            start = time.perf_counter()
            store.repo.append_turn(user, "user" if i % 2 == 0 else "assistant", parts)
            times.append((time.perf_counter() - start) * 1000)
        store.close()
    print(f"append_turn on SQLite (WAL, synchronous={StoreConfig().sqlite_synchronous}), "
          f"{turns} turns, an image every "
          f"{image_every}: p50 {percentile(times, 50):.2f} ms, p99 {percentile(times, 99):.2f} ms")


def bench_messages(messages: int, users: int = 50) -> None:
    """The store's work per chat message as ``capret telegram`` does it, one thread: the day's
    charge, the user and their context, the model call's timing, the question and reply.
    CPU per step (``time.thread_time``), after a warm-up that gives each user a conversation.
    """
    steps: dict[str, Callable[[Store, int], object]] = {
        "charge": lambda store, user: store.usage.charge(
            f"telegram:{user}", date(2026, 12, 7), model_calls=1, max_calls=10**9),
        "user_context": lambda store, user: store.repo.user_context("telegram", user),
        "record_call": lambda store, user: store.usage.record_call("generate", 0.05),
        "append_exchange": lambda store, user: store.repo.append_turns(
            store.repo.user_context("telegram", user)[0],
            [("user", [f"question from {user}"]), ("assistant", ["I see a harbour. " * 6])]),
    }
    cpu = dict.fromkeys(steps, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(StoreConfig(data_dir=tmp))
        for i in range(2 * messages):
            for name, step in steps.items():
                start = time.thread_time()
                step(store, 1000 + i % users)
                if i >= messages:  # the first half warms up
                    cpu[name] += time.thread_time() - start
        store.close()
    print(f"store per chat message, {users} users, {messages} messages, one thread (CPU ms): "
          + ", ".join(f"{name} {total / messages * 1000:.2f}" for name, total in cpu.items())
          + f"; total {sum(cpu.values()) / messages * 1000:.2f} (append_exchange includes a "
          "user_context)")


def synthetic(n: int, dim: int, clusters: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = fx.normalise(rng.standard_normal((clusters, dim), dtype=np.float32))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        which = rng.integers(0, clusters, stop - start)
        jitter = rng.standard_normal((stop - start, dim), dtype=np.float32) * noise
        out[start:stop] = centres[which] + jitter
    return fx.normalise(out)


def top_ten(index: Any, allowed: np.ndarray | None, cfg: GalleryConfig
            ) -> Callable[[np.ndarray], np.ndarray]:
    """A query's ten best ids in ``index`` (the first row of ``fx.search``'s answer)."""
    def search(q: np.ndarray) -> np.ndarray:
        return fx.search(index, q, 10, allowed, cfg)[1][0]
    return search


def timed_queries(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray
                  ) -> tuple[list[float], np.ndarray]:
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        ids = search(q)
        times.append((time.perf_counter() - start) * 1000)
        found.append(ids)
    return times, np.stack(found)


def recall_at_10(approx: np.ndarray, exact: np.ndarray) -> float:
    return statistics.mean(len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True))


def bench_search(n: int, args: argparse.Namespace, config: GalleryConfig) -> None:
    dim, n_queries = args.dim, args.queries
    x = synthetic(n, dim, clusters=max(64, n // 500), noise=args.noise)
    ids = np.arange(1, n + 1, dtype=np.int64)
    rng = np.random.default_rng(1)
    queries = fx.normalise(x[rng.integers(0, n, n_queries)] +
                           rng.standard_normal((n_queries, dim), dtype=np.float32) * 0.03)
    allowed = fx.bitmap(ids, n + 1)
    exact_ids = None
    for kind in ["flat", *args.kinds]:
        if kind == "hnsw" and n > args.hnsw_max:
            print(f"  {n:>9,d} hnsw: skipped (build above --hnsw-max {args.hnsw_max:,d})")
            continue
        start = time.perf_counter()
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        index = fx.build_index(kind, dim, config, x if kind == "ivf" else None)
        index.add_with_ids(x, ids)
        build_s = time.perf_counter() - start
        faiss.omp_set_num_threads(1)
        for probe in (args.ivf_probes if kind == "ivf" else [0]):
            cfg = replace(config, ivf_probe=probe) if probe else config
            times, found = timed_queries(top_ten(index, allowed, cfg), queries)
            if kind == "flat":
                exact_ids = found
            recall = "" if exact_ids is None or kind == "flat" else (
                f", recall@10 vs flat {recall_at_10(found, exact_ids):.3f}")
            name = f"{kind} nprobe {probe}" if probe else kind
            print(f"  {n:>9,d} {name:13s}: p50 {percentile(times, 50):7.3f} ms, p99 "
                  f"{percentile(times, 99):7.3f} ms (build {build_s:.1f} s){recall}")
        del index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500,
                        help="chat messages for the per-message cost (0: skip)")
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--image-every", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=["ivf", "hnsw"])
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="skip HNSW above this")
    parser.add_argument("--ivf-lists", type=int, default=1024)
    parser.add_argument("--ivf-probes", type=int, nargs="+", default=[8, 16, 32],
                        help="IVF lists probed per query (each measured on the same index)")
    parser.add_argument("--noise", type=float, default=0.08,
                        help="per-dimension spread around cluster centres (higher = harder)")
    args = parser.parse_args()
    if args.messages:
        bench_messages(args.messages)
    if args.turns:
        bench_turns(args.turns, args.image_every)
    if not args.sizes:
        return
    config = GalleryConfig(ivf_lists=args.ivf_lists)
    print(f"gallery search, top-10, {args.dim}-d, {args.queries} queries, one thread "
          f"(IVF {config.ivf_lists} lists; HNSW M {config.hnsw_m}, efSearch "
          f"{config.hnsw_ef_search}; synthetic clustered data, noise {args.noise}):")
    for n in args.sizes:
        bench_search(n, args, config)


if __name__ == "__main__":
    main()
