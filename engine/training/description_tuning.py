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
from collections.abc import Sequence
from pathlib import Path

import torch

from engine.bridge import Bridge, NeighbourHintSpec
from engine.config import EngineConfig
from engine.language import LanguageModel
from engine.tokens import CAPTION_PROMPT, with_neighbours
from engine.training.config import TrainConfig
from engine.training.map_tuning import tune_maps
from engine.training.objective import Example, Objective
from engine.training.train import TrainItem, image_view


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
    if bridge.answer_maps is None:
        bridge.add_answer_maps()  # answers keep the maps they had
    objective = Objective(lm, bridge, engine_config.language.system_prompt,
                          config.max_caption_tokens)
    losses = tune_maps(list(bridge.describe_maps.parameters()), objective, lm, bridge,
                       lambda epoch: hinted_examples(items, hints, config.seed, epoch),
                       len(items), tuning, config.autocast_bf16, out_dir, max_steps,
                       "tune descriptions")
    bridge.neighbour_hints = NeighbourHintSpec(tuning.neighbours, tuning.shown)
    return losses
