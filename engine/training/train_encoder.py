"""Contrastive (CLIP) adaptation of the embedded image encoder to remote-sensing captions.

The embedded CLIP (EfficientNet-Lite0 image tower, MiniLM text tower, fresh projections) is
fine-tuned with a symmetric InfoNCE loss and a learnable logit scale on the train split; only
the trunk's last blocks, both projections and the text tower's last layers train. Each step
takes B images with *all* their captions: a caption's target is its image; an image's positives
are all its captions (multi-positive InfoNCE). The frozen early trunk runs once per image view
(``trunk_cache``). Recall on the val split is measured before and after with the CLIP towers.
The image tower (what inference needs) is written as fp16 ``visual.safetensors`` with
``encoder.json`` (config, metrics) beside it.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from engine.clip_model import ClipBundle, build_clip, encoder_id, text_state, visual_state
from engine.config import EMBEDDED_VISION, TEXT_WEIGHTS, VisionConfig
from engine.training.checkpoints import CHECKPOINT, resume, save_checkpoint
from engine.training.config import DatasetSource, EncoderTrainConfig
from engine.training.contrastive import info_nce
from engine.training.data import CaptionedImage, load_sources
from engine.training.metrics import RetrievalMetrics, retrieval_metrics
from engine.training.schedule import warmup_cosine
from engine.training.trunk_cache import SplitTrunk, cached_maps, split_trunk
from engine.typed_config import to_mapping

logger = logging.getLogger(__name__)

EVAL_BATCH = 128
MAX_LOGIT_SCALE = 100.0


@dataclass
class SplitData:
    """One split: frozen maps (N, V, C, h, w) fp16 and each image's captions."""

    maps: torch.Tensor
    captions: list[tuple[str, ...]]


def train_encoder(cfg: EncoderTrainConfig, sources: Sequence[DatasetSource],
                  limit_images: int | None = None, max_steps: int | None = None) -> dict[str, Any]:
    """Adapt the embedded encoder; writes ``visual.safetensors`` + ``encoder.json`` to out_dir.

    Args:
        cfg: the adaptation settings (``train.encoder``).
        sources: caption datasets; their ``train`` split trains, ``val`` measures.
        limit_images: use only the first N images of each split (tiny runs, tests).
        max_steps: stop after this many optimizer steps (tiny runs, tests).

    Returns:
        The report written to ``encoder.json``.
    """
    started = time.time()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    base = VisionConfig(arch=EMBEDDED_VISION, weights="imagenet", feature="projected")
    bundle = build_clip(base)
    split = split_trunk(bundle.model.visual, cfg.trainable_blocks)
    train = _load_split(bundle, split, sources, "train", cfg, limit_images, views=cfg.cached_views)
    val = _load_split(bundle, split, sources, "val", cfg, limit_images, views=1)
    before = evaluate(bundle, split, val)
    logger.info("val before: %s", before.summary())
    history = _fit(bundle, split, train, cfg, max_steps)
    after = evaluate(bundle, split, val)
    logger.info("val after: %s", after.summary())
    report = {
        "base_encoder_id": bundle.encoder_id, "config": to_mapping(cfg),
        "train_images": len(train.captions), "val_images": len(val.captions),
        "val_before": before.summary(), "val_after": after.summary(), "history": history,
        "minutes": round((time.time() - started) / 60, 2),
    }
    _write(bundle, Path(cfg.out_dir), report, cfg.text_trainable_layers)
    return report


def _load_split(bundle: ClipBundle, split: SplitTrunk, sources: Sequence[DatasetSource],
                name: str, cfg: EncoderTrainConfig, limit: int | None, views: int) -> SplitData:
    items: list[CaptionedImage] = load_sources(sources, name)[:limit]
    if not items:
        raise ValueError(f"no usable images in split {name!r} of {[s.name for s in sources]}")
    maps, kept = cached_maps(split, [i.path for i in items], bundle.preprocess, views,
                             Path(cfg.feature_cache) / "encoder", bundle.encoder_id)
    captions = [items[i].captions for i in kept]
    logger.info("%s: %d images, %d captions, maps %s", name, len(captions),
                sum(map(len, captions)), tuple(maps.shape))
    return SplitData(maps, captions)


