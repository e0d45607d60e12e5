"""How much a photo in the conversation spoils a text search, on RSICD `val` (a script).

    .venv/bin/python scripts/search_after_photo.py --captions runs/val.json [--bridge B]

Draws ``n`` pairs (A, B) of `val` images of different classes. With A's photo and its
description in context (the description from ``--captions``, a `capret eval --json` output),
"Show me <B's first caption>": prints how often the model emits [RET] by itself, and, with
[RET] forced, how often B ranks in the top 10 of the 1,093-image gallery against the same
request asked alone, and the share of the top 10 in A's class (the pull toward the photo).
The bot makes search queries from the request alone (``ConversationService._request_query``)
because of what this prints.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from bot.config import load_config
from engine.factory import create_engine
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT
from engine.training.data import evaluation_records
from engine.training.evaluate import _features, _gallery_embeddings
from engine.training.pipeline import with_bridge
from engine.types import GenerationOptions, TextPart, Turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--bridge", default="weights/bridge")
    parser.add_argument("--captions", required=True, help="a `capret eval --json` output")
    parser.add_argument("-n", type=int, default=40, help="pairs of images")
    args = parser.parse_args()
    config = load_config(args.config)
    engine = create_engine(with_bridge(config.engine, Path(args.bridge).resolve()))
    records = evaluation_records(config.train.sources, "val")
    described = json.loads(Path(args.captions).read_text())["captions"]
    rng = random.Random(0)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < args.n:
        a, b = rng.sample(range(len(records)), 2)
        if records[a].label != records[b].label:
            pairs.append((a, b))
    names = [r.path.name for r in records]
    features = _features(engine, [records[a] for a, _ in pairs])
    gallery = engine.gallery_rows(_gallery_embeddings(engine, records))  # (N, S)
    with_photo, alone = [], []
    for a, b in pairs:
        request = Turn("user", (TextPart(f"Show me {records[b].captions[0]}"),))
        with_photo.append([image_turn(CAPTION_PROMPT, names[a]),
                           Turn("assistant", (TextPart(described[names[a]]),)), request])
        alone.append([request])
    searched = sum(engine.generate(d, features, GenerationOptions(max_new_tokens=4)).query
                   is not None for d in with_photo)
    print(f"[RET] emitted after a photo: {100 * searched / args.n:.0f}% of {args.n}")
    for what, dialogues in (("after a photo", with_photo), ("asked alone", alone)):
        scores = engine.retrieve_batch(dialogues, features) @ gallery.T
        top = np.argsort(-scores, axis=1)[:, :10]
        found = np.mean([b in row for (_, b), row in zip(pairs, top, strict=True)])
        pulled = np.mean([[records[i].label == records[a].label for i in row]
                          for (a, _), row in zip(pairs, top, strict=True)])
        print(f"{what}: R@10 {100 * found:.1f}%, top 10 in the photo's class {100 * pulled:.1f}%")


if __name__ == "__main__":
    main()
