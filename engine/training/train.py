"""The bridge's training loop: ``train_bridge`` fits the bridge on cached (frozen) image
features and a frozen LM, drawing each epoch's examples from ``epoch_examples`` and
``retrieval_examples``. The command is ``capret train`` (``bot/cli/train.py``), which
runs it through ``engine.training.pipeline.run_bridge_training``.

Reproducible from the seed; checkpoints every ``checkpoint_every`` steps and resumes from the
newest; writes the bridge (safetensors + JSON with the training config), a loss history and a
PNG of the loss curves.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from engine.bridge import Bridge
from engine.config import EngineConfig
from engine.language import LanguageModel
from engine.tokens import CAPTION_PROMPT
from engine.training.checkpoints import CHECKPOINT, resume, save_checkpoint
from engine.training.config import TrainConfig
from engine.training.objective import Example, ImageBank, Objective
from engine.training.questions import Question
from engine.training.schedule import warmup_cosine
from engine.typed_config import to_mapping

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainItem:
    """One training image: its cached features, its captions, scene label and questions.

    Built from a ``CaptionedImage`` (``pipeline.py``) once its features are cached; it keeps
    the tensors instead of the file, so the training loop never touches disk.
    """

    features: torch.Tensor  # (R, D_img): one row per augmentation (quarter-turns)
    captions: tuple[str, ...]
    label: str | None
    questions: tuple[Question, ...] = ()
    key: str = ""  # "source/file name" (CaptionedImage.key): its row in a caption datastore


# Question kinds few images have (the captions must agree on a number or a colour).
RARE_KINDS = ("count", "colour")


def epoch_examples(items: Sequence[TrainItem], config: TrainConfig, epoch: int
                   ) -> list[Example]:
    """This epoch's answer examples, shuffled by (seed, epoch): captions, scene questions and
    follow-up dialogues (the description, then one or two questions about the scene).
    """
    rng = random.Random(config.seed * 1000 + epoch)
    examples: list[Example] = []
    for item in items:
        captions = item.captions if config.captions_per_image == "all" else (
            rng.choice(item.captions),)
        examples.extend(Example.captioning(image_view(item, rng), c) for c in captions)
        if item.label and rng.random() < config.scene_question_ratio:
            examples.append(Example.scene_question(image_view(item, rng), captions[0],
                                                   item.label))
        if item.questions and rng.random() < config.dialogue_ratio:
            examples.append(dialogue_example(item, rng))
    rng.shuffle(examples)
    return examples


def retrieval_examples(items: Sequence[TrainItem], config: TrainConfig, epoch: int
                       ) -> list[Example]:
    """Every image once with a random caption, shuffled: the stream [RET] batches draw from."""
    rng = random.Random(config.seed * 1000 + epoch + 500)
    examples = [Example.captioning(image_view(item, rng), rng.choice(item.captions), index)
                for index, item in enumerate(items)]
    rng.shuffle(examples)
    return examples


def dialogue_example(item: TrainItem, rng: random.Random) -> Example:
    """Describe, then one or two follow-up questions; rare kinds (count, colour) go first."""
    rare = [q for q in item.questions if q.kind in RARE_KINDS]
    common = [q for q in item.questions if q.kind not in RARE_KINDS]
    rng.shuffle(rare)
    rng.shuffle(common)
    asked = (rare + common)[:rng.choice((1, 2))]
    rng.shuffle(asked)
    caption = rng.choice(item.captions)
    exchanges = ((CAPTION_PROMPT, caption), *((q.text, q.answer) for q in asked))
    return Example(image_view(item, rng), caption, exchanges)


def image_bank(items: Sequence[TrainItem], device: torch.device) -> ImageBank:
    """The first (unturned) view of every item, row i for item i: what retrieval ranks.

    Built once, on the training device, so steps do not copy it.
    """
    return ImageBank(torch.stack([item.features[0] for item in items]).float().to(device))


def image_view(item: TrainItem, rng: random.Random) -> torch.Tensor:
    """One of the item's cached views (quarter turns), drawn by ``rng``."""
    return item.features[rng.randrange(item.features.shape[0])]


