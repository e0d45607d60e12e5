"""The loop both later stages share: some of the bridge's maps tuned alone on an answer loss.

`capret tune-answers` (the answer maps) and `capret tune-descriptions` (the description maps)
differ in which maps train and which examples a pass draws; the loop, its schedule, bf16
autocast and its checkpoints (resumed from ``out_dir``) are this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from tqdm import tqdm

from engine.bridge import Bridge
from engine.language import LanguageModel
from engine.training.checkpoints import CHECKPOINT, resume, save_checkpoint
from engine.training.objective import Example, Objective
from engine.training.schedule import warmup_cosine
from engine.training.train import bf16_is_fast


class TuningSchedule(Protocol):
    """What a stage's config says of its loop (read-only: the configs are frozen)."""

    @property
    def steps(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def warmup_steps(self) -> int: ...
    @property
    def checkpoint_every(self) -> int: ...


def tune_maps(trained: Sequence[nn.Parameter], objective: Objective, lm: LanguageModel,
              bridge: Bridge, draw: Callable[[int], list[Example]], images: int,
              schedule: TuningSchedule, autocast_bf16: bool, out_dir: Path,
              max_steps: int | None, name: str) -> list[float]:
    """Tune only ``trained`` of ``bridge`` on ``objective.answer_loss``; the loss per step.

    ``draw(epoch)``: a pass's examples, consumed in batches; a pass is ``images`` / batch
    steps. ``max_steps`` stops early without changing the schedule. The bridge is left in
    eval mode with every parameter trainable again.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    bridge.requires_grad_(False)
    for param in trained:
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(trained, lr=schedule.learning_rate, weight_decay=0.0)
    scheduler = warmup_cosine(optimizer, schedule.warmup_steps, schedule.steps)
    step, saved = resume(out_dir / CHECKPOINT, bridge, optimizer, scheduler)
    losses: list[float] = saved or []
    stop = min(schedule.steps, max_steps or schedule.steps)
    device = bridge.logit_scale.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=autocast_bf16 and bf16_is_fast(device))
    bridge.train()
    lm.train()
    per_pass = -(-images // schedule.batch_size)
    progress = tqdm(total=stop, initial=step, desc=name, unit="step")
    epoch, examples = -1, list[Example]()
    while step < stop:
        if step // per_pass != epoch:
            epoch = step // per_pass
            examples = draw(epoch)
        index = step % per_pass
        batch = examples[index * schedule.batch_size:(index + 1) * schedule.batch_size]
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
        if step % schedule.checkpoint_every == 0 or step == stop:
            save_checkpoint(out_dir / CHECKPOINT, step, bridge, optimizer, scheduler, losses)
    progress.close()
    bridge.requires_grad_(True)
    bridge.eval()
    return losses
