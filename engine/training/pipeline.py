"""End-to-end bridge training from a config: data, cached features, models, the loop."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.bridge import META_FILE, Bridge
from engine.config import EngineConfig
from engine.datastore import NeighbourHints, load_datastore
from engine.factory import bridge_spec, create_engine, resolve_device
from engine.language import load_language
from engine.model import ImageEncoder
from engine.training.answer_tuning import tune_answers
from engine.training.config import TrainConfig
from engine.training.data import CaptionedImage, load_sources
from engine.training.description_tuning import tune_descriptions
from engine.training.features import cached_features
from engine.training.questions import Question, questions_for, typical_classes
from engine.training.retrieval_refit import (
    Requests,
    cached_ret_states,
    hubness_prior,
    refit_retrieval,
)
from engine.training.train import TrainItem, train_bridge
from engine.vision import build_image_encoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRun:
    """Where the bridge was written, the wall time of each stage (minutes) and, for a refit
    with held-out images, their mR after each epoch.
    """

    folder: Path
    minutes: dict[str, float]
    held_out_mr: tuple[float, ...] = ()


def run_bridge_training(engine_config: EngineConfig, config: TrainConfig,
                        limit_images: int | None = None, max_steps: int | None = None
                        ) -> TrainingRun:
    """Train a fresh bridge for the configured encoder and LM (resuming a stopped run)."""
    torch.manual_seed(config.seed)
    device = resolve_device(engine_config.device)
    encoder = build_image_encoder(engine_config.vision, device)
    started = time.monotonic()
    items = train_items(encoder, config, limit_images)
    minutes = {"features": (time.monotonic() - started) / 60}
    lm = load_language(engine_config.language, device)
    spec = bridge_spec(engine_config.bridge, encoder, lm)
    torch.manual_seed(config.seed)
    bridge = Bridge(spec, engine_config.bridge.logit_scale_init).to(device)
    # [RET] starts as an average token rather than noise.
    bridge.init_ret_rows(lm.model.get_input_embeddings().weight.mean(0).detach())
    out_dir = Path(config.out_dir)
    started = time.monotonic()
    train_bridge(items, lm, bridge, engine_config, config, out_dir, max_steps)
    minutes["bridge"] = (time.monotonic() - started) / 60  # since this (re)start
    return TrainingRun(out_dir / "bridge", minutes)


def train_items(encoder: ImageEncoder, config: TrainConfig, limit_images: int | None = None
                ) -> list[TrainItem]:
    """The train split as training items: cached features, captions, label, questions."""
    records = load_sources(config.sources, "train")[:limit_images]
    features, records = cached_features(encoder, records, Path(config.feature_cache),
                                        config.feature_rotations)  # (R, N, D_img)
    items = [TrainItem(features[:, i], r.captions, r.label, q, r.key)
             for i, (r, q) in enumerate(zip(records, record_questions(records), strict=True))]
    logger.info("training on %d images, %d captions", len(items),
                sum(len(i.captions) for i in items))
    return items


def record_questions(records: Sequence[CaptionedImage]) -> list[tuple[Question, ...]]:
    """Each record's grounded questions; 'typical of a class' is judged over ``records``."""
    typical = typical_classes((r.captions, r.label) for r in records)
    labels = sorted({r.label for r in records if r.label})
    return [tuple(questions_for(r.key, r.captions, r.label, typical, labels)) for r in records]


