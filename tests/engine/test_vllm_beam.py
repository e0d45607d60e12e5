"""The vllm backend's client-side beam search picks what ``engine.generate``'s beam search picks
from the same scores: a small fixed language (each token's next-token logits from a table),
stepped by the hf decoder through a ``Stepper`` and by ``beam_search`` through the top log-
probabilities a vLLM server reports (processed: [RET] ban and repetition penalty applied).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from engine.backends.vllm_beam import NextTokens, beam_search
from engine.generate import BeamCandidate, DecodeSettings, adjust_scores, decode

VOCAB, EOS, RET = 12, 0, 1
TABLE = torch.randn(VOCAB + 1, VOCAB, generator=torch.Generator().manual_seed(3)) * 3
START = VOCAB  # the prompt's row of TABLE


class TableStepper:
    """Hidden state = the last token (D = 1); logits = its row of TABLE."""

    def prefill(self, embeds: torch.Tensor, batch: int) -> torch.Tensor:
        return torch.full((batch, 1), float(START))

    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        return token_ids.float().unsqueeze(1)

    def reorder(self, rows: torch.Tensor) -> None:
        pass

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return TABLE[hidden[:, 0].long()]


def served(s: DecodeSettings) -> NextTokens:
    """What a vLLM server reports per beam: its 2 x beams likeliest processed log-probs."""
    def next_tokens(beams: list[list[int]]) -> list[dict[int, float]]:
        rows = []
        for beam in beams:
            logits = TABLE[beam[-1] if beam else START]
            logp = torch.log_softmax(adjust_scores(logits, beam, s), -1)
            top = torch.topk(logp, 2 * s.num_beams)
            rows.append(dict(zip(top.indices.tolist(), top.values.tolist(), strict=True)))
        return rows

    return next_tokens


def longest(candidates: Sequence[BeamCandidate]) -> list[float]:
    return [0.3 * len(c.ids) for c in candidates]


@pytest.mark.parametrize("rerank", [None, longest])
@pytest.mark.parametrize("beams", [2, 5])
def test_client_side_beams_pick_as_the_hf_decoder(
        rerank: Callable[[Sequence[BeamCandidate]], list[float]] | None, beams: int) -> None:
    s = DecodeSettings("beam", 12, 1.0, 1.0, beams, 1.3, 0.0, False, RET, frozenset({EOS}),
                       length_penalty=1.0, rerank=rerank)
    hf = [e for e in decode(TableStepper(), torch.zeros(1, 1), s) if isinstance(e, int)]
    ours = beam_search(served(s), s)
    assert [t for t in ours if t != EOS] == hf
    assert hf  # a reply, not an empty one
