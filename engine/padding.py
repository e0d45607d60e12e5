"""Right padding of variable-length sequences into one batch, shared by every batched forward
pass that runs prompts side by side from their first position: the hf backend's [RET] states
(``HfBackend.last_hidden_batch``) and the training batches (``engine.training.objective``).

The continuous batcher (``engine.batching``) pads on the left instead, and pads KV rather
than inputs: every row's next token must sit in the last column of one step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def right_pad(rows: Sequence[torch.Tensor], value: float = 0.0) -> torch.Tensor:
    """Stack rows (T_i, ...) into (N, T, ...), each filled with ``value`` up to the longest."""
    width = max(len(r) for r in rows)
    return torch.stack([_pad(r, width, value) for r in rows])


def padding_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(N, width) long: 1 where a right-padded row of ``lengths`` (N,) has a real position."""
    return (torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]).long()


def _pad(x: torch.Tensor, width: int, value: float) -> torch.Tensor:
    pad = width - x.shape[0]
    if pad == 0:
        return x
    filler = torch.full((pad, *x.shape[1:]), value, dtype=x.dtype, device=x.device)
    return torch.cat([x, filler])