def run_retrieval_refit(engine_config: EngineConfig, config: TrainConfig, bridge_folder: Path,
                        out_folder: Path, holdout: int = 0, limit_images: int | None = None
                        ) -> TrainingRun:
    """Refit a trained bridge's retrieval maps on cached [RET] states; write the whole bridge.

    ``holdout``: leave that many train images (drawn at random) out and record their mR after
    each epoch, for choosing the epochs; the shipped refit holds none out.
    """
    engine = create_engine(with_bridge(engine_config, bridge_folder))
    records = load_sources(config.sources, "train")[:limit_images]
    features, records = cached_features(engine.encoder, records, Path(config.feature_cache),
                                        config.feature_rotations)  # (R, N, D_img)
    requests = Requests.for_captions([r.captions for r in records])
    started = time.monotonic()
    states = cached_ret_states(engine, requests, Path(config.feature_cache))
    minutes = {"[RET] states": (time.monotonic() - started) / 60}
    logger.info("refitting on %d requests for %d images", len(states), len(records))
    bridge = engine.bridge.train()
    started = time.monotonic()
    with torch.enable_grad():
        history = refit_retrieval(bridge, states, requests.owners,
                                  features[:, :, :bridge.spec.pooled_dim],
                                  config.retrieval_refit, config.seed, holdout)
    minutes["retrieval refit"] = (time.monotonic() - started) / 60
    beta = config.retrieval_refit.hubness_beta
    bridge.hubness = None if beta <= 0 else hubness_prior(
        bridge, states, features[:, :, :bridge.spec.pooled_dim], beta)
    meta = _meta_of(bridge_folder)
    meta["retrieval_refit"] = {**dataclasses.asdict(config.retrieval_refit),
                               "holdout": holdout, **dataclasses.asdict(history)}
    bridge.save(out_folder, extra=meta)
    return TrainingRun(out_folder, minutes, tuple(history.holdout_mr))


def run_answer_tuning(engine_config: EngineConfig, config: TrainConfig, bridge_folder: Path,
                      out_folder: Path, limit_images: int | None = None,
                      max_steps: int | None = None) -> TrainingRun:
    """Tune a trained bridge's answer maps on answers (``answer_tuning.py``); write the whole
    bridge to ``out_folder`` (checkpoints beside it, in ``<out_folder>.run``).
    """
    engine = create_engine(with_bridge(engine_config, bridge_folder))
    started = time.monotonic()
    items = train_items(engine.encoder, config, limit_images)
    minutes = {"features": (time.monotonic() - started) / 60}
    started = time.monotonic()
    with torch.enable_grad():
        losses = tune_answers(items, engine.lm, engine.bridge, engine_config, config,
                              out_folder.with_name(out_folder.name + ".run"), max_steps)
    minutes["answer tuning"] = (time.monotonic() - started) / 60  # since this (re)start
    meta = _meta_of(bridge_folder)
    meta["answer_tuning"] = {**dataclasses.asdict(config.answer_tuning), "loss": losses}
    engine.bridge.save(out_folder, extra=meta)
    return TrainingRun(out_folder, minutes)


def run_description_tuning(engine_config: EngineConfig, config: TrainConfig,
                           bridge_folder: Path, datastore_folder: Path, out_folder: Path,
                           limit_images: int | None = None, max_steps: int | None = None
                           ) -> TrainingRun:
    """Tune a trained bridge's description maps with the captions of each train image's
    nearest others in the prompt (``description_tuning.py``); write the whole bridge to
    ``out_folder`` (checkpoints beside it, in ``<out_folder>.run``).
    """
    engine = create_engine(with_bridge(engine_config, bridge_folder))
    started = time.monotonic()
    items = train_items(engine.encoder, config, limit_images)
    minutes = {"features": (time.monotonic() - started) / 60}
    tuning = config.description_tuning
    hints = NeighbourHints(load_datastore(datastore_folder), tuning.neighbours, tuning.shown)
    started = time.monotonic()
    with torch.enable_grad():
        losses = tune_descriptions(items, hints.for_keys([i.key for i in items]), engine.lm,
                                   engine.bridge, engine_config, config,
                                   out_folder.with_name(out_folder.name + ".run"), max_steps)
    minutes["description tuning"] = (time.monotonic() - started) / 60  # since this (re)start
    meta = _meta_of(bridge_folder)
    meta["description_tuning"] = {**dataclasses.asdict(tuning), "loss": losses}
    engine.bridge.save(out_folder, extra=meta)
    return TrainingRun(out_folder, minutes)


def with_bridge(engine_config: EngineConfig, bridge_folder: Path | str) -> EngineConfig:
    """``engine_config`` with the bridge weights in ``bridge_folder``."""
    return dataclasses.replace(
        engine_config, bridge=dataclasses.replace(engine_config.bridge, weights=str(bridge_folder)))


def _meta_of(bridge_folder: Path) -> dict[str, Any]:
    """A bridge's record of how it was made (its bridge.json less what ``save`` rewrites)."""
    meta = json.loads((bridge_folder / META_FILE).read_text())
    meta.pop("spec", None)
    meta.pop("logit_scale", None)
    return dict(meta)
