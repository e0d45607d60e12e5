"""Checkpoints of a training run: its trained parameters, optimiser, schedule and history, so
a stopped run resumes where it stopped. The one home of both the encoder's and the bridge's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


def save_checkpoint(path: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, history: Any) -> None:
    """Write the parameters that train (``requires_grad``), not the frozen rest."""
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    state = {"step": step, "trainable": trainable, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "history": history}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash mid-write never leaves a half checkpoint


def resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: torch.optim.lr_scheduler.LRScheduler) -> tuple[int, Any]:
    """Load ``path`` into the run when it exists: (the step it reached, its history), else
    (0, None).
    """
    if not path.is_file():
        return 0, None
    state = torch.load(path, map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    logger.info("resumed from %s at step %d", path, state["step"])
    return int(state["step"]), state["history"]
