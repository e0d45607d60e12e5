"""Screen the retrieval refit and the hubness prior on RSICD `val` (a script: it trains and
scores).

    .venv/bin/python scripts/refit_screen.py [--bridge weights/bridge] [--betas 3,5,10]
        [VARIANT ...]

Prints `val` retrieval over the 1,093-image pool, ranked as `capret eval` ranks it ("Show me
<caption>" for each of the 5,465 references): first ``--bridge`` as given without a hubness
prior, then with a prior made at each of ``--betas`` (``engine/hubness.py``; the whole
split, then the mR of its two halves, even and odd images, as the shipped temperature was
chosen; the prior at the shipped temperature is `capret eval`'s mR). A VARIANT is
``name:key=value,...`` with keys of ``train.retrieval_refit`` plus ``seed`` and
``logit_scale`` (the scale the refit starts from, not its log), e.g. ``e30:epochs=30`` or
``hot:logit_scale=50``: each refits ``--bridge`` (then the joint training's output, not an
already refit one) from scratch and is scored the same way. The [RET] states of train and
`val` requests are cached under ``train.feature_cache``: the first run computes them (about
25 min on 2 cores), later runs take about a minute per variant.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import torch

from bot.config import load_config
from engine.bridge import Bridge
from engine.factory import create_engine
from engine.tokens import RETRIEVAL_PROMPTS
from engine.training.data import evaluation_records, load_sources
from engine.training.features import cached_features
from engine.training.metrics import retrieval_metrics
from engine.training.pipeline import with_bridge
from engine.training.retrieval_refit import (
    Requests,
    cached_ret_states,
    hubness_prior,
    refit_retrieval,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--bridge", default="weights/bridge")
    parser.add_argument("--betas", default="", help="hubness temperatures, e.g. 3,5,10")
    parser.add_argument("variants", nargs="*", default=[])
    args = parser.parse_args()
    config = load_config(args.config)
    engine = create_engine(with_bridge(config.engine, args.bridge))
    cache = Path(config.train.feature_cache)
    pooled = engine.bridge.spec.pooled_dim

    val = evaluation_records(config.train.sources, "val", None)
    # The gallery's embeddings: each image's quarter turns averaged (``embed_for_gallery``).
    val_turns, val = cached_features(engine.encoder, val, cache,
                                     config.engine.vision.gallery_turns)
    val_gallery = val_turns.mean(0)
    val_requests = Requests(
        tuple(RETRIEVAL_PROMPTS[0].format(query=c) for r in val for c in r.captions),
        tuple(i for i, r in enumerate(val) for _ in r.captions))
    val_states = cached_ret_states(engine, val_requests, cache)
    train = load_sources(config.train.sources, "train")
    train_features, train = cached_features(engine.encoder, train, cache,
                                            config.train.feature_rotations)
    train_requests = Requests.for_captions([r.captions for r in train])
    train_states = cached_ret_states(engine, train_requests, cache)

    def val_recall(bridge: Bridge, images: list[int] | None = None) -> str:
        images = list(range(len(val))) if images is None else images
        row = {image: r for r, image in enumerate(images)}
        asked = [q for q, image in enumerate(val_requests.owners) if image in row]
        with torch.no_grad():
            result = retrieval_metrics(bridge.gallery_rows(val_gallery[images]),
                                       bridge.text_queries(val_states[asked]),
                                       [row[val_requests.owners[q]] for q in asked])
        return " ".join(f"{k} {v}" for k, v in result.summary().items())

    halves = [list(range(half, len(val), 2)) for half in (0, 1)]

    def scored(bridge: Bridge) -> str:
        return (f"{val_recall(bridge)}; halves mR "
                + " / ".join(val_recall(bridge, h).split()[-1] for h in halves))

    def with_priors(bridge: Bridge) -> None:
        for beta in [float(b) for b in args.betas.split(",") if b]:
            bridge.hubness = hubness_prior(bridge, train_states,
                                           train_features[:, :, :pooled], beta)
            print(f"  hubness beta {beta:g}: {scored(bridge)}", flush=True)
        bridge.hubness = None

    engine.bridge.hubness = None  # each variant makes its own
    trained = {k: v.clone() for k, v in engine.bridge.state_dict().items()}
    print(f"as given ({args.bridge}), no hubness prior: {scored(engine.bridge)}", flush=True)
    with_priors(engine.bridge)
    for variant in args.variants:
        name, _, settings = variant.partition(":")
        changes = dict(pair.split("=") for pair in settings.split(",") if pair)
        seed = int(changes.pop("seed", config.train.seed))
        scale = changes.pop("logit_scale", None)
        refit = config.train.retrieval_refit
        refit = dataclasses.replace(refit, **{k: type(getattr(refit, k))(v)
                                              for k, v in changes.items()})
        engine.bridge.load_state_dict(trained)
        if scale is not None:
            with torch.no_grad():
                engine.bridge.logit_scale.fill_(math.log(float(scale)))
        with torch.enable_grad():
            refit_retrieval(engine.bridge, train_states, train_requests.owners,
                            train_features[:, :, :pooled], refit, seed)
        print(f"{name} ({variant}): {scored(engine.bridge)}", flush=True)
        with_priors(engine.bridge)


if __name__ == "__main__":
    main()
