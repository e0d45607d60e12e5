"""Screen a search asked in several request phrasings on RSICD `val` (a script, not `capret eval`).

    .venv/bin/python scripts/phrasing_screen.py [--config C] [--cache runs/phrasing_screen]

The retrieval maps were refit on the four phrasings of ``RETRIEVAL_PROMPTS`` ("Show me X",
"Find images of X", ...). For every subset of them, each `val` reference is asked in each
phrasing of the subset, the `[RET]` query vectors are averaged and renormalised (before the
hubness offsets and the towers' part are added, as ``engine/search.py`` adds them), and the
recalls over the whole 1,093-image pool are printed with the mR of its even and odd halves.
The subset "Show me" alone is `capret eval --search`. Each phrasing's `[RET]` states and the
gallery rows are cached under ``--cache``, a folder per set of weights (about 10 min a
phrasing on 2 cores, then seconds).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bot.config import load_config
from engine import create_engine
from engine.model import RSCapRet
from engine.tokens import RETRIEVAL_PROMPTS
from engine.training.data import evaluation_records
from engine.training.evaluate import _gallery_embeddings
from engine.training.metrics import retrieval_metrics
from engine.types import TextPart, Turn


def ret_states(engine: RSCapRet, phrasing: str, captions: list[str], path: Path) -> torch.Tensor:
    """The `[RET]` state of every caption asked in ``phrasing`` (cached at ``path``)."""
    if not path.exists():
        chunks = [engine.ret_states([[Turn("user", (TextPart(phrasing.format(query=c)),))]
                                     for c in captions[start:start + 16]], {}).cpu()
                  for start in tqdm(range(0, len(captions), 16), desc=phrasing)]
        torch.save(torch.cat(chunks), path)
    return torch.load(path)


def averaged_queries(engine: RSCapRet, per_phrasing: list[torch.Tensor], words: torch.Tensor
                     ) -> torch.Tensor:
    """Search queries from the phrasings' query vectors averaged, laid out as the engine's."""
    q = F.normalize(torch.stack(per_phrasing).mean(0), dim=-1)
    return engine.search._joined(engine.bridge.vector_queries(q), lambda: words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config")
    parser.add_argument("--cache", default="runs/phrasing_screen")
    args = parser.parse_args()
    config = load_config(args.config)
    engine = create_engine(config.engine)
    # Both cached parts depend on the weights: a folder per bridge and gallery encoder.
    cache = Path(args.cache) / f"{engine.bridge_id}__{engine.gallery_encoder_id}"
    cache.mkdir(parents=True, exist_ok=True)
    records = evaluation_records(config.train.sources, "val", None, None, 0)
    gallery = cache / "gallery.npy"
    if not gallery.exists():
        np.save(gallery, engine.gallery_rows(_gallery_embeddings(engine, records)))
    images = torch.from_numpy(np.load(gallery))
    owners = [row for row, r in enumerate(records) for _ in r.captions]
    captions = [c for r in records for c in r.captions]
    with torch.inference_mode():
        words = (engine.search._words(captions, torch.device("cpu"))
                 if engine.search.towers is not None else torch.empty(0))
        states = [ret_states(engine, p, captions, cache / f"ret{i}.pt")
                  for i, p in enumerate(RETRIEVAL_PROMPTS)]
        vectors = [engine.bridge.query_vectors(s) for s in states]
        for n in range(1, len(vectors) + 1):
            for chosen in itertools.combinations(range(len(vectors)), n):
                asked = averaged_queries(engine, [vectors[i] for i in chosen], words)
                whole = retrieval_metrics(images, asked, owners).summary()
                halves = []
                for first in (0, 1):
                    rows = list(range(first, len(records), 2))
                    at = {row: i for i, row in enumerate(rows)}
                    mine = [q for q, row in enumerate(owners) if row in at]
                    halves.append(retrieval_metrics(images[rows], asked[mine],
                                                    [at[owners[q]] for q in mine]).summary()["mR"])
                names = " + ".join(RETRIEVAL_PROMPTS[i].split(" {")[0] for i in chosen)
                print(f"{names}: " + ", ".join(f"{k} {v:.2f}" for k, v in whole.items())
                      + f"; halves mR {halves[0]:.2f} / {halves[1]:.2f}", flush=True)


if __name__ == "__main__":
    main()