def _fit(bundle: ClipBundle, split: SplitTrunk, data: SplitData, cfg: EncoderTrainConfig,
         max_steps: int | None) -> list[dict[str, float]]:
    """The training loop; checkpoints every ``cfg.checkpoint_every`` steps and resumes from
    ``out_dir/checkpoint.pt`` (each epoch's order and each step's views come from the seed, so
    a resumed run takes the same steps as an unbroken one).
    """
    model = bundle.model
    params = _unfreeze(model, split, cfg.text_trainable_layers)
    optimizer = torch.optim.AdamW(_param_groups(model, params, cfg), lr=cfg.learning_rate)
    steps_per_epoch = -(-len(data.captions) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    scheduler = warmup_cosine(optimizer, min(cfg.warmup_steps, total // 5), total)
    stop = min(max_steps or total, total)  # max_steps ends early, the schedule stays
    checkpoint = Path(cfg.out_dir) / CHECKPOINT
    step, saved = resume(checkpoint, model, optimizer, scheduler)
    history: list[dict[str, float]] = saved or []
    bar = tqdm(total=stop, initial=step, desc="adapt encoder", unit="step")
    losses: list[float] = []
    while step < stop:
        epoch, index = divmod(step, steps_per_epoch)
        order = list(range(len(data.captions)))
        random.Random(cfg.seed * 1000 + epoch).shuffle(order)
        batch = order[index * cfg.batch_size:(index + 1) * cfg.batch_size]
        loss = _step(bundle, split, data, batch, random.Random(cfg.seed + step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        _clamp_scale(model)
        losses.append(float(loss.detach()))
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if step % steps_per_epoch == 0 or step == stop:
            history.append({"epoch": epoch + 1, "loss": sum(losses) / max(len(losses), 1)})
            logger.info("epoch %d: loss %.4f", epoch + 1, history[-1]["loss"])
            losses = []
        if step % cfg.checkpoint_every == 0 or step == stop:
            save_checkpoint(checkpoint, step, model, optimizer, scheduler, history)
    bar.close()
    model.requires_grad_(False)
    return history


def _step(bundle: ClipBundle, split: SplitTrunk, data: SplitData, batch: list[int],
          rng: random.Random) -> torch.Tensor:
    """One batch's loss: B images (a random cached view each) against all their captions."""
    views = data.maps.shape[1]
    maps = torch.stack([data.maps[i, rng.randrange(views)] for i in batch]).float()  # (B,C,h,w)
    captions = [c for i in batch for c in data.captions[i]]
    owner = torch.tensor([j for j, i in enumerate(batch) for _ in data.captions[i]])  # (N_txt,)
    image = F.normalize(split.tail(maps), dim=-1)  # (B, D)
    text = F.normalize(bundle.model.encode_text(_tokens(bundle, captions)), dim=-1)  # (N_txt, D)
    return info_nce(text, image, bundle.model.logit_scale.exp(), owner)


def _tokens(bundle: ClipBundle, captions: Sequence[str]) -> torch.Tensor:
    """(N, T) token ids, trimmed to the longest caption (pads are masked by the text tower)."""
    ids = bundle.tokenizer(list(captions))  # (N, context_length)
    used = int((ids != 0).sum(dim=1).max())
    return ids[:, : max(1, used)]


def _unfreeze(model: Any, split: SplitTrunk, text_layers: int) -> list[nn.Parameter]:
    """Freeze all, then unfreeze the image tail, projections, last text layers, logit scale."""
    model.requires_grad_(False)
    modules: list[nn.Module] = [*split.trainable_modules(), model.text.proj]
    if text_layers > 0:
        modules.extend(model.text.transformer.encoder.layer[-text_layers:])
    for module in modules:
        module.requires_grad_(True)
    model.logit_scale.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    logger.info("trainable parameters: %d of %d", sum(p.numel() for p in params),
                sum(p.numel() for p in model.parameters()))
    return params


def _param_groups(model: Any, params: list[nn.Parameter], cfg: EncoderTrainConfig
                  ) -> list[dict[str, Any]]:
    """Fresh projections and the logit scale at ``head_learning_rate``; decay only matrices."""
    fresh = {id(p) for p in [*model.visual.head.parameters(), *model.text.proj.parameters(),
                             model.logit_scale]}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in params:
        groups.setdefault((id(p) in fresh, p.ndim >= 2), []).append(p)
    return [{"params": ps, "lr": cfg.head_learning_rate if is_fresh else cfg.learning_rate,
             "weight_decay": cfg.weight_decay if decays else 0.0}
            for (is_fresh, decays), ps in groups.items()]


def _clamp_scale(model: Any) -> None:
    with torch.no_grad():
        model.logit_scale.clamp_(0, torch.log(torch.tensor(MAX_LOGIT_SCALE)))


@torch.no_grad()
def evaluate(bundle: ClipBundle, split: SplitTrunk, data: SplitData) -> RetrievalMetrics:
    """Val recall with the CLIP towers: view 0 of each image against every caption."""
    images = torch.cat([split.tail(data.maps[i:i + EVAL_BATCH, 0].float())
                        for i in range(0, len(data.captions), EVAL_BATCH)])  # (N_img, D)
    captions = [c for caps in data.captions for c in caps]
    owner = [j for j, caps in enumerate(data.captions) for _ in caps]
    text = torch.cat([bundle.model.encode_text(_tokens(bundle, captions[i:i + EVAL_BATCH]))
                      for i in range(0, len(captions), EVAL_BATCH)])  # (N_txt, D)
    return retrieval_metrics(images, text, owner)


def _write(bundle: ClipBundle, out_dir: Path, report: dict[str, Any],
           text_layers: int) -> None:
    """``visual.safetensors`` (what every image needs) and ``text.safetensors`` (the text
    tower's trained tensors: what a search by words may also score with), both fp16.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {"arch": EMBEDDED_VISION, "base_encoder_id": bundle.encoder_id}
    path = out_dir / "visual.safetensors"
    save_file(_half(visual_state(bundle.model)), str(path), metadata=metadata)
    save_file(_half(text_state(bundle.model, text_layers)), str(out_dir / TEXT_WEIGHTS),
              metadata=metadata)
    report["encoder_id"] = encoder_id(VisionConfig(arch=EMBEDDED_VISION, weights=str(path)))
    (out_dir / "encoder.json").write_text(json.dumps(report, indent=2) + "\n")
    logger.info("adapted image tower written to %s (%s)", path, report["encoder_id"])


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
