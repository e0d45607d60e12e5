"""The retrieval refit: its requests, cached [RET] states, maps that learn to rank new images."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.tokens import RETRIEVAL_PROMPTS
from engine.training.config import RetrievalRefitConfig
from engine.training.retrieval_refit import Requests, cached_ret_states, refit_retrieval
from engine.types import TextPart, Turn
from tests.engine.tiny import tiny_engine


def test_requests_skip_repeated_captions_and_rotate_the_phrasings() -> None:
    requests = Requests.for_captions([("a bridge", "a bridge", "a long bridge"), ("a beach",)])
    assert requests.owners == (0, 0, 1)
    assert requests.texts == (RETRIEVAL_PROMPTS[0].format(query="a bridge"),
                              RETRIEVAL_PROMPTS[1].format(query="a long bridge"),
                              RETRIEVAL_PROMPTS[2].format(query="a beach"))


def test_states_are_the_engines_ret_states_and_are_cached_per_ret_row(tmp_path: Path) -> None:
    engine = tiny_engine()
    requests = Requests.for_captions([("a bridge over a river",), ("planes at a terminal",)])
    states = cached_ret_states(engine, requests, tmp_path)
    direct = engine.ret_states([[Turn("user", (TextPart(t),))] for t in requests.texts], {})
    torch.testing.assert_close(states, direct)
    assert len(list(tmp_path.iterdir())) == 1
    torch.testing.assert_close(cached_ret_states(engine, requests, tmp_path), states)
    with torch.no_grad():
        engine.bridge.ret_embedding.add_(1.0)  # another trained [RET] row: other states
    assert not torch.allclose(cached_ret_states(engine, requests, tmp_path), states)
    assert len(list(tmp_path.iterdir())) == 2


def test_refit_learns_to_rank_held_out_images_and_leaves_descriptions_alone() -> None:
    bridge = tiny_engine().bridge
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 96, bridge.spec.image_dim, generator=generator)  # two views
    # Each image's requests are a fixed linear image of its features plus noise.
    mixing = torch.randn(bridge.spec.image_dim, bridge.spec.lm_dim, generator=generator)
    owners = [i for i in range(96) for _ in range(2)]
    states = images[0, owners] @ mixing + 0.3 * torch.randn(192, bridge.spec.lm_dim,
                                                            generator=generator)
    before = {k: v.clone() for k, v in bridge.state_dict().items()}
    config = RetrievalRefitConfig(epochs=40, batch_size=32, learning_rate=1e-2, warmup_steps=2)
    history = refit_retrieval(bridge, states, owners, images, config, holdout=24)
    assert len(history.loss) == len(history.holdout_mr) == 40
    assert history.loss[-1] < history.loss[0]
    assert history.holdout_mr[-1] > history.holdout_mr[0] + 20
    changed = {k for k, v in bridge.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"image_to_shared.weight", "image_to_shared.bias", "ret_to_shared.weight",
                       "ret_to_shared.bias", "logit_scale"}
