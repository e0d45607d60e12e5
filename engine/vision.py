"""The frozen image encoder the engine uses: PIL images -> one feature vector each."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from engine.clip_model import (
    ClipBundle,
    Feature,
    build_clip,
    embed_pil,
    feature_dim,
    projected_from_pooled,
)
from engine.config import VisionConfig

# Images per forward pass. On this 2-core CPU 8 embed about twice as many images per second as
# 32 (75-90 vs 42 img/s, measured interleaved): a small batch's activations stay in cache.
BATCH = 8


class ClipImageEncoder:
    """An open_clip image tower, frozen; ``feature`` picks pooled, CLIP-projected or spatial."""

    def __init__(self, bundle: ClipBundle, feature: Feature, grid: int = 2) -> None:
        self.bundle = bundle
        self.bundle.model.requires_grad_(False).eval()
        # NHWC convolutions run about 1.8x faster than NCHW on this CPU (oneDNN); embed_pil
        # hands the pixels over in the same layout.
        self.bundle.model.to(memory_format=torch.channels_last)
        self.feature = feature
        self.grid = grid
        self.dim = feature_dim(bundle, feature, grid)
        # The bridge is trained on one encoder's one feature: both are part of the identity.
        kind = f"spatial{grid}" if feature == "spatial" else feature
        self.encoder_id = f"{bundle.encoder_id}__{kind}"
        # Cells after the pooled vector in each feature (the bridge splits them off).
        self.grid_cells = grid * grid if feature == "spatial" else 0
        # The id of the CLIP-projected feature (what a caption datastore's vectors are).
        self.projected_id = f"{bundle.encoder_id}__projected"

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, D_img) features, computed in batches."""
        chunks = [embed_pil(self.bundle, images[i:i + BATCH], self.feature, grid=self.grid)
                  for i in range(0, len(images), BATCH)]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.dim)

    @torch.inference_mode()
    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, D_pooled) pooled outputs (the start of any feature but "projected") -> their
        CLIP embeddings (N, E): an image's vector in a caption datastore's space.
        """
        if self.feature == "projected":
            raise ValueError("a projected feature has no pooled output to project")
        return projected_from_pooled(self.bundle.model.visual, pooled.float()).float()

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, E) CLIP embeddings of ``texts`` by the model's text tower (the same space as
        ``project``'s).
        """
        device = next(self.bundle.model.parameters()).device
        tokens = self.bundle.tokenizer(list(texts)).to(device)
        return self.bundle.model.encode_text(tokens).float()


def build_image_encoder(config: VisionConfig, device: torch.device) -> ClipImageEncoder:
    """The configured encoder, frozen on ``device``."""
    return ClipImageEncoder(build_clip(config, device), config.feature, config.grid)
