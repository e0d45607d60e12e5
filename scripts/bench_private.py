"""Private galleries (a script, not a timed test): what indexing an upload adds to a reply, and
search latency with many chats' private images beside the public gallery.

    .venv/bin/python scripts/bench_private.py                          # 10,000 over 1,000 chats
    .venv/bin/python scripts/bench_private.py --private 100000 --chats 10000 --kind ivf

A real store (SQLite, image files, FAISS index file) in a temporary folder, through the bot's
StoreAdapter, the way the conversation service calls it. Vectors are synthetic 256-d unit
vectors around cluster centres; images are rows only (search and indexing read no files).
Upload: the bridge's image projection (a 512 -> 256 linear map, the real layer's shape) plus
``index_uploads`` (check, insert the row, add the vector, append it to the index's tail
file; every so often the whole index file is rewritten). Search: one query at a
time for a random chat, the public gallery plus that chat's own images (and ``mine`` alone).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from bot.service.store_adapter import StoreAdapter
from store import GalleryConfig, GalleryEntry, Store, StoreConfig, open_store
from store import faiss_index as fx
from store.sql import insert_ignore
from store.tables import Image, utcnow

BRIDGE = "bench-bridge"


def vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((64, dim)).astype(np.float32)
    return fx.normalise(centres[rng.integers(0, 64, n)] + 0.6 * rng.standard_normal(
        (n, dim)).astype(np.float32))


def new_images(store: Store, n: int, owner: int | None) -> list[str]:
    """Image rows for ``n`` random "images" in one transaction (setup speed: the service adds
    an upload's image before the reply, which is not what is measured here).
    """
    shas = [hashlib.sha256(os.urandom(32)).hexdigest() for _ in range(n)]
    rows = [{"sha256": sha, "size_bytes": 256, "format": "PNG", "width": 224, "height": 224,
             "created_at": utcnow()} for sha in shas]
    with store.db.write() as s:
        insert_ignore(s, Image.__table__, rows)
    return shas


def fill(store: Store, args: argparse.Namespace, rng: np.random.Generator) -> list[int]:
    """The public gallery, then ``private`` images spread evenly over ``chats`` chats."""
    public = new_images(store, args.public, None)
    store.gallery.add([GalleryEntry(sha) for sha in public], vectors(len(public), args.dim, rng),
                      BRIDGE)
    chats = [store.repo.get_or_create_user("bench", f"chat{c}").id for c in range(args.chats)]
    per_chat = args.private // args.chats
    for start in range(0, len(chats), 100):  # one gallery write per 100 chats: a quick setup
        entries = [GalleryEntry(sha, source="upload", owner_user_id=chat, visibility="private")
                   for chat in chats[start:start + 100]
                   for sha in new_images(store, per_chat, chat)]
        store.gallery.add(entries, vectors(len(entries), args.dim, rng), BRIDGE)
    return chats


class Clock:
    """Wall and CPU time (this thread's) of each timed call, in ms. On a shared machine the
    wall time includes waiting for a core; the CPU time does not (nor waiting for the disk).
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def time(self, fn: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        fn()
        self.wall.append((time.perf_counter() - wall) * 1000)
        self.cpu.append((time.thread_time() - cpu) * 1000)

    def report(self, name: str) -> None:
        def p(xs: list[float], q: int) -> float:
            return float(np.percentile(xs, q))

        print(f"{name}: CPU p50 {p(self.cpu, 50):.2f} ms, p95 {p(self.cpu, 95):.2f} ms; wall "
              f"p50 {p(self.wall, 50):.2f} ms, p95 {p(self.wall, 95):.2f} ms "
              f"({len(self.wall)} runs)", flush=True)


def bench_uploads(store: Store, adapter: StoreAdapter, chats: list[int],
                  args: argparse.Namespace, rng: np.random.Generator) -> None:
    projection = torch.nn.Linear(512, args.dim)  # the bridge's image -> shared-space layer
    pending = [(int(rng.choice(chats)), new_images(store, 1, None)[0])
               for _ in range(args.uploads)]
    embeddings = rng.standard_normal((args.uploads, 512)).astype(np.float32)
    bridge, index = Clock(), Clock()
    for (chat, sha), embedding in zip(pending, embeddings, strict=True):
        vector: list[np.ndarray] = []

        def project(x: np.ndarray = embedding, out: list[np.ndarray] = vector) -> None:
            with torch.inference_mode():
                out.append(projection(torch.from_numpy(x[None])).numpy())

        bridge.time(project)
        index.time(functools.partial(adapter.index_uploads, chat, [sha], vector[0]))
    bridge.report("upload: bridge projection (512 -> 256)")
    index.report("upload: index_uploads (row, vector, index tail or file saved)")


def bench_search(adapter: StoreAdapter, chats: list[int], args: argparse.Namespace,
                 rng: np.random.Generator) -> None:
    queries = vectors(args.queries, args.dim, rng)
    who = rng.choice(chats, args.queries)
    for only_own, name in ((False, "public + own"), (True, "own only (/search mine)")):
        clock = Clock()
        for chat, query in zip(who, queries, strict=True):
            clock.time(functools.partial(adapter.search, int(chat), query, 4, set(), only_own))
        clock.report(f"search k=4, {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public", type=int, default=40, help="public images (the seed: 40)")
    parser.add_argument("--private", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=1_000)
    parser.add_argument("--kind", choices=("flat", "ivf", "hnsw"), default="flat")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        config = StoreConfig(data_dir=tmp, gallery=replace(GalleryConfig(), index=args.kind))
        store = open_store(config)
        start = time.perf_counter()
        chats = fill(store, args, rng)
        print(f"{args.public} public + {args.private:,} private images over {args.chats:,} "
              f"chats, {args.kind} index, {args.dim}-d (setup {time.perf_counter() - start:.0f}"
              " s)", flush=True)
        adapter = StoreAdapter(store, BRIDGE)
        bench_search(adapter, chats, args, rng)
        bench_uploads(store, adapter, chats, args, rng)
        store.close()


if __name__ == "__main__":
    main()
