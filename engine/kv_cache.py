"""KV tensors as plain data, and the cross-turn cache of each conversation's prefix.

The continuous batcher keeps one left-padded KV per batch and moves rows in and out of it;
between turns a conversation's prompt+reply KV waits here (LRU, bounded in megabytes) so the
next turn only prefills what is new. The cache is keyed by conversation and validated by the
prompt embeddings themselves: the reusable part is the longest common prefix of the stored
and the new embeddings, so a re-templated reply, a changed image or new bridge weights can
only shorten the reuse, never make it wrong.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PretrainedConfig

# Per layer (keys, values), each (B, H_kv, T, head_dim).
Layers = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def to_cache(layers: Layers, config: PretrainedConfig) -> DynamicCache:
    """A transformers cache holding ``layers`` (the tensors are not modified)."""
    return DynamicCache(ddp_cache_data=layers, config=config)


def from_cache(cache: DynamicCache) -> Layers:
    """The per-layer tensors a transformers cache holds after a forward pass."""
    pairs = [(layer.keys, layer.values) for layer in cache.layers]  # type: ignore[union-attr]
    return tuple(pairs)  # type: ignore[arg-type]


def select_rows(layers: Layers, rows: torch.Tensor) -> Layers:
    """Rows ``rows`` (may repeat, e.g. beams) of every layer: a new tensor per layer."""
    return tuple((k.index_select(0, rows), v.index_select(0, rows)) for k, v in layers)


def slice_positions(layers: Layers, start: int, stop: int | None = None) -> Layers:
    """Positions [start, stop) of every layer (views)."""
    return tuple((k[:, :, start:stop], v[:, :, start:stop]) for k, v in layers)


def left_pad(layers: Layers, width: int) -> Layers:
    """Zeros on the left up to ``width`` positions (masked out by the caller)."""
    length = layers[0][0].shape[2]
    if length == width:
        return layers
    pad = (0, 0, width - length, 0)  # last dim untouched, positions padded on the left
    return tuple((torch.nn.functional.pad(k, pad), torch.nn.functional.pad(v, pad))
                 for k, v in layers)


def cat_rows(parts: list[Layers]) -> Layers:
    """Stack the rows of several same-width layer sets: (sum B_i, H, T, d) per layer."""
    if len(parts) == 1:
        return parts[0]
    return tuple((torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts]))
                 for i in range(len(parts[0])))


def nbytes(layers: Layers) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)


@dataclass(frozen=True)
class CachedPrefix:
    """One conversation's last prompt+reply: its input embeddings (T, D) and KV (batch 1, T)."""

    embeds: torch.Tensor
    layers: Layers

    @property
    def size(self) -> int:
        return nbytes(self.layers)


def common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many leading rows of (T_a, D) and (T_b, D) are exactly equal."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differs = (a[:n] != b[:n]).any(dim=1)  # (n,)
    first = torch.nonzero(differs)
    return int(first[0]) if len(first) else n


class ConversationCache:
    """LRU of conversation KV prefixes, bounded by count and by megabytes; thread-safe."""

    def __init__(self, max_conversations: int, max_mb: float) -> None:
        self.max_conversations = max_conversations
        self.max_bytes = int(max_mb * 2**20)
        self._entries: OrderedDict[str, CachedPrefix] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0  # positions served from the cache, for tests and benchmarks

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def lookup(self, key: str, embeds: torch.Tensor) -> tuple[int, Layers | None]:
        """Reusable positions for prompt ``embeds`` (T, D) and their KV (views), or (0, None).

        At least one position is left to prefill: its hidden state starts the reply.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return 0, None
            self._entries.move_to_end(key)
        reused = min(common_prefix(entry.embeds, embeds), len(embeds) - 1)
        if reused <= 0:
            return 0, None
        self.hits += reused
        return reused, slice_positions(entry.layers, 0, reused)

    def put(self, key: str, embeds: torch.Tensor, layers: Layers) -> None:
        """Keep ``key``'s prompt+reply; evicts least recently used entries beyond the limits."""
        entry = CachedPrefix(embeds, layers)
        with self._lock:
            self._drop_locked(key)
            if entry.size > self.max_bytes or self.max_conversations <= 0:
                return
            self._entries[key] = entry
            self._bytes += entry.size
            while len(self._entries) > self.max_conversations or self._bytes > self.max_bytes:
                self._drop_locked(next(iter(self._entries)))

    def drop(self, key: str) -> None:
        """Forget one conversation (``/reset``, ``/forget``)."""
        with self._lock:
            self._drop_locked(key)

    def clear(self) -> None:
        """Forget everything (new bridge weights)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop_locked(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
