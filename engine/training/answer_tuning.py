"""A stage after the joint training: the bridge's prefix maps tuned on answers alone (not in
the shipped recipe: it costs distinct descriptions, README "Tuning the answers").

The joint training (``train.py``) spends its loss mostly on descriptions and [RET], weighed by
token: a scene answer or a "Yes." is a few tokens against a description's fifteen, and 300
steps show each image about once. So the answers the chat gives after a description are its
weakest part. This stage continues from the trained bridge with the answer loss only, each
answer weighing the same however long, over a mix of descriptions (so they keep their
quality), scene questions and follow-up dialogues: instruction tuning after alignment, as
LLaVA does, with the method's constraint kept (frozen encoder and LM, linear maps).

Only the prefix maps train (``image_to_prefix``, ``cell_to_prefix``, ``cell_positions``). The
[RET] row and the retrieval maps are untouched, so retrieval, and the [RET] states the
retrieval refit caches, stay exactly as they were: the two stages run in either order. The
result can keep only a share of the tuning (``kept_share``): the prefix maps interpolated
between before and after, in weight space.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from engine.bridge import Bridge
from engine.config import EngineConfig
from engine.language import LanguageModel
from engine.training.checkpoints import CHECKPOINT, resume, save_checkpoint
from engine.training.config import AnswerTuningConfig, TrainConfig
from engine.training.objective import Example, Objective
from engine.training.schedule import warmup_cosine
from engine.training.train import TrainItem, bf16_is_fast, dialogue_example, image_view


def tuning_examples(items: Sequence[TrainItem], config: AnswerTuningConfig, seed: int,
                    epoch: int) -> list[Example]:
    """One example per image for this pass, shuffled by (seed, epoch): its description, the
    scene question or a follow-up dialogue, drawn by the config's shares (an image without a
    label or questions teaches its description instead).
    """
    rng = random.Random(seed * 1000 + epoch + 700)
    shares = (config.caption_share, config.scene_share, config.dialogue_share)
    examples = []
    for item in items:
        kind = rng.choices(("caption", "scene", "dialogue"), shares)[0]
        if kind == "scene" and item.label:
            examples.append(Example.scene_question(image_view(item, rng), item.captions[0],
                                                   item.label))
        elif kind == "dialogue" and item.questions:
            examples.append(dialogue_example(item, rng))
        else:
            examples.append(Example.captioning(image_view(item, rng), rng.choice(item.captions)))
    rng.shuffle(examples)
    return examples


def prefix_parameters(bridge: Bridge) -> list[nn.Parameter]:
    """The parameters that turn an image into LM input vectors: what this stage trains."""
    params = list(bridge.image_to_prefix.parameters())
    if bridge.cell_to_prefix is not None and bridge.cell_positions is not None:
        params += [*bridge.cell_to_prefix.parameters(), bridge.cell_positions]
    return params


def tune_answers(items: Sequence[TrainItem], lm: LanguageModel, bridge: Bridge,
                 engine_config: EngineConfig, config: TrainConfig, out_dir: Path,
                 max_steps: int | None = None) -> list[float]:
    """Tune ``bridge``'s prefix maps in place; returns the loss per step. Resumes from
    ``out_dir``; ``max_steps`` stops early without changing the schedule.
    """
    tuning = config.answer_tuning
    torch.manual_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    objective = Objective(lm, bridge, engine_config.language.system_prompt,
                          config.max_caption_tokens, answer_weighting=tuning.answer_weighting)
    trained = prefix_parameters(bridge)
    before = [param.detach().clone() for param in trained]
    bridge.requires_grad_(False)
    for param in trained:
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(trained, lr=tuning.learning_rate, weight_decay=0.0)
    scheduler = warmup_cosine(optimizer, tuning.warmup_steps, tuning.steps)
    step, saved = resume(out_dir / CHECKPOINT, bridge, optimizer, scheduler)
    losses: list[float] = saved or []
    stop = min(tuning.steps, max_steps or tuning.steps)
    device = bridge.logit_scale.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=config.autocast_bf16 and bf16_is_fast(device))
    bridge.train()
    lm.train()
    per_pass = -(-len(items) // tuning.batch_size)
    progress = tqdm(total=stop, initial=step, desc="tune answers", unit="step")
    epoch, examples = -1, list[Example]()
    while step < stop:
        if step // per_pass != epoch:
            epoch = step // per_pass
            examples = tuning_examples(items, tuning, config.seed, epoch)
        index = step % per_pass
        batch = examples[index * tuning.batch_size:(index + 1) * tuning.batch_size]
        started = time.perf_counter()
        with autocast:
            loss = objective.answer_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        losses.append(float(loss.detach()))
        progress.set_postfix(loss=f"{losses[-1]:.3f}",
                             ex_s=f"{len(batch) / (time.perf_counter() - started):.1f}")
        progress.update()
        if step % tuning.checkpoint_every == 0 or step == stop:
            save_checkpoint(out_dir / CHECKPOINT, step, bridge, optimizer, scheduler, losses)
    progress.close()
    _interpolate(trained, before, tuning.kept_share)
    bridge.requires_grad_(True)
    bridge.eval()
    return losses


@torch.no_grad()
def _interpolate(params: Sequence[nn.Parameter], before: Sequence[torch.Tensor], kept: float
                 ) -> None:
    """Each parameter set to (1 - kept)·before + kept·now."""
    for param, start in zip(params, before, strict=True):
        param.lerp_(start.to(param.device), 1.0 - kept)
