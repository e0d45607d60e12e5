"""Only the bridge trains: the LM and the encoder stay bit-identical through a training step."""

from __future__ import annotations

import random

import pytest
import torch

from engine.tokens import CAPTION_PROMPT
from engine.training.objective import Example, Objective
from tests.engine.tiny import tiny_engine


def _examples(dim: int) -> list[Example]:
    torch.manual_seed(1)
    captions = ["many planes are parked near a terminal", "a river flows past green fields",
                "storage tanks stand beside a road", "a stadium is surrounded by buildings"]
    # The last one is a follow-up dialogue: the description, then a question.
    return [Example.captioning(torch.randn(dim), c) for c in captions[:3]] + [
        Example(torch.randn(dim), captions[3],
                ((CAPTION_PROMPT, captions[3]), ("Is there a stadium?", "Yes.")))]


@pytest.mark.parametrize("tied", [True, False])
def test_training_step_touches_only_the_bridge(tied: bool) -> None:
    engine = tiny_engine(tied=tied)
    encoder = engine.encoder
    assert isinstance(encoder, torch.nn.Module)  # the tiny encoder is a module with parameters
    frozen = {n: p.detach().clone() for n, p in engine.lm.named_parameters()}
    frozen.update({f"enc.{n}": p.detach().clone() for n, p in encoder.named_parameters()})
    bridge_before = {n: p.detach().clone() for n, p in engine.bridge.named_parameters()}
    objective = Objective(engine.lm, engine.bridge, "sys", max_caption_tokens=16)
    optimizer = torch.optim.AdamW(engine.bridge.parameters(), lr=1e-2)
    engine.bridge.train()
    engine.lm.train()
    losses = objective(_examples(engine.encoder.dim), random.Random(0))
    losses.total.backward()
    optimizer.step()

    assert not engine.lm.model.training  # train() keeps the frozen LM in eval mode
    assert all(p.grad is None for p in engine.lm.parameters())
    trained = {n for n, p in engine.bridge.named_parameters() if p.grad is not None}
    expected = {"describe_maps.image_to_prefix.weight", "describe_maps.image_to_prefix.bias",
                "image_to_shared.weight",
                "image_to_shared.bias", "ret_to_shared.weight", "ret_to_shared.bias",
                "ret_embedding", "logit_scale"} | ({"ret_output"} if not tied else set())
    assert trained == expected
    for name, p in [*engine.lm.named_parameters(),
                    *(("enc." + n, q) for n, q in encoder.named_parameters())]:
        assert torch.equal(p, frozen[name]), f"frozen tensor {name} changed"
    changed = [n for n, p in engine.bridge.named_parameters()
               if not torch.equal(p, bridge_before[n])]
    assert set(changed) == expected


def test_losses_are_finite_and_fall_on_a_tiny_batch() -> None:
    engine = tiny_engine()
    objective = Objective(engine.lm, engine.bridge, "sys", max_caption_tokens=16)
    optimizer = torch.optim.AdamW(engine.bridge.parameters(), lr=3e-3)
    examples = _examples(engine.encoder.dim)
    history = []
    for _ in range(8):
        losses = objective(examples, random.Random(0))
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()
        history.append(float(losses.total.detach()))
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[-1] < history[0]


def test_cached_training_passes_match_full_forward_passes() -> None:
    """The shared-prefix KV cache and padding change nothing: hidden states match row by row."""
    engine = tiny_engine()
    objective = Objective(engine.lm, engine.bridge, "sys", max_caption_tokens=16)
    examples = _examples(engine.encoder.dim)[:2]  # captions of different lengths
    requests = [objective._retrieval_sequence(e, random.Random(i)) for i, e in enumerate(examples)]
    shared = 5
    with torch.no_grad():
        _, at_ret = objective._retrieval_pass(requests, shared)
        for row, request in enumerate(requests):
            full = request.layout.extended([engine.lm.ret_id])
            embeds = engine.lm.embed_ids(torch.tensor(full.ids), engine.bridge.ret_embedding)
            expected = engine.backend.last_hidden(embeds)
            torch.testing.assert_close(at_ret[row], expected, atol=1e-4, rtol=1e-4)
