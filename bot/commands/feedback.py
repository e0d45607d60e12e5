"""`capret feedback export --out FILE`: well-rated descriptions as a Karpathy-format dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot.config import load_config, secret
from store import open_store


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("feedback", help="what people rated")
    actions = parser.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export", help="write the 👍-rated descriptions as a dataset `capret train` reads")
    export.add_argument("--out", type=Path, required=True, help="the annotation file to write")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = open_store(config.store, secret("CAPRET_DATABASE_URL"))
    images = args.out.parent / f"{args.out.stem}_images"
    entries = []
    try:
        for index, rated in enumerate(store.feedback.well_rated()):
            data = store.blobs.get(rated.sha256)
            if data is None:
                continue
            images.mkdir(parents=True, exist_ok=True)
            (images / f"{rated.sha256}.png").write_bytes(data)
            entries.append(_entry(index, f"{rated.sha256}.png", rated.text))
    finally:
        store.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": entries}, indent=1))
    print(f"{len(entries)} well-rated descriptions: {args.out} (images in {images})")
    print(f"to train on them, add to train.sources: {{name: feedback, annotations: {args.out}, "
          f"images: {images}}}")
    return 0


def _entry(index: int, filename: str, text: str) -> dict[str, object]:
    """One image of the Karpathy layout (dataset_rsicd.json's), split ``train``."""
    raw = text.strip()
    tokens = [t for t in raw.lower().replace(".", " ").replace(",", " ").split() if t]
    return {"filename": filename, "imgid": index, "split": "train", "sentids": [index],
            "sentences": [{"raw": raw, "tokens": tokens, "imgid": index, "sentid": index}]}
