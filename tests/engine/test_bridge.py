"""Bridge weights: bit-exact save/load and refusal to load onto other bases."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from engine.bridge import (
    META_FILE,
    WEIGHTS_FILE,
    Bridge,
    BridgeMismatchError,
    BridgeSpec,
    load_bridge,
)

SPEC = BridgeSpec(image_dim=32, lm_dim=64, prefix_tokens=4, shared_dim=16, tied_head=False,
                  encoder_id="enc-a", lm_id="lm-a")


@pytest.mark.parametrize("k", [1, 4])
def test_prefix_shape(k: int) -> None:
    bridge = Bridge(dataclasses.replace(SPEC, prefix_tokens=k))
    assert bridge.prefix(torch.randn(3, 32)).shape == (3, k, 64)


def test_spatial_cells_become_extra_prefix_vectors_after_the_pooled_ones() -> None:
    spec = dataclasses.replace(SPEC, image_dim=8 * 5, grid_cells=4)
    bridge = Bridge(spec)
    features = torch.randn(3, 40)
    prefix = bridge.prefix(features)
    assert spec.tokens_per_image == 8 and prefix.shape == (3, 8, 64)
    moved = features.clone()
    moved[:, 8:16] += 1.0  # change only the first cell
    changed = (bridge.prefix(moved) - prefix).abs().sum(dim=(0, 2))
    assert changed[:4].sum() == 0 and changed[4] > 0 and changed[5:].sum() == 0
    # gallery vectors come from the pooled part alone
    torch.testing.assert_close(bridge.image_vectors(moved), bridge.image_vectors(features))


def test_spatial_spec_must_split_evenly() -> None:
    with pytest.raises(ValueError, match="grid cells"):
        Bridge(dataclasses.replace(SPEC, image_dim=41, grid_cells=4))


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    bridge = Bridge(SPEC)
    bridge.save(tmp_path, extra={"note": "x"})
    loaded = load_bridge(tmp_path, SPEC)
    for (name, a), (_, b) in zip(bridge.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    assert loaded.ret_output is not None  # untied head keeps its own output row


@pytest.mark.parametrize(("field", "value"), [("lm_id", "lm-b"), ("encoder_id", "enc-b"),
                                              ("prefix_tokens", 1), ("lm_dim", 128)])
def test_loading_onto_other_bases_names_the_difference(tmp_path: Path, field: str,
                                                       value: Any) -> None:
    Bridge(SPEC).save(tmp_path)
    with pytest.raises(BridgeMismatchError, match=field):
        load_bridge(tmp_path, dataclasses.replace(SPEC, **{field: value}))


def test_tied_head_shares_the_ret_row() -> None:
    bridge = Bridge(dataclasses.replace(SPEC, tied_head=True))
    assert bridge.ret_output is None and bridge.ret_output_row is bridge.ret_embedding


def test_answer_maps_make_the_prefix_of_the_images_whose_prompt_asks_a_question() -> None:
    bridge = Bridge(SPEC)
    features = torch.randn(3, 32)
    described = bridge.prefix(features)
    assert torch.equal(bridge.prefix(features, answering=True), described), "none: one set"
    answer_maps = bridge.add_answer_maps()
    assert torch.equal(bridge.prefix(features, answering=True), described), "starts as a copy"
    with torch.no_grad():
        answer_maps.image_to_prefix.bias.add_(1.0)
    mixed = bridge.prefix(features, torch.tensor([True, False, True]))
    assert torch.equal(mixed[1], described[1])
    torch.testing.assert_close(mixed[[0, 2]], described[[0, 2]] + 1.0)
    assert torch.equal(bridge.prefix(features), described)


def test_answer_maps_round_trip_and_earlier_bridges_still_load(tmp_path: Path) -> None:
    bridge = Bridge(SPEC)
    bridge.add_answer_maps()
    bridge.save(tmp_path / "new")
    loaded = load_bridge(tmp_path / "new", SPEC)
    assert loaded.answer_maps is not None
    for name, value in bridge.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name

    # Saved before the prefix maps had their own module: top-level names, no answer maps.
    earlier = Bridge(SPEC)
    state = {name.removeprefix("describe_maps."): value
             for name, value in earlier.state_dict().items()}
    (tmp_path / "old").mkdir()
    save_file(state, str(tmp_path / "old" / WEIGHTS_FILE))
    (tmp_path / "old" / META_FILE).write_text(json.dumps({"spec": dataclasses.asdict(SPEC)}))
    old = load_bridge(tmp_path / "old", SPEC)
    assert old.answer_maps is None
    features = torch.randn(2, 32)
    assert torch.equal(old.prefix(features), earlier.prefix(features))
