"""A stage after answer tuning: descriptions that also read what images like it are called.

Copying the commonest caption of an image's 15 nearest train images (no LM) describes about as
well as the model (issue 28: CIDEr 0.79 against 0.80 on `val`): the LM adds little over a
neighbour's words. SmallCap (Ramos et al., CVPR 2023) puts such retrieved captions in the
prompt of a frozen decoder and trains only what connects the image to it. Here: the prompt
asking for a description carries the best-voted captions of the image's nearest train images
(``engine.datastore.NeighbourHints``; a line before the request, ``tokens.with_neighbours``),
and only the bridge's description maps are tuned, from the trained bridge, on one caption of
each train image per pass. A train image never sees its own captions (leave-one-out), so
the maps learn when to copy and when the image says otherwise.

Everything else stays as it was: the answer maps (made from the description maps first if
the bridge has none, so answers do not move), the [RET] row and the retrieval maps.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from engine.bridge import Bridge, NeighbourHintSpec
from engine.config import EngineConfig
from engine.language import LanguageModel
from engine.tokens import CAPTION_PROMPT, with_neighbours
from engine.training.checkpoints import CHECKPOINT, resume, save_checkpoint
from engine.training.config import TrainConfig
from engine.training.objective import Example, Objective
from engine.training.schedule import warmup_cosine
from engine.training.train import TrainItem, bf16_is_fast, image_view


def hinted_examples(items: Sequence[TrainItem], hints: Sequence[Sequence[str]], seed: int,
                    epoch: int) -> list[Example]:
    """This pass's examples, shuffled by (seed, epoch): each image once, one of its captions
    as the answer to the description request with the image's ``hints`` before it.
    """
    if len(items) != len(hints):
        raise ValueError(f"{len(items)} images but {len(hints)} hint lists")
    rng = random.Random(seed * 1000 + epoch + 900)
    examples = []
    for item, shown in zip(items, hints, strict=True):
        caption = rng.choice(item.captions)
        request = with_neighbours(CAPTION_PROMPT, shown)
        examples.append(Example(image_view(item, rng), caption, ((request, caption),)))
    rng.shuffle(examples)
    return examples


def tune_descriptions(items: Sequence[TrainItem], hints: Sequence[Sequence[str]],
                      lm: LanguageModel, bridge: Bridge, engine_config: EngineConfig,
                      config: TrainConfig, out_dir: Path, max_steps: int | None = None
                      ) -> list[float]:
    """Tune ``bridge``'s description maps in place to read ``hints`` (one list per item);
    returns the loss per step. Resumes from ``out_dir``; ``max_steps`` stops early without
    changing the schedule.
    """
    tuning = config.description_tuning
    torch.manual_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    if bridge.answer_maps is None:
        bridge.add_answer_maps()  # answers keep the maps they had
    objective = Objective(lm, bridge, engine_config.language.system_prompt,
                          config.max_caption_tokens)
    trained = list(bridge.describe_maps.parameters())
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
    progress = tqdm(total=stop, initial=step, desc="tune descriptions", unit="step")
    epoch, examples = -1, list[Example]()
    while step < stop:
        if step // per_pass != epoch:
            epoch = step // per_pass
            examples = hinted_examples(items, hints, config.seed, epoch)
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
    bridge.neighbour_hints = NeighbourHintSpec(tuning.neighbours, tuning.shown)
    bridge.requires_grad_(True)
    bridge.eval()
    return losses
