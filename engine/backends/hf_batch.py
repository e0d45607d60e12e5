"""Greedy decoding of several prompts in one batch (static: all start together).

`capret eval` asks thousands of short questions; on a CPU one forward pass of 32 rows costs
little more than one of a single row, so decoding them side by side is what makes a full
`val` evaluation fit in minutes. Prompts are left-padded so every row's next token sits in
the last column; finished rows ride along until the longest is done.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from engine.bridge import Bridge
from engine.generate import DecodeSettings, adjust_scores
from engine.language import LanguageModel


@torch.inference_mode()
def greedy_batch(lm: LanguageModel, bridge: Bridge, sequences: list[torch.Tensor],
                 settings: DecodeSettings) -> list[list[int]]:
    """Greedy token ids (EOS excluded) for each prompt (T_i, D); no [RET] (a description)."""
    if settings.allow_ret:
        raise ValueError("batched decoding is for descriptions and answers: forbid [RET]")
    lengths = torch.tensor([len(s) for s in sequences])
    width = int(lengths.max())
    embeds = torch.stack([torch.cat([s.new_zeros(width - len(s), s.shape[1]), s])
                          for s in sequences])  # (N, T, D), left-padded
    mask = (torch.arange(width)[None, :] >= (width - lengths)[:, None]).long()  # (N, T)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    device = embeds.device
    cache = DynamicCache(config=lm.model.config)
    hidden, _ = lm.hidden(embeds, attention_mask=mask.to(device), past=cache,
                          positions=positions.to(device))
    chosen: list[list[int]] = [[] for _ in sequences]
    done = [False] * len(sequences)
    filler = min(settings.eos_ids)
    next_position = lengths.clone()
    for _ in range(settings.max_new_tokens):
        tokens = _next_tokens(lm.logits(hidden[:, -1], bridge.ret_output_row).float().cpu(),
                              chosen, done, settings, filler)
        if all(done):
            break
        mask = torch.cat([mask, mask.new_ones(len(sequences), 1)], dim=1)
        step = lm.embed_ids(torch.tensor(tokens, device=device)[:, None], bridge.ret_embedding)
        hidden, _ = lm.hidden(step, attention_mask=mask.to(device), past=cache,
                              positions=next_position[:, None].to(device))
        next_position += 1
    return chosen


def _next_tokens(logits: torch.Tensor, chosen: list[list[int]], done: list[bool],
                 settings: DecodeSettings, filler: int) -> list[int]:
    """Each unfinished row's greedy pick (recorded in ``chosen``); finished rows get filler."""
    tokens = []
    for row, scores in enumerate(logits):
        if done[row]:
            tokens.append(filler)
            continue
        token = int(torch.argmax(adjust_scores(scores, chosen[row], settings)))
        if token in settings.eos_ids or len(chosen[row]) + 1 >= settings.max_new_tokens:
            done[row] = True
        if token not in settings.eos_ids:
            chosen[row].append(token)
        tokens.append(token)
    return tokens