def train_bridge(items: Sequence[TrainItem], lm: LanguageModel, bridge: Bridge,
                 engine_config: EngineConfig, config: TrainConfig, out_dir: Path,
                 max_steps: int | None = None) -> dict[str, list[float]]:
    """Train ``bridge`` in place; returns the loss history. Resumes from ``out_dir``.

    ``max_steps`` stops early (tiny runs, tests) without changing the learning-rate schedule.
    """
    torch.manual_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    objective = Objective(lm, bridge, engine_config.language.system_prompt,
                          config.max_caption_tokens, config.lambda_caption,
                          config.lambda_retrieval, config.answer_weighting,
                          config.dialogue_targets)
    # No weight decay: the trained layers are few and linear, and no run wanted any.
    optimizer = torch.optim.AdamW(bridge.parameters(), lr=config.learning_rate, weight_decay=0.0)
    per_epoch = -(-len(epoch_examples(items, config, 0)) // config.batch_size)
    total = per_epoch * config.epochs
    stop = min(total, max_steps or total)  # max_steps ends early without changing the schedule
    scheduler = warmup_cosine(optimizer, config.warmup_steps, total)
    history: dict[str, list[float]] = {"step": [], "caption": [], "retrieval": []}
    step, saved = resume(out_dir / CHECKPOINT, bridge, optimizer, scheduler)
    history.update(saved or {})
    bridge.train()
    lm.train()
    device = bridge.logit_scale.device
    bank = image_bank(items, device) if config.retrieval_negatives == "train" else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=config.autocast_bf16 and bf16_is_fast(device))
    progress = tqdm(total=stop, initial=step, desc="train bridge", unit="step")
    epoch, examples, requests = -1, list[Example](), list[Example]()
    ret_batch = config.retrieval_batch_size or config.batch_size
    while step < stop:
        if step // per_epoch != epoch:
            epoch = step // per_epoch
            examples = epoch_examples(items, config, epoch)
            requests = retrieval_examples(items, config, epoch)
        index = step % per_epoch
        batch = examples[index * config.batch_size:(index + 1) * config.batch_size]
        start = index * ret_batch % len(requests)
        retrieval = (requests + requests)[start:start + min(ret_batch, len(requests))]
        started = time.perf_counter()
        with autocast:
            losses = objective(batch, random.Random(config.seed + step), retrieval, bank)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        _record(history, step, losses.caption, losses.retrieval)
        speed = len(batch) / (time.perf_counter() - started)
        progress.set_postfix(caption=f"{float(losses.caption):.3f}",
                             retrieval=f"{float(losses.retrieval):.3f}", ex_s=f"{speed:.1f}")
        progress.update()
        if step % config.checkpoint_every == 0 or step == stop:
            save_checkpoint(out_dir / CHECKPOINT, step, bridge, optimizer, scheduler, history)
    progress.close()
    bridge.eval()
    bridge.save(out_dir / "bridge", extra={"train": to_mapping(config), "steps": step})
    write_history(out_dir, history)
    return history


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays off on CUDA and on CPUs with AVX-512 BF16 or AMX; elsewhere it is emulated
    (about 75x slower than fp32 on an AVX2-only CPU, measured).
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _record(history: dict[str, list[float]], step: int, caption: torch.Tensor,
            retrieval: torch.Tensor) -> None:
    history["step"].append(float(step))
    history["caption"].append(float(caption))
    history["retrieval"].append(float(retrieval))


def write_history(out_dir: Path, history: dict[str, list[float]]) -> None:
    """history.json and loss.png (caption and retrieval losses per step, smoothed)."""
    (out_dir / "history.json").write_text(json.dumps(history))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("caption", "retrieval"):
        ax.plot(history["step"], _smooth(history[key]), label=f"{key} loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (moving average)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "loss.png", dpi=100)
    plt.close(fig)


def _smooth(values: list[float], window: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v - (values[i - window] if i >= window else 0.0)
        out.append(acc / min(i + 1, window))
    return out
