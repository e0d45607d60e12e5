"""`capret gallery add|search|stats|rebuild`: the retrieval gallery (vectors from the engine)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.config import AppConfig, load_config
from bot.environment import DATABASE_URL_ENV, secret
from store import StaleGalleryError, Store, open_store


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret gallery add|search|stats|rebuild` to ``sub``."""
    parser = sub.add_parser("gallery", help="the image gallery used for retrieval")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add folders, image files or an annotation file")
    add.add_argument("paths", nargs="+", help="folders, images, or a dataset .json")
    add.add_argument("--batch", type=int, default=32, help="images embedded per batch")
    add.set_defaults(func=run_add)
    search = actions.add_parser("search", help="search the gallery by text")
    search.add_argument("text")
    search.add_argument("-k", type=int, default=8, help="how many results")
    search.add_argument("--out", type=Path, help="write a contact sheet (PNG) here")
    search.set_defaults(func=run_search)
    actions.add_parser("stats", help="size, labels, bridge").set_defaults(func=run_stats)
    actions.add_parser("rebuild", help="re-embed everything with the current bridge").set_defaults(
        func=run_rebuild)


def _open(config: AppConfig) -> Store:
    return open_store(config.store, secret(DATABASE_URL_ENV))


def _engine(config: AppConfig) -> Any:
    from engine import create_engine

    return create_engine(config.engine)


def run_add(args: argparse.Namespace) -> int:
    """Index image files, folders or annotation files into the public gallery."""
    from bot.gallery_builder import add_images, collect

    config = load_config(args.config)
    store = _open(config)
    try:
        sources = list(collect(args.paths))
        report = add_images(store, _engine(config), sources, batch=args.batch, progress=True)
    except StaleGalleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"added {report.added}, already there {report.skipped}, unreadable {report.failed}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    """Print the gallery's best matches for a text (indexing the seed gallery first if empty)."""
    from bot.gallery_builder import search_text

    config = load_config(args.config)
    store = _open(config)
    try:
        engine = _engine(config)
        if not _seeded(store, engine, config):
            return 1
        hits = search_text(store, engine, args.text, args.k)
    except StaleGalleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    for rank, hit in enumerate(hits, 1):
        score = hit.score * engine.score_scale
        print(f"{rank:2d}. {score:.3f}  {hit.label or '-':18s} {hit.caption or ''}")
    if args.out and hits:
        from bot.contact_sheet import contact_sheet
        from bot.service.store_adapter import to_hit

        sheet = [to_hit(h, store.blobs.path(h.sha256), score_scale=engine.score_scale)
                 for h in hits]
        print(f"contact sheet: {contact_sheet(sheet, args.out)}")
    return 0


def _seeded(store: Store, engine: Any, config: AppConfig) -> bool:
    """Index the shipped seed gallery first, as `capret run` does; False (and what to run)
    when the gallery is still empty.
    """
    from bot.gallery_builder import ensure_seed_gallery

    if len(store.gallery) == 0 and config.store.gallery.seed_folder:
        print(f"indexing the seed gallery {config.store.gallery.seed_folder} first...",
              file=sys.stderr, flush=True)
    indexed = ensure_seed_gallery(store, engine, config)
    if indexed:
        print(f"indexed {indexed} images", file=sys.stderr)
    if len(store.gallery) == 0:
        print("the gallery is empty: add images with `capret gallery add FOLDER` (or set "
              "store.gallery.seed_folder in the config)", file=sys.stderr)
        return False
    return True


def run_stats(args: argparse.Namespace) -> int:
    """Print the gallery's size, index kind, bridge and labels."""
    store = _open(load_config(args.config))
    try:
        stats = store.gallery.stats()
    finally:
        store.close()
    print(f"gallery {stats.name}: {stats.count} images ({stats.public} public, {stats.private} "
          f"private of {stats.owners} chats), index {stats.index_kind}, dim {stats.dim}, "
          f"bridge {stats.bridge_id}")
    for label, count in sorted(stats.labels.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {count:6d}  {label}")
    return 0


def run_rebuild(args: argparse.Namespace) -> int:
    """Re-embed every gallery image, chats' uploads included, with the configured bridge."""
    from bot.gallery_builder import rebuild

    config = load_config(args.config)
    store = _open(config)
    try:
        count = rebuild(store, _engine(config), progress=True)
    finally:
        store.close()
    print(f"rebuilt {count} vectors")
    return 0
